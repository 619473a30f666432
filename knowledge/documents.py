"""User documents: markdown, text, HTML and PDF files a user adds to their own knowledge base.

Each added file is converted once into markdown (headings kept, so chunks get meaningful sections; PDF pages
become "Page N" sections so a citation points at a page) and stored under `data_dir/documents/<id>.md` with
front matter. From then on it is indexed exactly like a built-in passage, but with origin "user" so it can be
listed and removed without touching what we ship. Keeping the converted copy (rather than re-reading the
original path) means the knowledge base still works if the original moves, and removal is just deleting our
copy.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel

from knowledge.chunking import FrontMatterError, SourceDocument, split_front_matter

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import Tag

DocumentKind = Literal["markdown", "text", "html", "pdf"]
SUFFIXES: dict[str, DocumentKind] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
MAX_FILE_BYTES = 50 * 1024 * 1024


class DocumentError(ValueError):
    """A document could not be added or removed; the message says which file and why."""


class UserDocument(BaseModel):
    """What `list_user_documents` shows and `add_documents` returns."""

    id: str
    title: str
    kind: DocumentKind
    original_path: str
    added_at: str
    characters: int
    chunks: int = 0


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48] or "doc"


def document_id(path: Path) -> str:
    """Stable per original path, so adding the same file again updates it instead of duplicating it."""
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:8]
    return f"user-{_slug(path.stem)}-{digest}"


def content_digest(body: str) -> str:
    """What makes two documents the same: their converted text, wherever each came from (a copy of a file
    under another name or folder is the same document, and must not be stored and searched twice)."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control characters: an image or archive renamed to .md, not text in any encoding."""
    sample = data[:65536]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text has NULs by design
        return False
    if b"\x00" in sample:
        return True
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as err:
        # Not UTF-8 (unless only a character was cut at the sample's end): judge it as Latin-1.
        cut = err.start >= len(sample) - 4
        text = sample[: err.start].decode("utf-8") if cut else sample.decode("latin-1")
    controls = sum(1 for c in text if (ord(c) < 32 and c not in "\t\n\r\f\v") or 0x7F <= ord(c) < 0xA0)
    return controls > max(8, len(text) // 50)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if _looks_binary(data):
        raise DocumentError(f"{path}: looks like binary data, not text; refused.")
    for encoding in (
        ("utf-8-sig", "utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig",)
    ):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _html_to_markdown(html: str) -> tuple[str | None, str]:
    try:
        return _html_to_markdown_unchecked(html)
    except RecursionError:
        raise DocumentError("the HTML is nested too deeply to read.") from None


def _html_to_markdown_unchecked(html: str) -> tuple[str | None, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    out: list[str] = []
    _walk_html(soup.body or soup, out)
    return title, "\n\n".join(out)


_HTML_TEXT_BLOCKS = ("p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "caption")


def _html_text(node: Tag) -> str:
    return re.sub(r"\s+", " ", node.get_text(" ", strip=True))


def _html_table(table: Tag) -> str | None:
    """A Markdown table (header separator after the first row), or None for a table without cells."""
    rows = []
    for tr in table.find_all("tr"):
        cells = [_html_text(c).replace("|", "/") for c in tr.find_all(["th", "td"])]
        if cells:
            rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return None
    rows.insert(1, "|" + "---|" * (rows[0].count("|") - 1))
    return "\n".join(rows)


def _walk_html(node: Tag | BeautifulSoup, out: list[str]) -> None:
    """Headings, tables and text blocks of `node` as Markdown blocks, in document order."""
    from bs4.element import NavigableString, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            text = re.sub(r"\s+", " ", str(child)).strip()
            if text:
                out.append(text)
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        block: str | None = None
        if re.fullmatch(r"h[1-6]", name):
            block = "#" * int(name[1]) + " " + _html_text(child)
        elif name == "table":
            block = _html_table(child)
        elif name in _HTML_TEXT_BLOCKS:
            text = _html_text(child)
            block = (("- " if name == "li" else "") + text) if text else None
        elif name not in ("title", "head"):
            _walk_html(child, out)
        if block:
            out.append(block)


def _pdf_to_markdown(path: Path) -> tuple[str | None, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise DocumentError(f"{path}: the PDF is encrypted; decrypt it first.")
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                pages.append(f"## Page {number}\n\n{text}")
        title = None
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
    except DocumentError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as err:
        # PyPdfError includes LimitReachedError: a "PDF bomb" that would expand beyond pypdf's limits.
        reason = str(err) or type(err).__name__
        raise DocumentError(f"{path}: not a readable PDF ({reason}).") from err
    return title, "\n\n".join(pages)


def convert(path: Path) -> tuple[str, DocumentKind, str]:
    """(title, kind, markdown body) of one file; raises DocumentError with a user-presentable message."""
    kind = _kind_of(path)
    title: str | None = None
    if kind == "pdf":
        title, body = _pdf_to_markdown(path)
    elif kind == "html":
        try:
            title, body = _html_to_markdown(_read_text(path))
        except DocumentError as err:
            raise DocumentError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    elif kind == "markdown":
        title, body = _markdown(path, _read_text(path))
    else:
        body = _read_text(path)
    body = body.strip()
    if not body:
        hint = " (a scanned PDF without a text layer?)" if kind == "pdf" else ""
        raise DocumentError(f"{path}: contains no text{hint}.")
    return (title or path.stem), kind, body


def _kind_of(path: Path) -> DocumentKind:
    """The kind of a file we can add, or DocumentError: missing, not a file, unsupported or too large."""
    if not path.exists():
        raise DocumentError(f"{path}: no such file.")
    if not path.is_file():
        raise DocumentError(f"{path}: not a regular file.")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        accepted = ", ".join(sorted(SUFFIXES))
        raise DocumentError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'; accepted: {accepted}."
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DocumentError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
    return kind


def _markdown(path: Path, text: str) -> tuple[str | None, str]:
    """(title from the front matter or the first # heading, body without the front matter)."""
    try:
        meta, text = split_front_matter(text, origin_name=str(path))
    except FrontMatterError as err:  # one line for the user, not YAML's multi-line report
        cause = err.__cause__
        mark = cause.problem_mark if isinstance(cause, yaml.MarkedYAMLError) else None
        if cause is not None:
            detail = "is not valid YAML" + (f" (line {mark.line + 2})" if mark is not None else "")
        elif "never closed" in str(err):
            detail = "is never closed by a second ---"
        else:
            detail = "is not a mapping of fields"
        raise DocumentError(
            f"{path}: its front matter (the --- block at the top) {detail}; fix or remove it."
        ) from None
    front_title = meta.get("title")
    if isinstance(front_title, str) and front_title.strip():
        return front_title.strip(), text
    first = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return (first.group(1).strip() if first else None), text


def expand_paths(
    paths: list[Path], *, follow_symlinks: bool = False, skipped: list[str] | None = None
) -> list[Path]:
    """Files to add: explicit files as given, directories searched recursively for supported types.

    Inside a directory, a symlink that leads outside it is not followed unless `follow_symlinks`: adding
    ~/notes must not quietly index ~/.ssh through a link someone left there. Each one skipped is reported
    in `skipped` (one line each).
    """
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        root = path.resolve()
        for p in sorted(path.rglob("*")):
            if not (p.is_file() and p.suffix.lower() in SUFFIXES):
                continue
            if not follow_symlinks and not p.resolve().is_relative_to(root):
                if skipped is not None:
                    skipped.append(
                        f"{p}: a symlink to {p.resolve()}, outside {path}; not followed "
                        "(use --follow-symlinks to add it)."
                    )
                continue
            files.append(p)
    return files


class DocumentStore:
    """The converted copies under `data_dir/documents`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, path: Path, title: str, kind: DocumentKind, body: str) -> UserDocument:
        self.directory.mkdir(parents=True, exist_ok=True)
        doc = UserDocument(
            id=document_id(path),
            title=title,
            kind=kind,
            original_path=str(path.resolve()),
            added_at=datetime.now(UTC).isoformat(timespec="seconds"),
            characters=len(body),
        )
        header = yaml.safe_dump(doc.model_dump(exclude={"chunks"}), sort_keys=False, allow_unicode=True)
        target = self.directory / f"{doc.id}.md"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(f"---\n{header}---\n{body}\n", encoding="utf-8")
        tmp.replace(target)
        return doc

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("user-*.md")) if self.directory.is_dir() else []

    def load(self) -> list[tuple[UserDocument, SourceDocument]]:
        """Every stored document; a damaged file is skipped rather than breaking the whole knowledge base."""
        items = []
        for file in self._files():
            try:
                meta, body = split_front_matter(file.read_text(encoding="utf-8"), origin_name=str(file))
                record = UserDocument.model_validate(meta)
            except (ValueError, OSError):
                continue
            source = f"Your document: {Path(record.original_path).name}"
            items.append(
                (
                    record,
                    SourceDocument(
                        id=record.id,
                        title=record.title,
                        section=None,
                        source=source,
                        body=body.strip(),
                        origin="user",
                        tags=("user-document", record.kind),
                        path=file,
                    ),
                )
            )
        return items

    def remove(self, doc_id: str) -> bool:
        target = self.directory / f"{doc_id}.md"
        if doc_id.startswith("user-") and target.is_file():
            target.unlink()
            return True
        return False
