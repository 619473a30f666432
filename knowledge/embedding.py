"""Embedding backends for the knowledge index.

The index never lets Chroma embed anything: Chroma's default embedding function downloads an ONNX model at
first use, which breaks the offline promise. Instead an `Embedder` is injected. The production one talks to
Ollama's `nomic-embed-text`, which was trained with task prefixes: stored text must be sent as
`search_document: ...` and questions as `search_query: ...`, otherwise retrieval quality drops noticeably.
Keeping the prefixes inside the embedder means no caller can forget them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import httpx
import ollama

DOCUMENT_PREFIX = "search_document: "
QUERY_PREFIX = "search_query: "
MAX_EMBED_CHARS = 4000
"""Longest text sent for one embedding. nomic-embed-text reads 2048 tokens; 4000 characters stay below that
even for number-heavy tables (~2 characters per token). Longer chunks (a whole table from a user document) are
embedded from their start; lexical search still sees all of their text."""
MIN_EMBED_CHARS = 250


class EmbeddingUnavailable(Exception):
    """The embedding backend cannot embed right now (down, model missing, bad answer).

    Callers treat this as "no vectors this time": search degrades to lexical, sync reports it. The message is
    written for a person, so it can be shown as-is.
    """


STALLED = "Ollama did not embed the query within"
"""Start of the message of :class:`EmbeddingStalled` (it reaches search results' assumptions)."""


class EmbeddingStalled(EmbeddingUnavailable):
    """The query's embedding did not come back within the query timeout (a hung or busy Ollama)."""


@runtime_checkable
class Embedder(Protocol):
    """What the knowledge base needs from an embedding backend."""

    model_name: str

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors for stored text; implementations add the document task prefix."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Vector for a question; implementations add the query task prefix."""
        ...


class OllamaEmbedder:
    """`Embedder` on the official Ollama client (`client.embed`), batched.

    Batching matters for start-up: one HTTP round trip per chunk would make the first index build on a
    fresh Mac needlessly slow, while one giant request makes a progress bar impossible and a timeout costly.
    """

    def __init__(
        self,
        client: ollama.Client,
        model: str = "nomic-embed-text",
        batch_size: int = 32,
        *,
        query_client: ollama.Client | None = None,
        query_timeout_s: float | None = None,
    ) -> None:
        """``query_client`` (with a short timeout, ``query_timeout_s``) embeds search queries: a search must
        fall back to keywords within seconds when Ollama stalls, while a document batch may take longer."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.client = client
        self.model_name = model
        self.batch_size = batch_size
        self.query_client = query_client
        self.query_timeout_s = query_timeout_s

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [DOCUMENT_PREFIX + text for text in texts[start : start + self.batch_size]]
            vectors.extend(self._embed(batch))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        if self.query_client is None:
            return self._embed([QUERY_PREFIX + text])[0]
        try:
            return self._embed([QUERY_PREFIX + text], self.query_client)[0]
        except EmbeddingUnavailable as err:
            if not isinstance(err.__cause__, httpx.TimeoutException):
                raise
            within = f"{self.query_timeout_s:g} s" if self.query_timeout_s else "its timeout"
            raise EmbeddingStalled(
                f"{STALLED} {within} (busy, or still loading a model); keyword search answered instead."
            ) from err

    def _embed(self, inputs: list[str], client: ollama.Client | None = None) -> list[list[float]]:
        limit = MAX_EMBED_CHARS
        while True:
            try:
                return self._embed_clipped([text[:limit] for text in inputs], client or self.client)
            except _ContextExceeded as err:
                # A model with a shorter context than nomic-embed-text's (or an Ollama that refuses instead of
                # truncating): embed a shorter start of each text rather than leave it without a vector.
                if limit <= MIN_EMBED_CHARS:
                    raise EmbeddingUnavailable(
                        f"Ollama refused to embed with '{self.model_name}': even the first {limit} "
                        f"characters of a text exceed the model's context ({err}). Pick an embedding model "
                        "with a longer context."
                    ) from err
                limit = max(MIN_EMBED_CHARS, limit // 2)

    def _embed_clipped(self, inputs: list[str], client: ollama.Client) -> list[list[float]]:
        try:
            # truncate=True: the same behaviour whatever this Ollama's default is.
            response = client.embed(model=self.model_name, input=inputs, truncate=True)
        except ollama.ResponseError as err:
            if "context length" in str(err.error).lower() and err.status_code != 404:
                raise _ContextExceeded(str(err.error)) from err
            if err.status_code == 404:
                raise EmbeddingUnavailable(
                    f"The embedding model '{self.model_name}' is not installed in Ollama; "
                    f"run `ollama pull {self.model_name}`."
                ) from err
            raise EmbeddingUnavailable(
                f"Ollama could not embed with '{self.model_name}' (HTTP {err.status_code}): {err.error}"
            ) from err
        except ConnectionError as err:  # the client's own message is generic; ours says what to do
            raise EmbeddingUnavailable(
                "Ollama is not reachable for embeddings. Start Ollama (`ollama serve`) or check OLLAMA_HOST."
            ) from err
        except (httpx.HTTPError, ollama.RequestError, OSError) as err:
            raise EmbeddingUnavailable(
                f"Ollama did not answer the embedding request ({type(err).__name__}: {err}). "
                "Check that Ollama is running and OLLAMA_HOST is right."
            ) from err
        vectors = _as_vectors(response.embeddings)
        if len(vectors) != len(inputs):
            raise EmbeddingUnavailable(
                f"Ollama returned {len(vectors)} embeddings for {len(inputs)} inputs "
                f"with '{self.model_name}'."
            )
        return vectors


class _ContextExceeded(Exception):
    pass


def _as_vectors(raw: Sequence[Sequence[float]] | None) -> list[list[float]]:
    if not raw:
        return []
    vectors = [[float(x) for x in row] for row in raw]
    dims = {len(v) for v in vectors}
    if len(dims) != 1 or 0 in dims:
        raise EmbeddingUnavailable(f"Ollama returned embeddings of inconsistent size: {sorted(dims)}.")
    return vectors
