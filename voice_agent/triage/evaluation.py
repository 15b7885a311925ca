"""Score a triager on labelled caller texts: accuracy, macro-F1, per-category F1, priority
accuracy, confusion matrix and latency percentiles: the numbers ``voice-agent triage eval``
prints and the regression tests gate on."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voice_agent.triage.service import Triager, TriageResult
from voice_agent.triage.tsv import read_tsv

EVAL_COLUMNS = ("caller_text", "category", "priority")


@dataclass
class EvalReport:
    rows: int
    accuracy: float
    macro_f1: float
    per_category_f1: dict[str, float]
    priority_accuracy: float
    confusion: dict[str, dict[str, int]]  # gold -> predicted -> count
    latency_p50_secs: float
    latency_p95_secs: float
    sources: dict[str, int]
    llm: bool
    wall_secs: float
    mistakes: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "mistakes"}


def f1_scores(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, float]:
    out = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label and g != label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        out[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


async def evaluate(
    triager: Triager, labels: Path, *, use_llm: bool = True, limit: int | None = None
) -> EvalReport:
    rows = read_tsv(labels, EVAL_COLUMNS)[:limit] if limit else read_tsv(labels, EVAL_COLUMNS)
    started = time.perf_counter()
    results: list[TriageResult] = []
    for row in rows:
        if use_llm:
            results.append(await triager.triage(row["caller_text"]))
        else:
            results.append(triager.classify(row["caller_text"]))
    gold_c = [r["category"] for r in rows]
    pred_c = [r.category for r in results]
    present = [c for c in triager.taxonomy.category_names if c in set(gold_c)]
    f1 = f1_scores(gold_c, pred_c, present)
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold_c, pred_c, strict=True):
        confusion.setdefault(g, {}).setdefault(p, 0)
        confusion[g][p] += 1
    latencies = np.array([r.latency_secs for r in results])
    mistakes = [
        {
            "row": row.get("row", ""),
            "text": row["caller_text"],
            "gold": f"{row['category']}/{row['priority']}",
            "predicted": f"{res.category}/{res.priority}",
            "source": res.source,
        }
        for row, res in zip(rows, results, strict=True)
        if row["category"] != res.category or row["priority"] != res.priority
    ]
    return EvalReport(
        rows=len(rows),
        accuracy=sum(g == p for g, p in zip(gold_c, pred_c, strict=True)) / len(rows),
        macro_f1=float(np.mean(list(f1.values()))) if f1 else 0.0,
        per_category_f1={k: round(v, 4) for k, v in f1.items()},
        priority_accuracy=sum(
            r["priority"] == res.priority for r, res in zip(rows, results, strict=True)
        )
        / len(rows),
        confusion=confusion,
        latency_p50_secs=float(np.percentile(latencies, 50)),
        latency_p95_secs=float(np.percentile(latencies, 95)),
        sources=dict(Counter(r.source for r in results)),
        llm=use_llm and triager.has_llm,
        wall_secs=time.perf_counter() - started,
        mistakes=mistakes,
    )
