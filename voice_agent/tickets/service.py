"""Helpdesk tickets for the conversation: opened, looked up and updated on the event loop.

The local row is written first, so a caller is always given a number, even while the company's
ITSM system (ServiceNow) is down or slow; the ticket is then mirrored there. A failed push is
recorded on the row (``sync_error``) and retried by :meth:`TicketService.retry_sync` (at
start-up), never lost and never raised into the call.
"""

from __future__ import annotations

import asyncio
import dataclasses

from loguru import logger

from voice_agent.storage import CallStore
from voice_agent.tickets.itsm import (
    STATUSES,
    IncidentChanges,
    ITSMAdapter,
    ITSMError,
    NewIncident,
)
from voice_agent.tickets.numbers import normalize_ticket_number, parse_ticket_number
from voice_agent.tickets.records import NewTicket, TicketInfo, TicketNotFoundError, TicketRecords

__all__ = [
    "NewTicket",
    "TicketInfo",
    "TicketNotFoundError",
    "TicketService",
    "normalize_status",
    "normalize_ticket_number",
    "parse_ticket_number",
]

_STATUS_ALIASES = {"cancelled": "canceled", "open": "new", "pending": "on_hold"}


def normalize_status(status: str) -> str:
    """``"In Progress"`` -> ``"in_progress"``; ValueError naming the choices if unknown."""
    key = "_".join(status.strip().lower().replace("-", " ").split())
    key = _STATUS_ALIASES.get(key, key)
    if key not in STATUSES:
        raise ValueError(f"unknown ticket status {status!r}; use one of: {', '.join(STATUSES)}")
    return key


def normalize_priority(priority: str) -> str:
    value = priority.strip().upper()
    if not value:
        raise ValueError("priority must not be empty (e.g. P3)")
    return value if value.startswith("P") else f"P{value}"


class TicketService:
    """Tickets in the call database, mirrored to ``itsm`` when one is configured."""

    def __init__(self, store: CallStore, itsm: ITSMAdapter | None = None) -> None:
        self.store = store
        self.itsm = itsm
        self.records = TicketRecords(store)

    async def aclose(self) -> None:
        if self.itsm is not None:
            await self.itsm.aclose()

    async def create(self, ticket: NewTicket) -> TicketInfo:
        """Open a ticket; its local number exists whatever the ITSM system does."""
        if not ticket.summary or not ticket.summary.strip():
            raise ValueError("a ticket needs a summary")
        ticket = dataclasses.replace(
            ticket,
            summary=ticket.summary.strip(),
            category=ticket.category or "other",
            priority=normalize_priority(ticket.priority or "P3"),
        )
        info = await asyncio.to_thread(self.records.insert, ticket)
        if self.itsm is not None:
            info, _ = await self._sync(info)
        return info

    async def get(self, number: str) -> TicketInfo | None:
        """The ticket ``number`` names ("INC0001234", "inc 1234", "1234", "incident 1234"),
        None if unknown (or not a ticket number at all).

        With an ITSM system the status is refreshed from it (the local row when it cannot be
        reached), and a number only that system knows is looked up there.
        """
        normalized = _ticket_number(number)
        if normalized is None:
            return None
        info = await asyncio.to_thread(self.records.find, normalized)
        if self.itsm is None:
            return info
        if info is not None and (not info.external_number or info.sync_error is not None):
            # never reached the ITSM system, or a local change has not reached it yet (the
            # system's older state must not overwrite it; retry_sync pushes it)
            return info
        try:
            incident = await self.itsm.get_incident(
                info.external_number if info is not None else normalized  # type: ignore[arg-type]
            )
        except ITSMError as e:
            logger.warning(f"ticket {normalized}: status not refreshed from {self.itsm.name}: {e}")
            return info
        if incident is None:
            return info
        if info is None:
            return TicketInfo.from_external(incident)
        return await asyncio.to_thread(self.records.mark_synced, info.number, incident)

    async def latest_for_caller(
        self,
        *,
        caller: str | None,
        name: str | None,
        callback_number: str | None,
        call_id: str | None = None,
    ) -> TicketInfo | None:
        """The caller's newest open ticket (see ``TicketRecords.latest_for_caller``), its
        status refreshed from the ITSM system like ``get``."""
        info = await asyncio.to_thread(
            self.records.latest_for_caller,
            caller=caller,
            name=name,
            callback_number=callback_number,
            call_id=call_id,
        )
        return info if info is None or self.itsm is None else await self.get(info.number)

    async def update(
        self,
        number: str,
        *,
        status: str | None = None,
        note: str | None = None,
        priority: str | None = None,
        assignment: str | None = None,
    ) -> TicketInfo:
        """Change a ticket (a note is appended to its description with a timestamp), then push
        the change to the ITSM system if the ticket is there. Raises TicketNotFoundError."""
        normalized = _ticket_number(number)
        if normalized is None:
            raise TicketNotFoundError(f"not a ticket number: {number!r} (e.g. INC0001234)")
        status = normalize_status(status) if status is not None else None
        priority = normalize_priority(priority) if priority is not None else None
        note = note.strip() if note else None
        if status is None and note is None and priority is None and assignment is None:
            raise ValueError("nothing to update: give a status, note, priority or assignment")
        info = await asyncio.to_thread(
            self.records.change,
            normalized,
            status=status,
            note=note,
            priority=priority,
            assignment=assignment,
        )
        if self.itsm is not None:
            changes = IncidentChanges(
                status=status,
                note=self.store.redact(note) if note else None,
                priority=priority,
                assignment_group=assignment,
            )
            info, _ = await self._sync(info, changes)
        return info

    async def list_for_call(self, call_id: str) -> list[TicketInfo]:
        return await asyncio.to_thread(self.records.list_tickets, call_id=call_id)

    async def list_tickets(
        self, *, status: str | None = None, limit: int | None = 100
    ) -> list[TicketInfo]:
        """Newest first."""
        status = normalize_status(status) if status is not None else None
        return await asyncio.to_thread(self.records.list_tickets, status=status, limit=limit)

    async def retry_sync(self) -> int:
        """Push every ticket whose last push failed; returns how many now went through.

        Stops early when the ITSM system refuses the credentials (every push would fail).
        """
        if self.itsm is None:
            return 0
        pending = await asyncio.to_thread(self.records.sync_failures)
        pushed = 0
        for info in pending:
            changes = None
            if info.external_id:  # created there; a later update did not arrive
                changes = IncidentChanges(
                    status=info.status,
                    priority=info.priority,
                    assignment_group=info.assignment,
                    note="Re-sent by the helpdesk voice agent after a failed update. "
                    f"Current description:\n{info.description}",
                )
            synced, error = await self._sync(info, changes)
            if error is None:
                pushed += 1
            elif error.code in ("unauthorized", "forbidden"):
                break
        if pending:
            logger.info(f"tickets: {pushed} of {len(pending)} pushed to {self.itsm.name}")
        return pushed

    async def _sync(
        self, info: TicketInfo, changes: IncidentChanges | None = None
    ) -> tuple[TicketInfo, ITSMError | None]:
        """Create (or find) the ticket's external record, or push ``changes`` to it."""
        itsm = self.itsm
        assert itsm is not None
        try:
            if info.external_id is None:
                # after a failed attempt (a timeout may still have created the record), look
                # for it before creating; a first attempt goes straight to the create
                incident = None
                if info.sync_error is not None:
                    incident = await itsm.find_by_correlation_id(info.number)
                if incident is None:
                    incident = await itsm.create_incident(_new_incident(info))
                if info.status != incident.status and info.status != "new":
                    incident = await itsm.update_incident(
                        incident.external_id, IncidentChanges(status=info.status)
                    )
            elif changes is not None:
                incident = await itsm.update_incident(info.external_id, changes)
            else:
                return info, None
        except ITSMError as e:
            logger.warning(f"ticket {info.number}: not synced to {itsm.name}: {e}")
            failed = await asyncio.to_thread(self.records.mark_sync_failed, info.number, str(e))
            return failed, e
        synced = await asyncio.to_thread(self.records.mark_synced, info.number, incident)
        return synced, None


def _ticket_number(text: str) -> str | None:
    """A typed number ("INC0001234", "inc 1234", "1234") or one in words ("incident 1234")."""
    return normalize_ticket_number(text) or parse_ticket_number(text or "", expecting=True)


def _new_incident(info: TicketInfo) -> NewIncident:
    return NewIncident(
        correlation_id=info.number,
        summary=info.summary,
        description=info.description,
        category=info.category,
        priority=info.priority,
        assignment_group=info.assignment,
        caller_name=info.caller_name,
        callback_number=info.callback_number,
        caller=info.caller,
        call_id=info.call_id,
    )
