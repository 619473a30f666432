"""Settings for every entry point (launch.py, the MCP server, the CLI).

One pydantic-settings model so that an environment variable and a `launch.py` flag always mean the same
thing. Defaults are the safe ones: loopback only, data under the user's home.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.context_window import FALLBACK_NUM_CTX
from knowledge.ollama_host import DEFAULT_HOST, normalise_ollama_host


def default_data_dir() -> Path:
    return Path.home() / ".mac-ai-advisor"


class Settings(BaseSettings):
    # Frozen: read once at start-up (environment, then launch.py flags) and shared by every part of the app.
    model_config = SettingsConfigDict(
        env_prefix="ADVISOR_", extra="ignore", populate_by_name=True, frozen=True
    )

    ollama_host: str = Field(
        default=DEFAULT_HOST,
        validation_alias="OLLAMA_HOST",
        description="Where Ollama listens (the same OLLAMA_HOST variable Ollama itself reads).",
    )
    chat_model: str = Field(default="qwen2.5:7b", description="Ollama model used for chat; needs 'tools'.")
    embed_model: str = Field(default="nomic-embed-text", description="Ollama embedding model for the index.")
    data_dir: Path = Field(
        default_factory=default_data_dir, description="Index and user documents live here."
    )
    chroma_url: str | None = Field(
        default=None,
        description="A Chroma server (`chroma run`) to keep the knowledge index in, e.g. "
        "http://127.0.0.1:8000, so several advisors share one index; default: the embedded store in the "
        "data dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address the web UI binds to.")
    port: int = Field(default=7860, ge=0, le=65535, description="Port of the web UI (0 picks a free one).")
    auth: str | None = Field(default=None, description="user:pass, required to bind a non-loopback address.")
    num_ctx: Annotated[int, Field(ge=1024, le=262144)] | Literal["auto"] = Field(
        default="auto",
        description="Context window sent to Ollama. 'auto': the largest that fits this Mac's GPU next to the "
        "model's weights (project's own memory fit), capped by the model's trained length and max_num_ctx; "
        f"{FALLBACK_NUM_CTX} where that cannot be measured (not a Mac).",
    )
    max_num_ctx: int = Field(default=32768, ge=2048, le=262144, description="Upper bound for num_ctx 'auto'.")
    max_tool_rounds: int = Field(default=6, ge=1, le=50, description="Tool-call rounds before answering.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one Ollama request.")
    search_embed_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Longest wait for the embedding of a search query (chat retrieval, the Search tab, the "
        "search_knowledge tool, MCP) before search falls back to keyword (BM25) search.",
    )
    probe_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Longest wait for Ollama's health check (start-up, the page's status line, the MCP "
        "server's tool list): a dead or firewalled host must not stall them.",
    )
    top_k_passages: int = Field(default=4, ge=0, le=20, description="Passages placed in context per turn.")

    @field_validator("chroma_url")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL of a Chroma server, e.g. http://127.0.0.1:8000")
        return value

    @field_validator("ollama_host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        return normalise_ollama_host(value)


def env_variable(name: str) -> str:
    """The environment variable of a Settings field (OLLAMA_HOST, ADVISOR_CHAT_MODEL ...)."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"{Settings.model_config.get('env_prefix', '')}{name.upper()}"


def invalid_settings(err: ValidationError, flags: Container[str]) -> str:
    """One line for a Settings validation error, each bad field named as the user gave it: its --flag when
    it is in `flags` (field names), else its environment variable; then what it accepts and what it got."""
    first: dict[str, str] = {}
    for e in err.errors():
        name = _field_name(str(e["loc"][0]))
        source = "--" + name.replace("_", "-") if name in flags else env_variable(name)
        # num_ctx is int | 'auto': one error per branch, and the int branch's alone would hide 'auto'.
        msg = _num_ctx_forms() if name == "num_ctx" else e["msg"].removeprefix("Value error, ")
        first.setdefault(source, f"{msg}, got {e['input']!r}")
    return "; ".join(f"{source}: {msg}" for source, msg in first.items())


def _field_name(loc: str) -> str:
    """The Settings field an error's location names: a field name, or the alias it is read from
    (OLLAMA_HOST)."""
    if loc in Settings.model_fields:
        return loc
    return next((n for n, f in Settings.model_fields.items() if f.validation_alias == loc), loc)


def _num_ctx_forms() -> str:
    """What num_ctx accepts, its bounds read from its field (Annotated[int, Field(ge, le)] | 'auto')."""
    bounded_int = get_args(Settings.model_fields["num_ctx"].annotation)[0]
    metadata = get_args(bounded_int)[1].metadata  # [Ge(ge=...), Le(le=...)]
    low, high = (next(getattr(m, k) for m in metadata if hasattr(m, k)) for k in ("ge", "le"))
    return f"expected a number of tokens ({low} to {high}) or 'auto'"
