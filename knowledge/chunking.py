"""Turning markdown documents into citable chunks.

Two properties drive the design:

* A chunk must be something a reader can cite and understand alone. So chunks never cross a heading (the
  heading path becomes the chunk's section) and a table or code block is never cut: half a benchmark table is
  worse than none, because the column headers would end up in a different chunk from the numbers.
* Chunk ids must be stable across runs and change exactly when the embedded content changes. The id is the
  document id plus a hash of the text that is embedded (title, section and body), which is what makes the
  index incremental: an id already in the store is a vector we do not have to compute again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Origin = Literal["builtin", "user"]

DEFAULT_MAX_CHARS = 1800
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class FrontMatterError(ValueError):
    """A passage file whose front matter is missing or invalid; the message names the file and field."""


class PassageMeta(BaseModel):
    """Front matter every passage file carries; validated so that a typo fails loudly at load time."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=120)
    title: str = Field(min_length=1)
    section: str = Field(min_length=1)
    source: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_list(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value


@dataclass(frozen=True)
class SourceDocument:
    """One document before chunking: a built-in passage or a user document."""

    id: str
    title: str
    section: str | None
    source: str
    body: str
    origin: Origin = "builtin"
    tags: tuple[str, ...] = ()
    path: Path | None = None


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit. `id` is the storage key, `citation_id` what a reader cites."""

    id: str
    doc_id: str
    citation_id: str
    ordinal: int
    title: str
    section: str
    source: str
    text: str
    origin: Origin
    tags: tuple[str, ...] = field(default_factory=tuple)
    content_hash: str = ""

    @property
    def embedding_text(self) -> str:
        """Title and section go into the vector too: a chunk of a table means little without them."""
        return f"{self.title}\n{self.section}\n\n{self.text}"

    @property
    def lexical_text(self) -> str:
        return f"{self.title}\n{self.section}\n{' '.join(self.tags)}\n{self.text}"


def split_front_matter(raw: str, *, origin_name: str = "<text>") -> tuple[dict[str, object], str]:
    """Separate a leading `---` YAML block from the body; a file without one has empty metadata."""
    text = raw.lstrip("\ufeff")
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return {}, text
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            header = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            try:
                data = yaml.safe_load(header) or {}
            except yaml.YAMLError as err:
                raise FrontMatterError(f"{origin_name}: front matter is not valid YAML ({err}).") from err
            if not isinstance(data, dict):
                raise FrontMatterError(f"{origin_name}: front matter must be a mapping of fields.")
            return data, body
    raise FrontMatterError(f"{origin_name}: front matter starts with '---' but is never closed.")


def load_passage(path: Path) -> SourceDocument:
    """Read one built-in passage file, validating its front matter."""
    data, body = split_front_matter(path.read_text(encoding="utf-8"), origin_name=str(path))
    try:
        meta = PassageMeta.model_validate(data)
    except ValidationError as err:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "?" for e in err.errors())
        raise FrontMatterError(f"{path}: invalid front matter (fields: {fields}).") from err
    return SourceDocument(
        id=meta.id,
        title=meta.title,
        section=meta.section,
        source=meta.source,
        body=body.strip(),
        origin="builtin",
        tags=tuple(meta.tags),
        path=path,
    )


def load_passages(directory: Path) -> list[SourceDocument]:
    """All passages of a directory, sorted by file name; a duplicate id is an error, not an overwrite."""
    docs = [load_passage(p) for p in sorted(directory.glob("*.md"))]
    seen: dict[str, Path | None] = {}
    for doc in docs:
        if doc.id in seen:
            raise FrontMatterError(f"Duplicate passage id '{doc.id}' in {seen[doc.id]} and {doc.path}.")
        seen[doc.id] = doc.path
    return docs


@dataclass
class _Block:
    text: str
    atomic: bool  # tables and code fences: never split


def _atomic_block_at(lines: list[str], i: int) -> tuple[_Block, int] | None:
    """A code fence or a table starting at line `i`, as one block, and the index of the line after it."""
    fence = _FENCE.match(lines[i])
    if fence:
        marker = fence.group(1)
        block = [lines[i]]
        i += 1
        while i < len(lines):
            block.append(lines[i])
            i += 1
            if block[-1].strip().startswith(marker):
                break
        return _Block("\n".join(block), atomic=True), i
    if lines[i].lstrip().startswith("|"):
        block = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            block.append(lines[i].rstrip())
            i += 1
        return _Block("\n".join(block), atomic=True), i
    return None


def _blocks_by_section(body: str) -> list[tuple[list[str], list[_Block]]]:
    """Walk the markdown once, grouping blocks under the heading path they belong to."""
    sections: list[tuple[list[str], list[_Block]]] = [([], [])]
    path: list[tuple[int, str]] = []
    paragraph: list[str] = []
    lines = body.splitlines()

    def flush_paragraph() -> None:
        if paragraph:
            text = "\n".join(paragraph).strip()
            if text:
                sections[-1][1].append(_Block(text, atomic=False))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        atomic = _atomic_block_at(lines, i)
        if atomic is not None:
            flush_paragraph()
            sections[-1][1].append(atomic[0])
            i = atomic[1]
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_paragraph()
            level = len(heading.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading.group(2).strip()))
            sections.append(([title for _, title in path], []))
            i += 1
            continue
        if not line.strip():
            flush_paragraph()
        else:
            paragraph.append(line)
        i += 1
    flush_paragraph()
    return [(p, blocks) for p, blocks in sections if blocks]


def _split_long(text: str, max_chars: int) -> list[str]:
    """Split an over-long paragraph at sentence ends (or hard, as a last resort)."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        candidate = f"{current} {sentence}".strip() if current else sentence
        if len(candidate) > max_chars and current:
            pieces.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pack(doc: SourceDocument, max_chars: int) -> list[tuple[str, str]]:
    """(section, text) pieces: heading-bounded, tables whole, blocks packed up to `max_chars`."""
    raw_chunks: list[tuple[str, str]] = []
    for heading_path, blocks in _blocks_by_section(doc.body):
        parts = [p for p in [doc.section, " > ".join(heading_path)] if p]
        section = " > ".join(parts) if parts else doc.title
        current: list[str] = []
        size = 0
        for block in blocks:
            texts = (
                [block.text]
                if block.atomic or len(block.text) <= max_chars
                else _split_long(block.text, max_chars)
            )
            for text in texts:
                if current and size + len(text) + 2 > max_chars:
                    raw_chunks.append((section, "\n\n".join(current)))
                    current, size = [], 0
                current.append(text)
                size += len(text) + 2
        if current:
            raw_chunks.append((section, "\n\n".join(current)))
    return raw_chunks


def chunk_document(doc: SourceDocument, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
    """Chunks of one document: heading-bounded, tables whole, packed up to `max_chars`."""
    raw_chunks = _pack(doc, max_chars)
    chunks: list[Chunk] = []
    seen_ids: set[str] = set()
    single = len(raw_chunks) == 1
    for ordinal, (section, text) in enumerate(raw_chunks):
        chunk = Chunk(
            id="",
            doc_id=doc.id,
            citation_id=doc.id if single else f"{doc.id}#{ordinal + 1}",
            ordinal=ordinal,
            title=doc.title,
            section=section,
            source=doc.source,
            text=text,
            origin=doc.origin,
            tags=doc.tags,
        )
        digest = content_hash(chunk.embedding_text)
        chunk_id = f"{doc.id}:{digest[:16]}"
        suffix = 2
        while chunk_id in seen_ids:  # identical text twice in one document
            chunk_id = f"{doc.id}:{digest[:16]}-{suffix}"
            suffix += 1
        seen_ids.add(chunk_id)
        chunks.append(dataclasses.replace(chunk, id=chunk_id, content_hash=digest))
    return chunks


def chunk_documents(docs: list[SourceDocument], max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
    return [chunk for doc in docs for chunk in chunk_document(doc, max_chars)]
