"""Knowledge base for mac-ai-advisor: our passages from the article, user documents, hybrid retrieval.

Depends on nothing else of ours; the assistant injects an `Embedder` (normally `OllamaEmbedder`).
"""

from knowledge.chunking import Chunk, FrontMatterError, SourceDocument, chunk_document, load_passages
from knowledge.documents import DocumentError, UserDocument
from knowledge.embedding import Embedder, EmbeddingUnavailable, OllamaEmbedder
from knowledge.index import IndexUnavailable, VectorStore
from knowledge.search import (
    KnowledgeBase,
    Passage,
    SearchKnowledgeInput,
    SearchKnowledgeOutput,
    SyncReport,
    reciprocal_rank_fusion,
)

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
