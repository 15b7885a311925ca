"""Helpdesk tickets: the built-in ticket table and, when configured, an external ITSM system.

``make_ticket_service(settings, store)`` builds the :class:`TicketService` the settings describe
(``itsm_backend = "none"`` or ``"servicenow"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.tickets.itsm import (
    ExternalIncident,
    IncidentChanges,
    ITSMAdapter,
    ITSMError,
    NewIncident,
)
from voice_agent.tickets.numbers import normalize_ticket_number, parse_ticket_number
from voice_agent.tickets.records import NewTicket, TicketInfo, TicketNotFoundError
from voice_agent.tickets.service import TicketService

if TYPE_CHECKING:
    from voice_agent.settings import Settings
    from voice_agent.storage import CallStore

__all__ = [
    "ExternalIncident",
    "ITSMAdapter",
    "ITSMError",
    "IncidentChanges",
    "NewIncident",
    "NewTicket",
    "TicketConfigError",
    "TicketInfo",
    "TicketNotFoundError",
    "TicketService",
    "make_ticket_service",
    "normalize_ticket_number",
    "parse_ticket_number",
]


class TicketConfigError(VoiceAgentError, ValueError):
    """The ITSM settings are incomplete or wrong; the message names the settings to set."""

    code = ErrorCode.BAD_ITSM_SETTINGS


def make_ticket_service(settings: Settings, store: CallStore) -> TicketService:
    """The ticket service the settings describe. Raises TicketConfigError for bad ITSM settings."""
    if settings.itsm_backend == "none":
        return TicketService(store, None)
    if settings.itsm_backend == "servicenow":
        from voice_agent.tickets.servicenow import ServiceNowAdapter

        missing = [
            f"servicenow_{name} (VOICE_AGENT_SERVICENOW_{name.upper()})"
            for name, value in (
                ("instance_url", settings.servicenow_instance_url),
                ("username", settings.servicenow_username),
                (
                    "password",
                    settings.servicenow_password.get_secret_value()
                    if settings.servicenow_password
                    else None,
                ),
            )
            if not value
        ]
        if missing:
            raise TicketConfigError(
                "itsm_backend = 'servicenow' needs these settings: " + ", ".join(missing)
            )
        if settings.servicenow_timeout_secs <= 0:
            raise TicketConfigError("servicenow_timeout_secs must be greater than 0")
        assert settings.servicenow_password is not None
        try:
            adapter = ServiceNowAdapter(
                settings.servicenow_instance_url,  # type: ignore[arg-type]
                settings.servicenow_username,  # type: ignore[arg-type]
                settings.servicenow_password.get_secret_value(),
                timeout_secs=settings.servicenow_timeout_secs,
                priorities=_taxonomy_priorities(settings),
            )
        except ValueError as e:
            raise TicketConfigError(str(e)) from e
        return TicketService(store, adapter)
    raise TicketConfigError(f"unknown itsm_backend {settings.itsm_backend!r}")


def _taxonomy_priorities(settings: Settings) -> dict[str, tuple[int, int]] | None:
    """Impact/urgency per priority from the triage taxonomy (None: the adapter's fallback)."""
    try:
        from voice_agent.triage.taxonomy import TaxonomyError, load_taxonomy
    except ImportError:
        return None
    path = getattr(settings, "triage_taxonomy", None)
    try:
        taxonomy = load_taxonomy(Path(path) if path else None)
    except TaxonomyError as e:
        raise TicketConfigError(f"cannot read priorities for ServiceNow: {e}") from e
    return {p.name: (p.impact, p.urgency) for p in taxonomy.priorities}
