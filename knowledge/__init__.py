"""Knowledge base for mac-ai-advisor: our passages from the article, user documents, hybrid retrieval.

Depends on nothing else of ours; the assistant injects an `Embedder` (normally `OllamaEmbedder`).
"""

from typing import TYPE_CHECKING, Any

from knowledge import proxy_env

# The ollama package's import-time default client must not read proxy variables (SOCKS in ALL_PROXY killed
# every entry point); see knowledge/proxy_env.py.
proxy_env.install()

if TYPE_CHECKING:
    from knowledge.chunking import Chunk, FrontMatterError, SourceDocument, chunk_document, load_passages
    from knowledge.documents import DocumentError, UserDocument
    from knowledge.embedding import Embedder, EmbeddingUnavailable, OllamaEmbedder
    from knowledge.index import IndexUnavailable, VectorStore
    from knowledge.schemas import Passage, SearchKnowledgeInput, SearchKnowledgeOutput
    from knowledge.search import KnowledgeBase, SyncReport, reciprocal_rank_fusion

# Imported on first access (PEP 562): `import knowledge.schemas` (what the MCP server needs to list its tools)
# must not pay for Chroma, BM25 and the Ollama client.
_LAZY = {
    "Chunk": "knowledge.chunking",
    "FrontMatterError": "knowledge.chunking",
    "SourceDocument": "knowledge.chunking",
    "chunk_document": "knowledge.chunking",
    "load_passages": "knowledge.chunking",
    "DocumentError": "knowledge.documents",
    "UserDocument": "knowledge.documents",
    "Embedder": "knowledge.embedding",
    "EmbeddingUnavailable": "knowledge.embedding",
    "OllamaEmbedder": "knowledge.embedding",
    "IndexUnavailable": "knowledge.index",
    "VectorStore": "knowledge.index",
    "KnowledgeBase": "knowledge.search",
    "SyncReport": "knowledge.search",
    "reciprocal_rank_fusion": "knowledge.search",
    "Passage": "knowledge.schemas",
    "SearchKnowledgeInput": "knowledge.schemas",
    "SearchKnowledgeOutput": "knowledge.schemas",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Chunk",
    "DocumentError",
    "Embedder",
    "EmbeddingUnavailable",
    "FrontMatterError",
    "IndexUnavailable",
    "KnowledgeBase",
    "OllamaEmbedder",
    "Passage",
    "SearchKnowledgeInput",
    "SearchKnowledgeOutput",
    "SourceDocument",
    "SyncReport",
    "UserDocument",
    "VectorStore",
    "chunk_document",
    "load_passages",
    "reciprocal_rank_fusion",
]
