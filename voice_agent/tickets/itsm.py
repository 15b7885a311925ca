"""What the ticket service needs from an external ITSM system (ServiceNow, or another one).

The built-in ticket table is the source of truth for the call: its number exists before any
external system answers. An adapter mirrors those tickets to the system a company's human
helpdesk works in, and reports back what that system knows (its own number, the current state).
Adapters speak in our statuses and priorities; mapping to the vendor's codes is theirs to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Our ticket statuses, in the order a ticket normally moves through them.
STATUSES: tuple[str, ...] = ("new", "in_progress", "on_hold", "resolved", "closed", "canceled")


class ITSMError(Exception):
    """A call to the ITSM system failed.

    ``code`` is machine-readable (``unauthorized``, ``forbidden``, ``not_found``, ``bad_request``,
    ``rate_limited``, ``unavailable``, ``timeout``, ``unreachable``, ``bad_response``,
    ``http_error``);
    ``retryable`` says whether the same request may succeed later (rate limits, outages, timeouts)
    or needs a person to fix something first (credentials, permissions, a bad request).
    """

    def __init__(
        self, code: str, retryable: bool, message: str = "", *, status: int | None = None
    ) -> None:
        super().__init__(message or code)
        self.code = code
        self.retryable = retryable
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


@dataclass(frozen=True)
class NewIncident:
    """A local ticket as the ITSM system should receive it (texts already redacted)."""

    correlation_id: str  # our ticket number: lets the external record be found again
    summary: str
    description: str
    category: str
    priority: str
    assignment_group: str | None = None
    caller_name: str | None = None
    callback_number: str | None = None
    caller: str | None = None  # the line the call came from
    call_id: str | None = None


@dataclass(frozen=True)
class IncidentChanges:
    """What changed on a local ticket; None means unchanged."""

    status: str | None = None
    note: str | None = None  # a work note for the humans working the incident
    priority: str | None = None
    assignment_group: str | None = None


@dataclass(frozen=True)
class ExternalIncident:
    """An incident as the ITSM system reports it, in our terms."""

    system: str  # "servicenow"
    external_id: str  # the system's record id (ServiceNow sys_id)
    number: str  # the system's own number (ServiceNow INC0010001)
    status: str  # one of STATUSES
    state: str  # the system's raw state code, kept for diagnosis
    priority: str | None = None  # ours (P1..P4) where the system's levels map back to one
    summary: str = ""
    correlation_id: str | None = None
    updated_at: str | None = None  # as the system writes it


@runtime_checkable
class ITSMAdapter(Protocol):
    """An external ITSM system. Every method raises :class:`ITSMError` on failure."""

    name: str

    async def create_incident(self, incident: NewIncident) -> ExternalIncident: ...

    async def get_incident(self, number: str) -> ExternalIncident | None:
        """The incident with the system's own ``number``; None when there is none."""
        ...

    async def find_by_correlation_id(self, correlation_id: str) -> ExternalIncident | None:
        """The incident created earlier for our ticket ``correlation_id`` (a retry after a
        timeout must not create a second one)."""
        ...

    async def update_incident(
        self, external_id: str, changes: IncidentChanges
    ) -> ExternalIncident: ...

    async def aclose(self) -> None: ...
