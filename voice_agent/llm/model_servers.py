"""The pool of OpenAI-compatible model servers a scaled-out deployment shares.

``llm_base_url`` names one server or several (comma-separated). Each request goes to the next
server in turn (spreading the calls), skipping one that failed in the last ``COOLDOWN_SECS``; a
server that refuses the connection, answers 429 or 5xx, or does not start answering within
``llm_request_timeout_secs`` is marked down and the request is tried on the next one. Only when
every server has failed does the turn fail, and the caller hears the trouble phrase (the call's
pipeline-error handler) instead of silence.

The pool's state (which server is next, which are down) is the process's: every call on this
instance learns from the others' failures.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

COOLDOWN_SECS = 10.0


def endpoints(base_url: str | None) -> list[str]:
    """``"http://a/v1, http://b/v1"`` -> ``["http://a/v1", "http://b/v1"]``."""
    return [u.strip() for u in (base_url or "").split(",") if u.strip()]


class ModelServerPool:
    _shared: dict[tuple[str, ...], ModelServerPool] = {}
    _shared_lock = threading.Lock()

    def __init__(self, urls: Sequence[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("a model server pool needs at least one URL")
        self.urls = list(urls)
        self._clock = clock
        self._next = itertools.cycle(range(len(self.urls)))
        self._down_until: dict[str, float] = {}

    @classmethod
    def shared(cls, urls: Sequence[str]) -> ModelServerPool:
        """The process's pool for these URLs (created on first use)."""
        key = tuple(urls)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(key)
            return cls._shared[key]

    def order(self) -> list[str]:
        """Every server, in the order to try them for one request: the next up servers in turn,
        then those marked down (soonest back first), so a request is tried everywhere."""
        start = next(self._next)
        turn = self.urls[start:] + self.urls[:start]
        now = self._clock()
        up = [u for u in turn if self._down_until.get(u, 0.0) <= now]
        down = sorted((u for u in turn if u not in up), key=lambda u: self._down_until[u])
        return up + down

    def failed(self, url: str) -> None:
        self._down_until[url] = self._clock() + COOLDOWN_SECS

    def succeeded(self, url: str) -> None:
        self._down_until.pop(url, None)

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > self._clock()
