"""The ticket table, read and written synchronously (the service runs these in a thread).

Rows live in ``voice_agent.storage.Ticket`` beside the call records, in the same database. What
a caller said (summary, description, notes) passes through ``CallStore.redact`` before it is
written; the caller's name and callback number are kept as given, since a ticket needs them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from voice_agent.clock import as_utc, utcnow
from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.storage import CallStore, Ticket
from voice_agent.tickets.itsm import STATUSES, ExternalIncident

SUMMARY_CHARS = 2000


class TicketNotFoundError(VoiceAgentError, LookupError):
    """No ticket with that number (locally, or in the ITSM system when one is configured)."""

    code = ErrorCode.TICKET_NOT_FOUND


@dataclass(frozen=True)
class NewTicket:
    """A ticket to open: the caller's problem, its triage, and how to reach the caller."""

    summary: str
    category: str = "other"
    priority: str = "P3"
    description: str = ""
    assignment: str | None = None  # the triage's assignment group
    call_id: str | None = None
    caller: str | None = None  # the line the call came from
    caller_name: str | None = None
    callback_number: str | None = None
    reason: str | None = None  # why it was opened: caller_request, runbook_failed, ...


@dataclass(frozen=True)
class TicketInfo:
    """One ticket as the rest of the system sees it (a snapshot of its row)."""

    number: str
    status: str
    category: str
    priority: str
    summary: str
    assignment: str | None
    caller_name: str | None
    callback_number: str | None
    external_number: str | None
    sync_error: str | None
    created_at: datetime | None
    updated_at: datetime | None
    call_id: str | None
    description: str = ""
    reason: str | None = None
    caller: str | None = None
    external_system: str | None = None
    external_id: str | None = None

    @property
    def reference(self) -> str:
        """The number to give a caller: the ITSM system's when the ticket reached it."""
        return self.external_number or self.number

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for key in ("created_at", "updated_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    @classmethod
    def from_row(cls, row: Ticket) -> TicketInfo:
        return cls(
            number=row.number or "",
            status=row.status,
            category=row.category,
            priority=row.priority,
            summary=row.summary,
            assignment=row.assignment,
            caller_name=row.caller_name,
            callback_number=row.callback_number,
            external_number=row.external_number,
            sync_error=row.sync_error,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            call_id=row.call_id,
            description=row.description,
            reason=row.reason,
            caller=row.caller,
            external_system=row.external_system,
            external_id=row.external_id,
        )

    @classmethod
    def from_external(cls, incident: ExternalIncident) -> TicketInfo:
        """A ticket only the ITSM system knows (opened there by a person, not on a call)."""
        return cls(
            number=incident.number,
            status=incident.status,
            category="other",
            priority=incident.priority or "",
            summary=incident.summary,
            assignment=None,
            caller_name=None,
            callback_number=None,
            external_number=incident.number,
            sync_error=None,
            created_at=None,
            updated_at=None,
            call_id=None,
            external_system=incident.system,
            external_id=incident.external_id,
        )


class TicketRecords:
    """Synchronous access to the ticket table of a :class:`CallStore`'s database."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self._session: sessionmaker[Session] = sessionmaker(store.engine, expire_on_commit=False)

    def insert(self, ticket: NewTicket) -> TicketInfo:
        redact = self.store.redact
        with self._session.begin() as s:
            row = Ticket(
                call_id=ticket.call_id,
                caller=ticket.caller,
                caller_name=ticket.caller_name,
                callback_number=ticket.callback_number,
                category=ticket.category,
                priority=ticket.priority,
                summary=redact(ticket.summary)[:SUMMARY_CHARS],
                description=redact(ticket.description),
                assignment=ticket.assignment,
                reason=ticket.reason,
                status="new",
            )
            s.add(row)
            s.flush()
            row.number = f"INC{row.id:07d}"  # INC + 7 digits, from the row id
            return TicketInfo.from_row(row)

    def find(self, number: str) -> TicketInfo | None:
        """By our number, else by the ITSM system's number."""
        with self._session() as s:
            row = self._find(s, number)
            return None if row is None else TicketInfo.from_row(row)

    def change(
        self,
        number: str,
        *,
        status: str | None = None,
        note: str | None = None,
        priority: str | None = None,
        assignment: str | None = None,
        now: datetime | None = None,
    ) -> TicketInfo:
        with self._session.begin() as s:
            row = self._find(s, number)
            if row is None:
                raise TicketNotFoundError(f"no ticket {number}")
            if status is not None:
                row.status = status
            if priority is not None:
                row.priority = priority
            if assignment is not None:
                row.assignment = assignment
            if note:
                stamp = (now or utcnow()).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                entry = f"[{stamp}] {self.store.redact(note)}"
                row.description = f"{row.description}\n\n{entry}" if row.description else entry
            row.updated_at = now or utcnow()
            return TicketInfo.from_row(row)

    def mark_synced(self, number: str, incident: ExternalIncident) -> TicketInfo:
        """Link the row to its external record and take over what the system says now."""
        with self._session.begin() as s:
            row = self._find(s, number)
            if row is None:
                raise TicketNotFoundError(f"no ticket {number}")
            changed = (
                row.external_id != incident.external_id
                or row.status != incident.status
                or row.sync_error is not None
                or (incident.priority is not None and row.priority != incident.priority)
            )
            row.external_system = incident.system
            row.external_id = incident.external_id
            row.external_number = incident.number
            row.sync_error = None
            if incident.status in STATUSES:
                row.status = incident.status
            if incident.priority is not None:
                row.priority = incident.priority
            if changed:
                row.updated_at = utcnow()
            return TicketInfo.from_row(row)

    def mark_sync_failed(self, number: str, error: str) -> TicketInfo:
        with self._session.begin() as s:
            row = self._find(s, number)
            if row is None:
                raise TicketNotFoundError(f"no ticket {number}")
            row.sync_error = error[:2000]
            return TicketInfo.from_row(row)

    def list_tickets(
        self, *, status: str | None = None, call_id: str | None = None, limit: int | None = None
    ) -> list[TicketInfo]:
        query = select(Ticket)
        if status is not None:
            query = query.where(Ticket.status == status)
        if call_id is not None:
            query = query.where(Ticket.call_id == call_id).order_by(Ticket.id)
        else:
            query = query.order_by(Ticket.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._session() as s:
            return [TicketInfo.from_row(row) for row in s.scalars(query).all()]

    def latest_for_caller(
        self,
        *,
        caller: str | None,
        name: str | None,
        callback_number: str | None,
        call_id: str | None = None,
    ) -> TicketInfo | None:
        """The newest open ticket from this line, this callback number or this name (a caller
        asking about "the ticket I opened yesterday" without its number); tickets of the call
        ``call_id`` itself are left out."""
        matches = [Ticket.caller == caller] if caller else []
        if callback_number:
            matches.append(Ticket.callback_number == callback_number)
        if name and name.strip():
            matches.append(Ticket.caller_name.ilike(name.strip()))
        if not matches:
            return None
        query = (
            select(Ticket)
            .where(or_(*matches), Ticket.status.not_in(("resolved", "closed", "canceled")))
            .order_by(Ticket.id.desc())
        )
        if call_id is not None:
            query = query.where(or_(Ticket.call_id.is_(None), Ticket.call_id != call_id))
        with self._session() as s:
            row = s.scalars(query.limit(1)).first()
            return None if row is None else TicketInfo.from_row(row)

    def sync_failures(self) -> list[TicketInfo]:
        with self._session() as s:
            rows = s.scalars(
                select(Ticket).where(Ticket.sync_error.is_not(None)).order_by(Ticket.id)
            ).all()
            return [TicketInfo.from_row(row) for row in rows]

    @staticmethod
    def _find(s: Session, number: str) -> Ticket | None:
        return s.scalars(
            select(Ticket)
            .where(or_(Ticket.number == number, Ticket.external_number == number))
            .order_by((Ticket.number == number).desc())
        ).first()
