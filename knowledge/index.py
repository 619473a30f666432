"""The on-disk vector store: one Chroma collection under `data_dir/index`.

Chroma is used strictly as a vector store. We always pass embeddings ourselves (its default embedding function
would download an ONNX model), and every vector's id is a chunk id, i.e. a content hash, so "is this chunk
already embedded?" is a set lookup and the build is incremental.

The collection metadata records the embedding model, its dimension and our schema version. Vectors from two
different models are not comparable, so a model change makes the store useless, as does a store Chroma cannot
read (a crash mid-write, a disk problem, a newer Chroma's format). In every such case the store is deleted and
recreated — re-embedding our small corpus is cheap, whereas a crash at start-up would lock the user out — and
the reason is reported so the UI and CLI can say what happened.
"""

from __future__ import annotations

import logging
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

log = logging.getLogger(__name__)

COLLECTION_NAME = "knowledge"
SCHEMA_VERSION = 1
_META_MODEL = "embedding_model"
_META_DIM = "dimension"
_META_SCHEMA = "schema_version"
# Chroma's hnswlib header: version, offsetLevel0, max_elements, cur_element_count, size_data_per_element.
_HNSW_HEADER = struct.Struct("<iQQQQ")
VERIFY_SAMPLES = 32
VERIFY_FULL_COUNT_MAX = 20_000  # a query over everything stays cheap up to here (ms, once per open)


class IndexUnavailable(Exception):
    """The vector store cannot be used at all (e.g. the directory cannot be written); search goes lexical."""


def _has_collection(client: ClientAPI) -> bool:
    return COLLECTION_NAME in {c.name for c in client.list_collections()}


def _is_fatal(err: BaseException) -> bool:
    return isinstance(err, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError)


def _evict_shared_system(path: Path) -> None:
    """Forget Chroma's process-wide cached system for `path`.

    Chroma shares one `System` per directory inside a process. After we delete a broken directory, a new
    client for the same path would otherwise be handed the stale system pointing at the deleted database.
    """
    identifier = str(path)
    system = SharedSystemClient._identifier_to_system.pop(identifier, None)
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)
    if system is not None:
        try:
            system.stop()
        except BaseException as err:  # noqa: BLE001 - a broken system may fail to stop; we are discarding it
            if _is_fatal(err):
                raise
            log.debug("ignoring error while stopping a discarded Chroma system: %s", err)


def segment_files_damage(path: Path) -> str | None:
    """What is wrong with the HNSW segment files under `path`, judged from their own header; None if fine.

    Chroma memory-maps `data_level0.bin` (the vectors) at the size `header.bin` promises: a truncated file
    crashed the process with SIGSEGV in our tests, before any Python error could be caught. So the sizes are
    checked first. A segment directory with no files at all is left to `VectorStore.verify` (Chroma keeps
    small collections in its write-ahead log only); a header in a format we do not know is not judged.
    """
    for segment in sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []:
        files = {f.name: f for f in segment.iterdir() if f.is_file()}
        if not files:
            continue
        header = files.get("header.bin")
        if header is None:
            return f"segment {segment.name}: header.bin is missing"
        raw = header.read_bytes()
        if len(raw) < _HNSW_HEADER.size:
            return f"segment {segment.name}: header.bin is truncated ({len(raw)} bytes)"
        version, _, _, count, per_element = _HNSW_HEADER.unpack_from(raw)
        if version != 1 or not 0 < per_element < 1 << 24 or not 0 <= count < 1 << 40:
            continue
        for name, needed in (("data_level0.bin", count * per_element), ("length.bin", count * 4)):
            size = files[name].stat().st_size if name in files else -1
            if size < needed:
                state = "missing" if size < 0 else f"{size:,} bytes, expected {needed:,}"
                return f"segment {segment.name}: {name} {state}"
    return None


class VectorStore:
    """A validated, self-healing Chroma collection for one embedding model."""

    def __init__(self, path: Path, model_name: str, *, url: str | None = None) -> None:
        self.path = Path(path).resolve()
        self.model_name = model_name
        # A Chroma server (`chroma run`) instead of the embedded store under `path`; see `_new_client`.
        self.url = url
        self._client: ClientAPI | None = None
        self._collection: chromadb.Collection | None = None
        self.dimension: int | None = None
        self.rebuild_reason: str | None = None
        self.verified = False  # vectors checked against the catalogue since this store was opened

    # -- lifecycle -------------------------------------------------------------------------------------------
    def open(self) -> str | None:
        """Open (or create) the store; returns why it had to be rebuilt, or None when it was reusable."""
        reason: str | None = None
        try:
            reason = self._open_existing()
        except BaseException as err:  # noqa: BLE001 - Rust panics surface as PanicException (BaseException)
            if _is_fatal(err):
                raise
            if self.url is not None:
                # A shared server that fails to answer is not a damaged index: never drop it for that.
                self.close()
                raise IndexUnavailable(
                    f"the Chroma server at {self.url} could not be used ({type(err).__name__}: {err})"
                ) from err
            reason = f"the index store could not be read ({type(err).__name__}: {err})"
        if reason is not None:
            self._rebuild()
        self.rebuild_reason = reason
        return reason

    def _new_client(self) -> ClientAPI:
        """The embedded store under `path` (default), or the Chroma server at `url` (ADVISOR_CHROMA_URL).

        Why a server: several advisors (or other agents) can share one curated index. Everything above the
        client (incremental sync, model-change rebuilds, user documents) is the same for both.
        """
        settings = Settings(anonymized_telemetry=False)
        if self.url is None:
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=settings)
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IndexUnavailable(f"ADVISOR_CHROMA_URL must be an http(s) URL, got {self.url!r}")
        https = parts.scheme == "https"
        return chromadb.HttpClient(
            host=parts.hostname, port=parts.port or (443 if https else 8000), ssl=https, settings=settings
        )

    def _open_existing(self) -> str | None:
        if self.url is None:
            self.path.mkdir(parents=True, exist_ok=True)
            damaged = segment_files_damage(self.path)
            if damaged:  # before Chroma maps the files: a short vector file can crash the process outright
                return f"the vector index was damaged ({damaged})"
            if not (self.path / "chroma.sqlite3").exists() and any(p.is_dir() for p in self.path.iterdir()):
                # Chroma would quietly start a new store beside the orphaned vector files: say why, clean up.
                return "the index store (chroma.sqlite3) was missing; only its vector files were left"
        client = self._new_client()
        self._client = client
        if not _has_collection(client):
            self._create_collection()
            return None
        collection = client.get_collection(COLLECTION_NAME, embedding_function=None)
        meta = dict(collection.metadata or {})
        if meta.get(_META_SCHEMA) != SCHEMA_VERSION:
            return f"the index schema changed (stored {meta.get(_META_SCHEMA)!r}, current {SCHEMA_VERSION})"
        if meta.get(_META_MODEL) != self.model_name:
            return f"the embedding model changed from {meta.get(_META_MODEL)!r} to {self.model_name!r}"
        # Touch the data, not just the catalogue: a damaged store often opens fine and fails on first read.
        count = collection.count()
        if count:
            collection.get(limit=1, include=["metadatas"])
        dim = meta.get(_META_DIM)
        self.dimension = int(dim) if isinstance(dim, int) and dim > 0 else None
        if count and self.dimension is None:
            return "the index has vectors but no recorded dimension"
        self._collection = collection
        return None

    def _create_collection(self) -> None:
        assert self._client is not None
        self._collection = self._client.create_collection(
            COLLECTION_NAME,
            metadata=self._metadata(None),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        self.dimension = None

    def _metadata(self, dimension: int | None) -> dict[str, str | int]:
        meta: dict[str, str | int] = {_META_MODEL: self.model_name, _META_SCHEMA: SCHEMA_VERSION}
        if dimension is not None:
            meta[_META_DIM] = dimension
        return meta

    def _rebuild(self) -> None:
        """An empty collection instead of the old one: new files locally, a dropped collection on a server."""
        if self.url is None:
            self.close()
            _evict_shared_system(self.path)
        where = f"on the Chroma server {self.url}" if self.url is not None else f"at {self.path}"
        try:
            if self.url is not None:
                self._drop_collection_on_server()
            else:
                self._new_files()
            self._create_collection()
            self.verified = True  # empty and new: nothing to check
        except BaseException as err:  # noqa: BLE001
            if _is_fatal(err):
                raise
            self.close()
            raise IndexUnavailable(f"Could not recreate the index {where}: {err}") from err

    def _new_files(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        elif self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self._client = chromadb.PersistentClient(
            path=str(self.path), settings=Settings(anonymized_telemetry=False)
        )

    def _drop_collection_on_server(self) -> None:
        """On a server there are no files to delete: drop the collection (it is created again)."""
        if self._client is None:
            self._client = self._new_client()
        if _has_collection(self._client):
            self._client.delete_collection(COLLECTION_NAME)

    def files_missing(self) -> bool:
        """The open store's database is gone from disk (its directory was deleted or moved under us).

        An open SQLite handle keeps answering from the unlinked file, so without this check the app would
        keep writing an index that no longer exists and lose it all at the next start.
        """
        if self.url is not None:
            return False  # the server owns its files
        return self._client is not None and not (self.path / "chroma.sqlite3").exists()

    def reset(self, reason: str) -> None:
        """Throw everything away (e.g. the model's dimension changed under the same name)."""
        self._rebuild()
        self.rebuild_reason = reason

    def close(self) -> None:
        client, self._client, self._collection = self._client, None, None
        if client is not None:
            try:
                client.close()  # type: ignore[attr-defined]  # present on the concrete client (1.x)
            except BaseException as err:  # noqa: BLE001
                if _is_fatal(err):
                    raise
                log.debug("ignoring error while closing Chroma: %s", err)

    # -- data ------------------------------------------------------------------------------------------------
    @property
    def collection(self) -> chromadb.Collection:
        if self._collection is None:
            raise IndexUnavailable("The vector index is not open.")
        return self._collection

    def ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    def count(self) -> int:
        return self.collection.count()

    def add(
        self, ids: Sequence[str], vectors: Sequence[Sequence[float]], metadatas: Sequence[dict[str, str]]
    ) -> None:
        if not ids:
            return
        dim = len(vectors[0])
        if self.dimension is None:
            self.collection.modify(metadata=self._metadata(dim))
            self.dimension = dim
        elif dim != self.dimension:
            raise ValueError(f"embedding dimension {dim} differs from the index's {self.dimension}")
        max_batch = self._max_batch()
        for start in range(0, len(ids), max_batch):
            end = start + max_batch
            self.collection.upsert(
                ids=list(ids[start:end]),
                embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                metadatas=[dict(m) for m in metadatas[start:end]],
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            max_batch = self._max_batch()
            for start in range(0, len(ids), max_batch):
                self.collection.delete(ids=list(ids[start : start + max_batch]))

    def query(self, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """Nearest chunk ids with cosine similarity, best first.

        Ids and distances only, and no `count()` first: Chroma returns fewer than `n` from a smaller (or
        empty) collection, and counting scans the table (~5 ms at 100k chunks, more than the HNSW search).
        """
        if n <= 0:
            return []
        result = self.collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=n,
            include=["distances"],
        )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[1.0] * len(ids)])[0]
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances, strict=False)]

    def _max_batch(self) -> int:
        try:
            return max(1, int(self._client.get_max_batch_size())) if self._client else 5000
        except Exception:  # noqa: BLE001 - only a sizing hint
            return 5000

    # -- integrity -------------------------------------------------------------------------------------------
    def verify(self, ids: set[str], *, samples: int = VERIFY_SAMPLES) -> str | None:
        """Why the vectors behind `ids` are not all there, or None when they are (checked once per open).

        The catalogue (SQLite) and the vectors (HNSW segment files) live apart: with the segment files deleted
        or truncated, Chroma still counts and lists every id, but only the vectors still in its write-ahead
        log can be found. So: read a spread sample of ids' vectors and look each up by itself (it must be
        among its own nearest neighbours), and count what one query over everything reaches. HNSW search is
        approximate (a healthy index of 1,231 vectors reached 1,222), hence the tolerances.
        """
        if self.verified or not ids:
            self.verified = True
            return None
        ordered = sorted(ids)
        sample = ordered[:: max(1, len(ordered) // samples)][:samples]
        try:
            got = self.collection.get(ids=sample, include=["embeddings"])
            vectors = got.get("embeddings")
            if vectors is None or len(got["ids"]) < len(sample):
                return f"{len(sample) - len(got['ids'])} of {len(sample)} sampled vectors are missing"
            found = self.collection.query(
                query_embeddings=np.asarray(vectors, dtype=np.float32),
                n_results=min(10, len(ids)),
                include=["distances"],
            )
            lost = sum(1 for cid, near in zip(got["ids"], found["ids"], strict=False) if cid not in near)
            if lost > len(sample) // 8:
                return f"{lost} of {len(sample)} sampled vectors cannot be found by search"
            if len(ids) <= VERIFY_FULL_COUNT_MAX:
                reached = len(
                    self.collection.query(
                        query_embeddings=np.asarray(vectors[:1], dtype=np.float32),
                        n_results=len(ids),
                        include=[],
                    )["ids"][0]
                )
                if reached < 0.9 * len(ids):
                    return f"only {reached} of {len(ids)} vectors can be searched"
        except BaseException as err:  # noqa: BLE001 - Rust errors/panics: the vectors cannot be read
            if _is_fatal(err):
                raise
            return f"the vectors cannot be read ({type(err).__name__}: {err})"
        self.verified = True
        return None
