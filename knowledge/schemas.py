"""The public models of ``search_knowledge``, importable without Chroma, BM25 or Ollama.

Why a module of their own: the MCP server lists ``search_knowledge`` (its input and output schemas) before it
loads the knowledge base, so that a client's ``initialize`` / ``tools/list`` are answered in about the time it
takes to import the MCP SDK.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_QUERY_CHARS", "Passage", "SearchKnowledgeInput", "SearchKnowledgeOutput"]

MAX_QUERY_CHARS = 2000
"""Longest search query, in characters: the tool's schema, the CLI and the assistant's own searches."""


class Passage(BaseModel):
    """One retrieved chunk, ready to cite: `id` is the passage id (or `doc#n` for multi-chunk documents)."""

    id: str
    title: str
    section: str
    source: str
    text: str
    score: float
    tags: list[str] = Field(default_factory=list)
    origin: Literal["builtin", "user"] = "builtin"


class SearchKnowledgeInput(BaseModel):
    """Search the knowledge base: facts, figures and advice of the article \
'Apple Silicon AI Workstation 2026', late-2026 notes (M5, mixture-of-experts models, clusters, the \
November-2026 line-up) with their public sources, plus the user's own documents."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for, in plain words."
    )
    k: int = Field(default=5, ge=1, le=20, description="How many passages to return.")


class SearchKnowledgeOutput(BaseModel):
    passages: list[Passage]
    mode: Literal["hybrid", "lexical"]
    assumptions: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
