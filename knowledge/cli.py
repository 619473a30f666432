"""`python -m knowledge add|list|remove|sync|search`: manage and query the knowledge base from a shell.

Reads the same environment variables as the app (`ADVISOR_DATA_DIR`, `OLLAMA_HOST`, `ADVISOR_EMBED_MODEL`,
`ADVISOR_CHROMA_URL`, `ADVISOR_SEARCH_EMBED_TIMEOUT_S`) once, into `CliSettings`, without importing the
assistant package (knowledge must not depend on it). Every expected failure prints one clear line and exits
non-zero; Ollama being down is not a failure here, only a downgrade to lexical search.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ollama

from knowledge.chunking import FrontMatterError
from knowledge.documents import DocumentError
from knowledge.embedding import OllamaEmbedder
from knowledge.ollama_host import DEFAULT_HOST, normalise_ollama_host
from knowledge.schemas import MAX_QUERY_CHARS
from knowledge.search import KnowledgeBase, SyncReport


@dataclass(frozen=True)
class CliSettings:
    """The app's settings this CLI uses, read from the environment once (``from_env``) and then passed on."""

    data_dir: Path
    ollama_host: str = DEFAULT_HOST
    embed_model: str = "nomic-embed-text"
    chroma_url: str | None = None
    search_embed_timeout_s: float = 5.0

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        data_dir: Path | None = None,
        ollama_host: str | None = None,
        embed_model: str | None = None,
    ) -> CliSettings:
        """The variables named in the module docstring; an argument given on the command line wins."""
        env = os.environ if environ is None else environ
        raw = ollama_host or env.get("OLLAMA_HOST") or DEFAULT_HOST
        try:
            host = normalise_ollama_host(raw)
        except ValueError as err:
            source = "--ollama-host" if ollama_host else "OLLAMA_HOST"
            raise ValueError(f"{source}: {err}, got {raw!r}") from None
        return cls(
            data_dir=(
                data_dir or Path(env.get("ADVISOR_DATA_DIR") or Path.home() / ".mac-ai-advisor")
            ).expanduser(),
            ollama_host=host,
            embed_model=embed_model or env.get("ADVISOR_EMBED_MODEL") or "nomic-embed-text",
            chroma_url=(env.get("ADVISOR_CHROMA_URL") or "").strip() or None,
            search_embed_timeout_s=_timeout(env.get("ADVISOR_SEARCH_EMBED_TIMEOUT_S")),
        )


def _timeout(raw: str | None) -> float:
    """ADVISOR_SEARCH_EMBED_TIMEOUT_S, the app's setting of the same name (default 5 s, at most 120 s)."""
    try:
        value = float(raw or 5.0)
    except ValueError:
        return 5.0
    return value if 0 < value <= 120 else 5.0


def open_knowledge_base(
    settings: CliSettings, *, lexical: bool = False, progress: bool = True
) -> KnowledgeBase:
    embedder = None
    if not lexical:
        # trust_env=False: document text and queries go to Ollama directly, never to an HTTP(S)_PROXY.
        host = settings.ollama_host
        client = ollama.Client(host=host, timeout=120.0, trust_env=False)
        # A search waits for its query's embedding as long as the app's setting says, then uses keywords.
        wait = settings.search_embed_timeout_s
        query_client = ollama.Client(host=host, timeout=wait, trust_env=False)
        embedder = OllamaEmbedder(
            client, settings.embed_model, query_client=query_client, query_timeout_s=wait
        )
    return KnowledgeBase(settings.data_dir, embedder, progress=progress, chroma_url=settings.chroma_url)


def _print_report(report: SyncReport) -> None:
    print(f"index: {report.summary()}")


def add_documents_cli(
    paths: Sequence[str | Path],
    settings: CliSettings,
    *,
    progress: bool = True,
    follow_symlinks: bool = False,
) -> int:
    """Add documents and print what happened; returns a process exit code (for `launch.py --add-docs`).

    Files that cannot be added are skipped with one line each on stderr; the exit code is 0 when at least
    one file was added, 2 when none was.
    """
    skipped: list[str] = []
    try:
        with open_knowledge_base(settings, progress=progress) as kb:
            added = kb.add_documents(paths, skipped=skipped, follow_symlinks=follow_symlinks)
            for doc in added:
                print(
                    f"added {doc.id}: {doc.title!r} ({doc.kind}, {doc.characters} chars, {doc.chunks} chunks)"
                )
            _print_skipped(skipped)
            if kb.last_report is not None:
                _print_report(kb.last_report)
    except (DocumentError, FrontMatterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _print_skipped(skipped: Sequence[str]) -> None:
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m knowledge", description="Manage the mac-ai-advisor knowledge base."
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="Index and documents (ADVISOR_DATA_DIR).")
    parser.add_argument("--ollama-host", default=None, help="Ollama URL (OLLAMA_HOST).")
    parser.add_argument(
        "--embed-model",
        default=None,
        help="Embedding model (ADVISOR_EMBED_MODEL, else nomic-embed-text).",
    )
    parser.add_argument("--lexical", action="store_true", help="Do not use Ollama; BM25 only.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="Add markdown, text, HTML or PDF files (or directories of them).")
    add.add_argument("paths", nargs="+")
    add.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="Inside a directory, also add files that symlinks point to outside it (not by default).",
    )
    sub.add_parser("list", help="List your documents.")
    remove = sub.add_parser("remove", help="Remove your documents by id.")
    remove.add_argument("ids", nargs="+")
    sub.add_parser("sync", help="Bring the index up to date (embeds only what changed).")
    search = sub.add_parser("search", help="Search the knowledge base.")
    search.add_argument("query", nargs="+")
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--json", action="store_true", help="Print the SearchKnowledgeOutput as JSON.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = CliSettings.from_env(
            data_dir=args.data_dir, ollama_host=args.ollama_host, embed_model=args.embed_model
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "add":
        if args.lexical:
            return _add_lexical(args.paths, settings.data_dir, follow_symlinks=args.follow_symlinks)
        return add_documents_cli(args.paths, settings, follow_symlinks=args.follow_symlinks)
    try:
        with open_knowledge_base(settings, lexical=args.lexical) as kb:
            if args.command == "list":
                _list(kb)
            elif args.command == "remove":
                for doc_id in args.ids:
                    removed = kb.remove_user_document(doc_id)
                    print(f"removed {removed.id}: {removed.title!r}")
            elif args.command == "sync":
                _print_report(kb.sync())
            elif args.command == "search":
                _search(kb, args.query, args.k, as_json=args.json)
    except (DocumentError, FrontMatterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _list(kb: KnowledgeBase) -> None:
    docs = kb.list_user_documents()
    if not docs:
        print("no user documents")
    for doc in docs:
        print(f"{doc.id}\t{doc.kind}\t{doc.chunks} chunks\t{doc.title}\t{doc.original_path}")


def _search(kb: KnowledgeBase, words: Sequence[str], k: int, *, as_json: bool) -> None:
    if not 1 <= k <= 20:
        raise DocumentError("-k must be between 1 and 20.")
    query = " ".join(words).strip()
    if not query or len(query) > MAX_QUERY_CHARS:
        raise DocumentError(f"the query must be 1 to {MAX_QUERY_CHARS} characters.")
    out = kb.search(query, k)
    if as_json:
        print(out.model_dump_json(indent=2))
        return
    print(f"mode: {out.mode}")
    for note in out.assumptions:
        print(f"note: {note}")
    for p in out.passages:
        snippet = " ".join(p.text.split())[:160]
        print(f"[{p.id}] {p.score:.4f} {p.title} — {p.section}\n    {snippet}")


def _add_lexical(paths: Sequence[str], data_dir: Path, *, follow_symlinks: bool = False) -> int:
    skipped: list[str] = []
    try:
        with KnowledgeBase(data_dir, None) as kb:
            for doc in kb.add_documents(paths, skipped=skipped, follow_symlinks=follow_symlinks):
                print(
                    f"added {doc.id}: {doc.title!r} ({doc.kind}, {doc.chunks} chunks; "
                    "not embedded: --lexical)"
                )
            _print_skipped(skipped)
    except (DocumentError, FrontMatterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
