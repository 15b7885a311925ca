"""Who may start a call, and how many run at once.

Every call costs real CPU from its first second (the greeting is synthesised, the VAD and the
recogniser run on each frame), so a server that took every call offered would answer none in
time: 25 junk browser offers once pushed a real phone call's first answer from under a second to
22 s. Each transport asks :class:`CallAdmission` for a slot before it starts a call; beyond
``max_concurrent_calls`` the call is refused in a way its transport can say (a TwiML "lines are
busy", a WebSocket close code 1013, HTTP 503). Browser demo calls are also limited per client
address (a token bucket of ``per_client_per_minute``), since anyone who can load the page can
press the button.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_CLIENTS_TRACKED = 10_000


class CallRefused(Exception):
    """No slot for this call; ``reason`` is said to the client, ``code`` goes in the logs."""

    def __init__(self, code: str, reason: str, retry_after_secs: float | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry_after_secs = retry_after_secs


@dataclass
class CallSlot:
    """One admitted call; ``release()`` (or leaving the ``with`` block) frees its slot once."""

    admission: CallAdmission
    transport: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission._release(self)

    def __enter__(self) -> CallSlot:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


class CallAdmission:
    def __init__(
        self,
        max_calls: int,
        *,
        per_client_per_minute: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_concurrent_calls must be at least 1")
        self.max_calls = max_calls
        self.per_client_per_minute = per_client_per_minute
        self._clock = clock
        self._active = 0
        self.refused = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated at)

    @property
    def active(self) -> int:
        return self._active

    def refuse_if_full(self) -> bool:
        """True (and counted as a refusal) when every line is busy; takes no slot."""
        if self._active < self.max_calls:
            return False
        self.refused += 1
        return True

    def admit(self, transport: str, client: str | None = None) -> CallSlot:
        """A slot for one call, or :class:`CallRefused`. ``client``: rate-limit this address."""
        if self._active >= self.max_calls:
            self.refused += 1
            raise CallRefused(
                "at_capacity",
                f"all {self.max_calls} lines are busy: try again in a few minutes",
                retry_after_secs=30,
            )
        if client is not None:
            wait = self._take_token(client)
            if wait > 0:
                self.refused += 1
                raise CallRefused(
                    "rate_limited",
                    f"too many calls from {client}: wait {wait:.0f} s",
                    retry_after_secs=wait,
                )
        self._active += 1
        return CallSlot(self, transport)

    def _release(self, _slot: CallSlot) -> None:
        self._active = max(0, self._active - 1)

    def _take_token(self, client: str) -> float:
        """Take one call token from ``client``'s bucket; the seconds to wait if it is empty."""
        now = self._clock()
        capacity = max(1.0, self.per_client_per_minute)
        rate = self.per_client_per_minute / 60.0
        tokens, at = self._buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / rate
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > MAX_CLIENTS_TRACKED:  # forget the longest-idle clients
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:1000]:
                del self._buckets[key]
        return 0.0
