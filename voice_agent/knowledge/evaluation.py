"""Retrieval evaluation against graded relevance judgements (qrels).

Qrels TSV, with a header: ``qid  row  query  article_path  grade`` (grade 2 = answers the ticket,
1 = partly relevant), one line per judged article, ``article_path`` relative to the corpus root.

Metrics, over the unique queries, from the top 10 articles of each search:

- ``recall@k`` (k = 1, 3, 5, 10): fraction of queries with at least one grade-2 article in the
  top k ("success@k"; every query has a grade-2 article).
- ``graded_recall@k``: fraction of all judged articles (grade >= 1) of a query found in the top k,
  averaged over queries.
- ``mrr@10``: mean of 1/rank of the first grade-2 article (0 when none is in the top 10).
- ``ndcg@10``: gains ``2**grade - 1``, discount ``log2(rank + 1)``, ideal ranking from the qrels.
- ``latency_ms_p50`` / ``latency_ms_p95``: wall time of ``search`` per query.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from voice_agent.knowledge.retriever import SearchResults

CUTOFFS = (1, 3, 5, 10)
DEPTH = 10


class Searcher(Protocol):
    def search(self, query: str, k: int = 10) -> SearchResults: ...


@dataclass
class Query:
    qid: str
    text: str
    grades: dict[str, int] = field(default_factory=dict)  # article_path -> grade


@dataclass
class QueryResult:
    qid: str
    query: str
    ranked: list[str]
    first_full_rank: int | None  # rank of the first grade-2 article, 1-based
    ndcg: float
    latency_ms: float


@dataclass
class EvalReport:
    metrics: dict[str, float]
    queries: list[QueryResult]

    def to_dict(self) -> dict:
        return {
            "metrics": {k: round(v, 4) for k, v in self.metrics.items()},
            "definitions": {
                "recall@k": "fraction of queries with >= 1 grade-2 article in the top k",
                "graded_recall@k": "fraction of a query's grade>=1 articles in the top k, "
                "averaged over queries",
                "mrr@10": "mean 1/rank of the first grade-2 article in the top 10",
                "ndcg@10": "gains 2^grade-1, log2(rank+1) discount",
            },
            "queries": [
                {
                    "qid": q.qid,
                    "query": q.query,
                    "first_full_rank": q.first_full_rank,
                    "ndcg": round(q.ndcg, 4),
                    "latency_ms": round(q.latency_ms, 2),
                    "top": q.ranked[:3],
                }
                for q in self.queries
            ],
        }


def load_qrels(path: Path | str) -> list[Query]:
    """Unique queries in file order, each with its graded articles."""
    queries: dict[str, Query] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"qid", "query", "article_path", "grade"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: qrels header lacks {sorted(missing)}")
        for row in reader:
            q = queries.setdefault(row["qid"], Query(row["qid"], row["query"]))
            q.grades[row["article_path"]] = max(
                int(row["grade"]), q.grades.get(row["article_path"], 0)
            )
    return list(queries.values())


def load_queries(path: Path | str) -> list[tuple[str, str]]:
    """(qid, query) from a TSV with a ``qid`` and a ``query`` column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["qid"], row["query"]) for row in reader]


def evaluate(searcher: Searcher, qrels: list[Query], depth: int = DEPTH) -> EvalReport:
    results: list[QueryResult] = []
    hits_at = {k: 0 for k in CUTOFFS}
    graded_at = {k: 0.0 for k in CUTOFFS}
    rr_sum = 0.0
    for q in qrels:
        found = searcher.search(q.text, k=depth)
        ranked = [h.article_path for h in found]
        first = next((i for i, p in enumerate(ranked, 1) if q.grades.get(p, 0) >= 2), None)
        relevant = {p for p, g in q.grades.items() if g >= 1}
        for k in CUTOFFS:
            if first is not None and first <= k:
                hits_at[k] += 1
            if relevant:
                graded_at[k] += len(relevant & set(ranked[:k])) / len(relevant)
        if first is not None:
            rr_sum += 1.0 / first
        results.append(
            QueryResult(
                q.qid, q.text, ranked, first, ndcg(ranked, q.grades, depth), found.latency_ms
            )
        )
    n = max(len(qrels), 1)
    latencies = np.array([r.latency_ms for r in results]) if results else np.zeros(1)
    metrics: dict[str, float] = {}
    for k in CUTOFFS:
        metrics[f"recall@{k}"] = hits_at[k] / n
    for k in CUTOFFS:
        metrics[f"graded_recall@{k}"] = graded_at[k] / n
    metrics["mrr@10"] = rr_sum / n
    metrics["ndcg@10"] = sum(r.ndcg for r in results) / n
    metrics["latency_ms_p50"] = float(np.percentile(latencies, 50))
    metrics["latency_ms_p95"] = float(np.percentile(latencies, 95))
    metrics["queries"] = float(len(qrels))
    return EvalReport(metrics, results)


def ndcg(ranked: list[str], grades: dict[str, int], depth: int = DEPTH) -> float:
    dcg = sum(
        (2 ** grades.get(p, 0) - 1) / math.log2(i + 1) for i, p in enumerate(ranked[:depth], 1)
    )
    ideal = sorted(grades.values(), reverse=True)[:depth]
    idcg = sum((2**g - 1) / math.log2(i + 1) for i, g in enumerate(ideal, 1))
    return dcg / idcg if idcg > 0 else 0.0


def write_run(
    searcher: Searcher, queries_tsv: Path | str, out_tsv: Path | str, depth: int = DEPTH
) -> int:
    """Search every query of ``queries_tsv``; write ``qid rank article_path score`` rows."""
    rows = 0
    out = Path(out_tsv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["qid", "rank", "article_path", "score"])
        for qid, text in load_queries(queries_tsv):
            for rank, hit in enumerate(searcher.search(text, k=depth), start=1):
                writer.writerow([qid, rank, hit.article_path, f"{hit.score:.6f}"])
                rows += 1
    return rows
