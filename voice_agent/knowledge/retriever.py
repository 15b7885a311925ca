"""Hybrid retrieval: BM25 and dense chunk rankings, fused with Reciprocal Rank Fusion, then
rolled up to articles.

For a query, BM25 and the embedding index each return their top ``candidates`` chunks (50 by
default). Each chunk scores ``sum(weight / (rrf_k + rank))`` over the rankings it appears in
(rank 1-based, ``rrf_k`` = 60). An article scores the best of its chunks (``aggregate="max"``) or
a decayed sum ``s1 + decay*s2 + decay^2*s3 ...`` of its chunk scores, best first
(``aggregate="decay"``), which rewards articles that match in several places. ``mode="bm25"``
or ``"dense"`` uses one ranking only (for evaluation).

Before either ranking, the caller's words are expanded with the runbooks' words for the same
thing (:mod:`voice_agent.knowledge.caller_terms`: "wifi" also searches "wireless network").
What was searched is kept on the results (``searched_as``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from voice_agent.knowledge.caller_terms import CallerTerms
from voice_agent.knowledge.store import KnowledgeStore, StoredChunk

Mode = Literal["hybrid", "bm25", "dense"]
Aggregate = Literal["max", "decay"]


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: str
    section: str
    text: str
    score: float  # fused (RRF) score of this chunk
    bm25_rank: int | None = None  # 1-based rank in the BM25 list, None if absent
    dense_rank: int | None = None


@dataclass(frozen=True)
class ArticleHit:
    article_path: str  # relative to the ingested root
    title: str
    score: float
    best_chunk: ChunkHit
    root: str = ""
    # the best cosine similarity of the query to any of the article's chunks (dense search):
    # ranks say which article is best, this says whether it is relevant at all
    similarity: float | None = None

    def to_dict(self) -> dict:
        return {
            "article_path": self.article_path,
            "title": self.title,
            "score": round(self.score, 6),
            "root": self.root,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "best_chunk": {
                "section": self.best_chunk.section,
                "text": self.best_chunk.text,
                "score": round(self.best_chunk.score, 6),
                "bm25_rank": self.best_chunk.bm25_rank,
                "dense_rank": self.best_chunk.dense_rank,
            },
        }


class SearchResults(list[ArticleHit]):
    """The ranked articles (a list), with how long the search took."""

    def __init__(
        self, hits: list[ArticleHit], *, query: str, latency_s: float, searched_as: str = ""
    ) -> None:
        super().__init__(hits)
        self.query = query
        self.searched_as = searched_as or query  # the query with the runbook words added
        self.latency_s = latency_s

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1000.0


class HybridRetriever:
    def __init__(
        self,
        store: KnowledgeStore,
        *,
        mode: Mode = "hybrid",
        candidates: int = 50,
        rrf_k: int = 60,
        bm25_weight: float = 1.0,
        dense_weight: float = 1.0,
        aggregate: Aggregate = "max",
        decay: float = 0.5,
        terms: CallerTerms | None = None,
    ) -> None:
        """``terms``: the caller-words lexicon (None: the packaged one; ``CallerTerms.none()``
        searches the caller's words as they are)."""
        self.store = store
        self.terms = terms if terms is not None else CallerTerms.load()
        self.mode = mode
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.dense_weight = dense_weight
        self.aggregate = aggregate
        self.decay = decay

    def search(self, query: str, k: int = 10) -> SearchResults:
        """The top ``k`` articles for ``query``; [] for an empty knowledge base or query."""
        started = time.perf_counter()
        query = query.strip()
        if not query or len(self.store) == 0:
            return SearchResults([], query=query, latency_s=time.perf_counter() - started)

        searched_as = self.terms.expand(query)
        rankings: list[tuple[float, list[tuple[str, float]], str]] = []
        if self.mode in ("hybrid", "bm25"):
            bm25 = self.store.bm25_search(searched_as, self.candidates)
            rankings.append((self.bm25_weight, bm25, "bm25"))
        if self.mode in ("hybrid", "dense"):
            vector = self.store.embedder.embed_query(searched_as)
            dense = self.store.dense_search(vector, self.candidates)
            rankings.append((self.dense_weight, dense, "dense"))

        fused: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        cosine: dict[str, float] = {}
        for weight, ranking, name in rankings:
            for rank, (chunk_id, score) in enumerate(ranking, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (self.rrf_k + rank)
                ranks.setdefault(chunk_id, {})[name] = rank
                if name == "dense":
                    cosine[chunk_id] = score

        by_article: dict[tuple[str, str], list[tuple[float, str, StoredChunk]]] = {}
        for chunk_id, score in fused.items():
            chunk = self.store.chunk(chunk_id)
            if chunk is None:  # an ingest replaced it in the meantime
                continue
            key = (chunk.root, chunk.article_path)
            by_article.setdefault(key, []).append((score, chunk_id, chunk))

        hits: list[ArticleHit] = []
        for (root, path), scored in by_article.items():
            scored.sort(key=lambda x: (-x[0], x[1]))
            if self.aggregate == "max":
                score = scored[0][0]
            else:
                score = sum(s * self.decay**i for i, (s, _, _) in enumerate(scored))
            _, best_id, best = scored[0]
            chunk_ranks = ranks.get(best_id, {})
            hits.append(
                ArticleHit(
                    article_path=path,
                    title=best.title,
                    score=score,
                    root=root,
                    similarity=max((cosine[c] for _, c, _ in scored if c in cosine), default=None),
                    best_chunk=ChunkHit(
                        chunk_id=best_id,
                        section=best.section,
                        text=best.text,
                        score=scored[0][0],
                        bm25_rank=chunk_ranks.get("bm25"),
                        dense_rank=chunk_ranks.get("dense"),
                    ),
                )
            )
        hits.sort(key=lambda h: (-h.score, h.article_path))
        return SearchResults(
            hits[:k],
            query=query,
            latency_s=time.perf_counter() - started,
            searched_as=searched_as,
        )
