"""K-fold cross-validation of triage training on a labelled history: how a model trained the
way ``voice-agent triage train`` trains one does on tickets it did not see.

The rows are split into ``folds`` stratified by category (a fixed seed, so two runs split the
same way); each fold is triaged by a model trained on the others and the held-out predictions
of all folds are scored together. Each row is embedded once.

What is scored is the trained model: the classifier decides the category (the keyword-rule
fallback for unsure calls is off, as with ``triage_min_confidence = 0``) and the guide's
priority rules the priority, as in a call. The default model's labels are the guide's rules
applied to the GL tickets (``voice-agent triage label``); with the keyword fallback on, the
rules would be graded against their own labels (measured: 0.974 accuracy, a figure that says
nothing). So on those labels the figures say how well the model generalises the rules to texts
it has not seen, not how right the rules are: the human-labelled dev set (``triage eval``)
says that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.triage.classifier import Embed, TriageClassifier, default_embed
from voice_agent.triage.evaluation import Scores, score
from voice_agent.triage.service import Triager, TriageResult
from voice_agent.triage.taxonomy import Taxonomy
from voice_agent.triage.training import read_labels


class CrossValidationError(VoiceAgentError, ValueError):
    code = ErrorCode.BAD_CROSS_VALIDATION


@dataclass
class CrossValidation:
    folds: int
    scores: Scores  # over every row, each predicted by the model that did not see it
    fold_accuracy: list[float]
    wall_secs: float

    def as_dict(self) -> dict:
        return {
            "folds": self.folds,
            **self.scores.as_dict(),
            "fold_accuracy": [round(a, 4) for a in self.fold_accuracy],
            "wall_secs": round(self.wall_secs, 1),
        }


def cross_validate(
    labels: Path,
    taxonomy: Taxonomy,
    *,
    folds: int = 5,
    seed: int = 0,
    embed: Embed | None = None,
    c: float = 2.0,
) -> CrossValidation:
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    rows = read_labels(labels, taxonomy)
    categories = [r["category"] for r in rows]
    if folds < 2:
        raise CrossValidationError(f"--folds must be 2 or more, not {folds}")
    smallest = min(categories.count(c) for c in set(categories))
    if smallest < folds:
        rare = sorted(c for c in set(categories) if categories.count(c) < folds)
        raise CrossValidationError(
            f"{labels}: {rare} have fewer than {folds} rows; every category needs one row per "
            f"fold (use fewer folds or label more tickets)"
        )
    texts = [r["caller_text"] for r in rows]
    vectors = (embed or default_embed)(texts)
    by_text = dict(zip(texts, vectors, strict=True))

    def cached(batch) -> np.ndarray:  # the rows' vectors, computed once above
        missing = [t for t in batch if t not in by_text]
        if missing:
            by_text.update(zip(missing, (embed or default_embed)(missing), strict=True))
        return np.stack([by_text[t] for t in batch])

    predicted: list[TriageResult | None] = [None] * len(rows)
    fold_accuracy = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(texts, categories):
        model = TriageClassifier.train(
            [texts[i] for i in train_idx],
            [categories[i] for i in train_idx],
            [rows[i]["priority"] for i in train_idx],
            category_order=taxonomy.category_names,
            priority_order=taxonomy.priority_names,
            embeddings=vectors[train_idx],
            embed=cached,
            c=c,
        )
        triager = Triager(taxonomy, model, min_confidence=0.0)
        right = 0
        for i in test_idx:
            result = triager.classify(texts[i])
            predicted[i] = result
            right += result.category == categories[i]
        fold_accuracy.append(right / len(test_idx))
    results = [r for r in predicted if r is not None]
    gold = [(r["category"], r["priority"]) for r in rows]
    return CrossValidation(
        folds=folds,
        scores=score(gold, results, taxonomy.category_names),
        fold_accuracy=fold_accuracy,
        wall_secs=time.perf_counter() - started,
    )
