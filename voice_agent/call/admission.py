"""Who may start a call, and how many run at once.

Every call costs real CPU from its first second (the greeting is synthesised, the VAD and the
recogniser run on each frame), so a server that took every call offered would answer none in
time: 25 junk browser offers once pushed a real phone call's first answer from under a second to
22 s. Each transport asks :class:`CallAdmission` for a slot before it starts a call; beyond
``max_concurrent_calls`` the call is refused in a way its transport can say (a TwiML "lines are
busy", a WebSocket close code 1013, HTTP 503). Browser demo calls are also limited per client
address (a token bucket of ``per_client_per_minute``), since anyone who can load the page can
press the button.

A server being stopped *drains*: from :meth:`CallAdmission.start_draining` on it admits no new
call (a load balancer sends them to another instance), and :meth:`CallAdmission.drain` waits for
the calls in progress to end, saying goodbye on those still running at its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger

MAX_CLIENTS_TRACKED = 10_000


class CallRefused(Exception):
    """No slot for this call; ``reason`` is said to the client, ``code`` goes in the logs."""

    def __init__(self, code: str, reason: str, retry_after_secs: float | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry_after_secs = retry_after_secs


@dataclass(eq=False)
class CallSlot:
    """One admitted call; ``release()`` (or leaving the ``with`` block) frees its slot once.

    ``close_early``, set once the call runs, ends it politely when a draining server's deadline
    comes (the call runner sets it: ``Call.close_for_shutdown``)."""

    admission: CallAdmission
    transport: str
    released: bool = False
    close_early: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

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
        self._slots: set[CallSlot] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.refused_by_reason: dict[str, int] = {}
        self.draining = False
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated at)

    @property
    def active(self) -> int:
        return len(self._slots)

    def _count_refusal(self, reason: str) -> None:
        self.refused_by_reason[reason] = self.refused_by_reason.get(reason, 0) + 1

    def refuse_if_full(self) -> bool:
        """True (and counted as a refusal) when every line is busy; takes no slot."""
        if self.active < self.max_calls:
            return False
        self._count_refusal("at_capacity")
        return True

    def admit(self, transport: str, client: str | None = None) -> CallSlot:
        """A slot for one call, or :class:`CallRefused`. ``client``: rate-limit this address."""
        if self.draining:
            self._count_refusal("draining")
            raise CallRefused(
                "draining",
                "this server is shutting down: call again to reach another line",
                retry_after_secs=1,
            )
        if self.active >= self.max_calls:
            self._count_refusal("at_capacity")
            raise CallRefused(
                "at_capacity",
                f"all {self.max_calls} lines are busy: try again in a few minutes",
                retry_after_secs=30,
            )
        if client is not None:
            wait = self._take_token(client)
            if wait > 0:
                self._count_refusal("rate_limited")
                raise CallRefused(
                    "rate_limited",
                    f"too many calls from {client}: wait {wait:.0f} s",
                    retry_after_secs=wait,
                )
        slot = CallSlot(self, transport)
        self._slots.add(slot)
        self._idle.clear()
        return slot

    def _release(self, slot: CallSlot) -> None:
        self._slots.discard(slot)
        if not self._slots:
            self._idle.set()

    def start_draining(self) -> None:
        """Admit no more calls (``/readyz`` answers 503 from now on)."""
        self.draining = True

    async def drain(self, timeout_secs: float, *, goodbye_secs: float = 15.0) -> int:
        """Stop admitting calls and wait up to ``timeout_secs`` for those in progress to end.
        Calls still running then are ended with a spoken goodbye (``goodbye_secs`` for it to
        play and their records to close). Returns how many calls had to be ended so."""
        self.start_draining()
        if await self._wait_idle(timeout_secs):
            return 0
        running = list(self._slots)
        for slot in running:
            if slot.close_early is None:
                continue
            try:
                await slot.close_early()
            except Exception:  # one call that cannot say goodbye must not keep the others on
                logger.exception(f"a {slot.transport} call could not be ended with a goodbye")
        await self._wait_idle(goodbye_secs)
        return len(running)

    async def _wait_idle(self, timeout_secs: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_secs)
        except TimeoutError:
            return False
        return True

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
