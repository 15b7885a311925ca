"""Score a triager on labelled caller texts: accuracy, macro-F1, per-category precision, recall
and F1, priority accuracy, the confusion matrix, how well the confidence is calibrated, and
latency percentiles: the numbers ``voice-agent triage eval`` (and, on held-out folds,
``voice-agent triage cv``) prints and the regression tests gate on."""

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
class Scores:
    """How predicted triages compare with gold labels (an evaluation file or held-out folds)."""

    rows: int
    accuracy: float
    macro_f1: float
    per_category: dict[str, dict[str, float]]  # category -> precision, recall, f1, support
    priority_accuracy: float
    confusion: dict[str, dict[str, int]]  # gold -> predicted -> count
    calibration_error: float  # expected calibration error of the confidence, 10 bins

    @property
    def per_category_f1(self) -> dict[str, float]:
        return {k: v["f1"] for k, v in self.per_category.items()}

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "per_category_f1": self.per_category_f1}


def class_scores(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support of each label (0.0 where undefined)."""
    out = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label and g != label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        out[label] = {
            "precision": round(tp / (tp + fp), 4) if tp else 0.0,
            "recall": round(tp / (tp + fn), 4) if tp else 0.0,
            "f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0,
            "support": tp + fn,
        }
    return out


def calibration_error(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    """Expected calibration error: over equal-width confidence bins, the row-weighted gap
    between the mean confidence and the share of right answers (0 = the confidence is the
    probability of being right)."""
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    which = np.minimum((conf * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(right[in_bin].mean() - conf[in_bin].mean())
    return round(float(error), 4)


def score(
    gold: list[tuple[str, str]],
    predicted: list[TriageResult],
    categories: list[str],
) -> Scores:
    """``gold``: (category, priority) per row; ``categories``: the taxonomy's, in its order
    (the per-category figures cover those present in the gold labels)."""
    gold_c = [c for c, _ in gold]
    pred_c = [r.category for r in predicted]
    present = [c for c in categories if c in set(gold_c)]
    per = class_scores(gold_c, pred_c, present)
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold_c, pred_c, strict=True):
        confusion.setdefault(g, {}).setdefault(p, 0)
        confusion[g][p] += 1
    right = [g == p for g, p in zip(gold_c, pred_c, strict=True)]
    n = max(len(gold), 1)
    return Scores(
        rows=len(gold),
        accuracy=sum(right) / n,
        macro_f1=float(np.mean([v["f1"] for v in per.values()])) if per else 0.0,
        per_category=per,
        priority_accuracy=sum(p == r.priority for (_, p), r in zip(gold, predicted, strict=True))
        / n,
        confusion=confusion,
        calibration_error=calibration_error([r.confidence for r in predicted], right),
    )


@dataclass
class EvalReport:
    scores: Scores
    latency_p50_secs: float
    latency_p95_secs: float
    sources: dict[str, int]
    llm: bool
    wall_secs: float
    mistakes: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("mistakes", "scores")}
        return {**self.scores.as_dict(), **out}


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
    gold = [(r["category"], r["priority"]) for r in rows]
    return EvalReport(
        scores=score(gold, results, triager.taxonomy.category_names),
        latency_p50_secs=float(np.percentile(latencies, 50)),
        latency_p95_secs=float(np.percentile(latencies, 95)),
        sources=dict(Counter(r.source for r in results)),
        llm=use_llm and triager.has_llm,
        wall_secs=time.perf_counter() - started,
        mistakes=mistakes,
    )
