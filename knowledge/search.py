"""The knowledge base: our passages plus user documents, an incremental Chroma index, hybrid search.

Hybrid because each half fails differently: BM25 nails exact tokens users type ("M3 Pro", "Q4_K_M", "SDXL")
but misses paraphrases; vectors catch paraphrases but blur numbers and chip names. Reciprocal rank fusion
combines the two rankings without having to calibrate BM25 scores against cosine similarities.

Search must always answer. If there is no embedder, Ollama is down, or the vector store is broken, it falls
back to BM25 and says so in `assumptions` and `mode`, so the agent and UI can tell the user the answer is
lexical only.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from knowledge.chunking import Chunk, chunk_documents, load_passages
from knowledge.documents import (
    DocumentError,
    DocumentKind,
    DocumentStore,
    UserDocument,
    content_digest,
    convert,
    document_id,
    expand_paths,
)
from knowledge.embedding import Embedder, EmbeddingUnavailable
from knowledge.index import IndexUnavailable, VectorStore, _is_fatal
from knowledge.lexical import LexicalIndex
from knowledge.schemas import Passage, SearchKnowledgeInput, SearchKnowledgeOutput

log = logging.getLogger(__name__)

PASSAGES_DIR = Path(__file__).resolve().parent / "passages"
RRF_K = 60
CANDIDATES = 50
DEFAULT_BATCH = 32
EmbedProgress = Callable[[int, int], None]
"""Called with (chunks embedded so far, chunks to embed) after each batch, e.g. by the page's upload."""
# After a failed sync, searches retry vectors at most this often (Ollama may be back).
RETRY_SYNC_AFTER_S = 30.0


class SyncReport(BaseModel):
    """What a sync did; `embedded == 0` on an unchanged corpus is the start-up guarantee."""

    total_chunks: int
    builtin_chunks: int
    user_chunks: int
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    rebuilt: bool = False
    rebuild_reason: str | None = None
    mode: Literal["hybrid", "lexical"] = "lexical"
    problem: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [
            f"{self.total_chunks} chunks ({self.builtin_chunks} built-in, "
            f"{self.user_chunks} from your documents)",
            f"{self.embedded} embedded, {self.reused} reused, {self.removed} removed",
            f"mode {self.mode}",
        ]
        if self.rebuilt:
            parts.append(f"index rebuilt because {self.rebuild_reason}")
        if self.problem:
            parts.append(f"problem: {self.problem}")
        return "; ".join(parts)


def reciprocal_rank_fusion(rankings: Iterable[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse rankings of positions: score = sum of 1/(k + rank). Rank-based, so score scales never matter."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class _Corpus:
    """An immutable snapshot of what is searchable; replaced as a whole on every reload."""

    chunks: list[Chunk]
    lexical: LexicalIndex
    position: dict[str, int]
    user_records: list[UserDocument]


class KnowledgeBase:
    """Built-in passages + user documents, searchable hybrid (BM25 + vectors) or lexical-only.

    Construction is cheap and does no I/O; the corpus is loaded on first use and the index is synced on the
    first `sync()` (or lazily by the first `search()`). Safe to share between threads: sync and document
    changes are serialised, searches read immutable snapshots.
    """

    def __init__(
        self,
        data_dir: Path,
        embedder: Embedder | None,
        *,
        progress: bool = False,
        passages_dir: Path | None = None,
        chroma_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.chroma_url = chroma_url  # a Chroma server instead of the embedded store (ADVISOR_CHROMA_URL)
        self.embedder = embedder
        self.progress = progress
        self.passages_dir = passages_dir or PASSAGES_DIR
        self.documents = DocumentStore(self.data_dir / "documents")
        self._lock = threading.RLock()
        self._corpus = _Corpus([], LexicalIndex([]), {}, [])
        self._loaded = False
        self._store: VectorStore | None = None
        self._synced = False
        self._vector_ready = False
        self._last_sync_attempt = 0.0
        self._problem: str | None = None
        self.last_report: SyncReport | None = None

    # -- corpus ----------------------------------------------------------------------------------------------
    def _load_corpus(self) -> None:
        builtin = load_passages(self.passages_dir)
        user = self.documents.load()
        chunks = chunk_documents(builtin + [doc for _, doc in user])
        per_doc: dict[str, int] = {}
        for chunk in chunks:
            per_doc[chunk.doc_id] = per_doc.get(chunk.doc_id, 0) + 1
        records = [rec.model_copy(update={"chunks": per_doc.get(rec.id, 0)}) for rec, _ in user]
        lexical = LexicalIndex([c.lexical_text for c in chunks])
        # One assignment, so a concurrent search never mixes an old ranking with new positions.
        self._corpus = _Corpus(chunks, lexical, {c.id: i for i, c in enumerate(chunks)}, records)
        self._loaded = True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._load_corpus()

    @property
    def chunks(self) -> list[Chunk]:
        self._ensure_loaded()
        return list(self._corpus.chunks)

    # -- index -----------------------------------------------------------------------------------------------
    def sync(
        self, on_progress: EmbedProgress | None = None, *, skip_vectors: str | None = None
    ) -> SyncReport:
        """Bring the vector index in line with the corpus, embedding only chunks it has not seen.

        ``skip_vectors`` (why) loads the corpus for keyword search without asking the embedder, as if the
        sync had failed for that reason: start-up passes it when Ollama did not answer its health check,
        rather than wait out the embedding timeout. Searches retry the vectors later, as after any failure.
        """
        with self._lock:
            started = time.perf_counter()
            self._load_corpus()
            chunks = self._corpus.chunks
            report = SyncReport(
                total_chunks=len(chunks),
                builtin_chunks=sum(1 for c in chunks if c.origin == "builtin"),
                user_chunks=sum(1 for c in chunks if c.origin == "user"),
            )
            self._synced = True
            self._vector_ready = False
            self._last_sync_attempt = time.monotonic()
            if self.embedder is None:
                report.problem = "no embedder configured; search is lexical only"
            elif skip_vectors is not None:
                report.problem = f"{skip_vectors} Search is lexical only until the next sync."
            else:
                try:
                    self._sync_vectors(chunks, report, on_progress)
                    self._vector_ready = True
                    report.mode = "hybrid"
                except EmbeddingUnavailable as err:
                    report.problem = f"{err} Search is lexical only until the next sync."
                except IndexUnavailable as err:
                    report.problem = f"{err} Search is lexical only."
                except BaseException as err:  # noqa: BLE001 - never crash start-up over the index
                    if _is_fatal(err):
                        raise
                    log.exception("vector index sync failed")
                    report.problem = (
                        f"the vector index failed ({type(err).__name__}: {err}); it will be rebuilt on the "
                        "next sync. Search is lexical only."
                    )
                    self._discard_store()
            self._problem = report.problem
            report.seconds = round(time.perf_counter() - started, 3)
            self.last_report = report
            return report

    def _discard_store(self) -> None:
        """Close a store that misbehaved; the next open validates it again (and rebuilds if needed)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open_store(self, report: SyncReport) -> VectorStore:
        assert self.embedder is not None
        if self._store is not None and self._store.model_name != self.embedder.model_name:
            self._discard_store()
        if self._store is None:
            store = VectorStore(self.data_dir / "index", self.embedder.model_name, url=self.chroma_url)
            reason = store.open()
            if reason:
                report.rebuilt, report.rebuild_reason = True, reason
                log.warning("knowledge index rebuilt: %s", reason)
            self._store = store
        elif self._store.files_missing():
            self._store.reset("the index files disappeared from disk (was the data directory deleted?)")
            report.rebuilt, report.rebuild_reason = True, self._store.rebuild_reason
        return self._store

    def _sync_vectors(
        self, chunks: list[Chunk], report: SyncReport, on_progress: EmbedProgress | None = None
    ) -> None:
        store = self._open_store(report)
        try:
            existing = store.ids()
        except BaseException as err:  # noqa: BLE001 - unreadable data behind a readable catalogue
            if _is_fatal(err):
                raise
            store.reset(f"the index store could not be read ({type(err).__name__}: {err})")
            report.rebuilt, report.rebuild_reason = True, store.rebuild_reason
            existing = set()
        damage = store.verify(existing)
        if damage:  # the catalogue lists vectors the segment files no longer hold (issue 14)
            store.reset(f"the vector index was damaged ({damage}); rebuilt from the documents")
            report.rebuilt, report.rebuild_reason = True, store.rebuild_reason
            log.warning("knowledge index rebuilt: %s", store.rebuild_reason)
            existing = set()
        wanted = {c.id for c in chunks}
        stale = sorted(existing - wanted)
        todo = [c for c in chunks if c.id not in existing]
        store.delete(stale)
        report.removed = len(stale)
        report.reused = len(wanted & existing)
        if todo:
            report.embedded = self._embed_into(store, todo, report, on_progress)

    def _embed_into(
        self,
        store: VectorStore,
        todo: list[Chunk],
        report: SyncReport,
        on_progress: EmbedProgress | None = None,
    ) -> int:
        assert self.embedder is not None
        batch = max(1, int(getattr(self.embedder, "batch_size", DEFAULT_BATCH) or DEFAULT_BATCH))
        done = 0
        bar = _Progress(
            len(todo), f"Embedding {len(todo)} chunks with {self.embedder.model_name}", self.progress
        )
        try:
            for start in range(0, len(todo), batch):
                part = todo[start : start + batch]
                vectors = self.embedder.embed_documents([c.embedding_text for c in part])
                if len(vectors) != len(part):
                    raise EmbeddingUnavailable(
                        f"the embedder returned {len(vectors)} vectors for {len(part)} texts"
                    )
                if store.dimension is not None and vectors and len(vectors[0]) != store.dimension:
                    # Same model name, different vectors (e.g. a re-pulled tag): old vectors are incomparable.
                    store.reset(
                        f"the embedding dimension changed from {store.dimension} to {len(vectors[0])} "
                        f"under the same model name {self.embedder.model_name!r}"
                    )
                    report.rebuilt, report.rebuild_reason = True, store.rebuild_reason
                    report.reused = 0
                    bar.close()
                    return self._embed_into(store, list(self._corpus.chunks), report, on_progress)
                store.add(
                    [c.id for c in part],
                    vectors,
                    [{"doc_id": c.doc_id, "origin": c.origin} for c in part],
                )
                done += len(part)
                bar.advance(len(part))
                if on_progress is not None:
                    on_progress(done, len(todo))
        finally:
            bar.close()
        return done

    def close(self) -> None:
        with self._lock:
            self._discard_store()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search ----------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5) -> SearchKnowledgeOutput:
        request = SearchKnowledgeInput(query=query, k=k)
        self._ensure_loaded()
        if self._needs_sync():
            with self._lock:
                if self._needs_sync():  # another thread may have synced while we waited
                    self.sync()
        corpus = self._corpus
        chunks, lexical, position = corpus.chunks, corpus.lexical, corpus.position
        assumptions: list[str] = []

        lexical_hits = lexical.top(request.query, max(CANDIDATES, request.k))
        vector_ranking: list[int] | None = None
        problem = self._vector_problem()
        if problem is None:
            try:
                vector_ranking = self._vector_ranking(request.query, position, max(CANDIDATES, request.k))
            except EmbeddingUnavailable as err:
                problem = str(err)
            except BaseException as err:  # noqa: BLE001 - a broken store must not break answering
                if _is_fatal(err):
                    raise
                problem = (
                    f"the vector index failed ({type(err).__name__}); it is reopened "
                    "(and rebuilt if damaged) on the next sync"
                )
                with self._lock:
                    self._discard_store()
                    self._vector_ready = False
                    self._synced = False

        if vector_ranking is None:
            mode: Literal["hybrid", "lexical"] = "lexical"
            assumptions.append(f"Lexical (BM25) search only: {problem}")
            ranked = lexical_hits
        else:
            mode = "hybrid"
            assumptions.append(
                "Hybrid search: BM25 and embedding rankings fused by reciprocal rank fusion (k=60); "
                "scores are fusion scores, comparable only within this result."
            )
            ranked = reciprocal_rank_fusion([[i for i, _ in lexical_hits], vector_ranking])

        passages = [self._passage(chunks[i], score) for i, score in ranked[: request.k]]
        if not passages:
            assumptions.append("No passage matched the query.")
        sources = list(dict.fromkeys(p.source for p in passages))
        return SearchKnowledgeOutput(passages=passages, mode=mode, assumptions=assumptions, sources=sources)

    def retrieve(self, query: str, k: int, mode: Literal["lexical", "vector", "hybrid"]) -> list[Passage]:
        """One ranking explicitly, for evaluation and benchmarks; raises instead of falling back.

        `search` is what the assistant uses; this exists so the benchmark can compare the halves of hybrid
        search on the same index.
        """
        self._ensure_loaded()
        if mode != "lexical" and self.embedder is not None and not self._synced:
            self.sync()
        corpus = self._corpus
        chunks, position = corpus.chunks, corpus.position
        n = max(CANDIDATES, k)
        lexical_ids = [i for i, _ in corpus.lexical.top(query, n)] if mode != "vector" else []
        if mode == "lexical":
            ranked = corpus.lexical.top(query, n)
        else:
            problem = self._vector_problem()
            if problem is not None:
                raise EmbeddingUnavailable(problem)
            vector_ids = self._vector_ranking(query, position, n)
            if mode == "vector":
                ranked = [(i, 1.0 / (rank + 1)) for rank, i in enumerate(vector_ids)]
            else:
                ranked = reciprocal_rank_fusion([lexical_ids, vector_ids])
        return [self._passage(chunks[i], score) for i, score in ranked[:k]]

    def _needs_sync(self) -> bool:
        if self.embedder is None:
            return False
        if not self._synced:
            return True
        return not self._vector_ready and time.monotonic() - self._last_sync_attempt > RETRY_SYNC_AFTER_S

    def _vector_problem(self) -> str | None:
        if self.embedder is None:
            return "no embedding model is configured."
        if not self._vector_ready or self._store is None:
            return self._problem or "the vector index is not available."
        return None

    def _vector_ranking(self, query: str, position: dict[str, int], n: int) -> list[int]:
        assert self.embedder is not None and self._store is not None
        vector = self.embedder.embed_query(query)
        hits = self._store.query(vector, n)
        return [position[cid] for cid, _ in hits if cid in position]

    @staticmethod
    def _passage(chunk: Chunk, score: float) -> Passage:
        return Passage(
            id=chunk.citation_id,
            title=chunk.title,
            section=chunk.section,
            source=chunk.source,
            text=chunk.text,
            score=round(score, 6),
            tags=list(chunk.tags),
            origin=chunk.origin,
        )

    def passage(self, id: str) -> Passage | None:
        """Look up by citation id (`doc` or `doc#n`), document id (first chunk) or chunk id."""
        self._ensure_loaded()
        for chunk in self._corpus.chunks:
            if id in (chunk.citation_id, chunk.id):
                return self._passage(chunk, 1.0)
        for chunk in self._corpus.chunks:
            if chunk.doc_id == id:
                return self._passage(chunk, 1.0)
        return None

    # -- user documents ------------------------------------------------------------------------------------
    def add_documents(
        self,
        paths: Iterable[str | Path],
        on_progress: EmbedProgress | None = None,
        *,
        skipped: list[str] | None = None,
        follow_symlinks: bool = False,
        skip_vectors: str | None = None,
    ) -> list[UserDocument]:
        """Convert and store files, then sync so they are searchable at once.

        A file that cannot be added (unsupported, unreadable, hostile: a PDF bomb, HTML nested 100,000 deep,
        binary data named .md) is skipped with a one-line reason appended to `skipped`; the rest are added.
        Raises DocumentError, listing every reason, only when nothing at all could be added.
        `on_progress` follows the embedding of the new chunks; `skip_vectors` is passed on to `sync`.
        """
        problems: list[str] = []
        files = expand_paths(
            [Path(p).expanduser() for p in paths], follow_symlinks=follow_symlinks, skipped=problems
        )
        converted = []
        for file in files:
            try:
                converted.append((file, *convert(file)))
            except DocumentError as err:
                problems.append(" ".join(str(err).split()))
            except Exception as err:  # noqa: BLE001 - a converter bug on one hostile file must not stop the rest
                log.warning("could not convert %s", file, exc_info=True)
                problems.append(f"{file}: could not be read ({type(err).__name__}: {err}).")
        with self._lock:
            converted = self._not_stored_yet(converted, problems)
            if skipped is not None:
                skipped.extend(problems)
            if not converted:
                if not problems:
                    raise DocumentError(
                        "No files to add (directories contained no .md, .txt, .html or .pdf files)."
                    )
                raise DocumentError("Nothing was added:\n- " + "\n- ".join(problems))
            written = [self.documents.write(file, title, kind, body) for file, title, kind, body in converted]
            self._after_documents_changed(on_progress, skip_vectors)
            counts = {rec.id: rec.chunks for rec in self._corpus.user_records}
        return [doc.model_copy(update={"chunks": counts.get(doc.id, 0)}) for doc in written]

    def _not_stored_yet(
        self, converted: list[tuple[Path, str, DocumentKind, str]], problems: list[str]
    ) -> list[tuple[Path, str, DocumentKind, str]]:
        """Drop a file whose text is already stored from another path (a copy, another name), or given
        twice: one line in `problems` names the earlier path. The same path again is an update, kept (even
        when its new text is another document's: its old text must not stay searchable under its name)."""
        loaded = self.documents.load()
        stored = {content_digest(source.body): (doc.id, doc.original_path) for doc, source in loaded}
        stored_ids = {doc.id for doc, _ in loaded}
        fresh = []
        for item in converted:
            file, body = item[0], item[3]
            digest = content_digest(body)
            earlier, own = stored.get(digest), document_id(file)
            if earlier is not None and earlier[0] != own and own not in stored_ids:
                problems.append(
                    f"{file}: already in the knowledge base as {earlier[0]} (the same text, added from "
                    f"{earlier[1]}); not added again."
                )
                continue
            stored[digest] = (own, str(file.resolve()))
            fresh.append(item)
        return fresh

    def list_user_documents(self) -> list[UserDocument]:
        with self._lock:
            self._load_corpus()
            return list(self._corpus.user_records)

    def remove_user_document(self, doc_id: str) -> UserDocument:
        with self._lock:
            records = {rec.id: rec for rec in self.list_user_documents()}
            record = records.get(doc_id)
            if record is None or not self.documents.remove(doc_id):
                close = difflib.get_close_matches(doc_id, list(records), n=3)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                known = f" Known documents: {len(records)}." if records else " There are no user documents."
                raise DocumentError(f"No user document with id '{doc_id}'.{hint}{known}")
            self._after_documents_changed()
            return record

    def _after_documents_changed(
        self, on_progress: EmbedProgress | None = None, skip_vectors: str | None = None
    ) -> None:
        if self.embedder is not None:
            self.sync(on_progress, skip_vectors=skip_vectors)
        else:
            self._load_corpus()


class _Progress:
    """A rich progress bar on stderr, or nothing; kept tiny so sync's logic does not depend on rich."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._pending = (total, label) if enabled and total > 0 else None

    def _start(self) -> None:
        """Started on the first finished batch, so a backend that is down never leaves a bar stuck at 0."""
        if self._pending is not None:
            total, label = self._pending
            self._pending = None
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self._start()
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
