"""What the conversation needs from the rest of the system, and what it answers with.

The flow is plain Python over these few interfaces, so it runs the same inside a call's pipeline
and in a test that only types text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voice_agent.flows.runbooks import RunbookGuide
from voice_agent.flows.understanding import ActClassifier
from voice_agent.records import Outcome
from voice_agent.tickets.records import NewTicket


class TriageLike(Protocol):
    """voice_agent.triage.TriageResult, read-only."""

    @property
    def category(self) -> str: ...

    @property
    def priority(self) -> str: ...

    @property
    def confidence(self) -> float: ...

    @property
    def source(self) -> str: ...

    @property
    def escalate(self) -> bool: ...

    @property
    def assignment_group(self) -> str: ...

    def for_call(self, *, latency_secs: float | None = None) -> dict[str, Any]: ...


class Triage(Protocol):
    """voice_agent.triage.Triager: a fast classifier, with the language model when unsure."""

    def classify(self, text: str) -> TriageLike: ...

    def with_category(self, text: str, category: str) -> TriageLike: ...

    async def triage(self, text: str) -> TriageLike: ...

    @property
    def min_confidence(self) -> float: ...


class TicketLike(Protocol):
    """voice_agent.tickets.TicketInfo, read-only."""

    @property
    def number(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def priority(self) -> str: ...

    @property
    def summary(self) -> str: ...


class TicketDesk(Protocol):
    """voice_agent.tickets.TicketService: the built-in ticket store (and ITSM sync)."""

    async def create(self, ticket: NewTicket) -> TicketLike: ...

    async def get(self, number: str) -> TicketLike | None: ...

    async def latest_for_caller(
        self,
        *,
        caller: str | None,
        name: str | None,
        callback_number: str | None,
        call_id: str | None = None,
    ) -> TicketLike | None: ...


@dataclass
class Reply:
    """What the agent does with one caller turn."""

    say: str | None = None  # words spoken as they are (no language model)
    note: str | None = None  # else: the model answers, told this for this turn only
    end_call: bool = False  # hang up after saying it
    transfer: bool = False  # hand the caller to a human after saying it
    citations: list[dict] = field(default_factory=list)
    error: str | None = None  # machine-readable code when something failed (recorded)
    ticket: str | None = None  # the ticket opened or read back on this turn
    stages: dict[str, float] = field(default_factory=dict)  # triage_done, lookup_done
    # what the caller's turn was understood to do: {"act", "confidence", "by"}
    understood: dict[str, Any] = field(default_factory=dict)


@dataclass
class HelpdeskServices:
    runbooks: RunbookGuide
    triage: Triage
    tickets: TicketDesk
    acts: ActClassifier | None = None  # voice_agent.dialogue_acts: what a caller's turn does
    call_id: str | None = None
    caller_phone: str | None = None  # the line the call came from (Twilio "From")
    can_transfer: bool = False
    company: str = "Example Corp"
    # the call record learns what the conversation learns
    on_triage: Callable[[TriageLike, float], Awaitable[None] | None] = lambda result, secs: None
    on_caller: Callable[[str | None, str | None], Awaitable[None] | None] = lambda n, c: None
    on_outcome: Callable[[Outcome], Awaitable[None] | None] = lambda outcome: None
