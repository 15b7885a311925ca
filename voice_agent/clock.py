"""Time stamps in UTC, and the rule for the naive datetimes SQLite hands back: they are UTC.

Imports nothing from ``voice_agent``. Used by ``voice_agent.storage`` (column defaults, call
records), ``voice_agent.tickets.records``, ``voice_agent.tickets.servicenow``,
``voice_agent.console.queries`` and ``voice_agent.console.users``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    """Now, time-zone aware, in UTC."""
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` with a time zone: a naive datetime (as SQLite hands back what was written in
    UTC) is taken as UTC; an aware one is returned unchanged, None as None."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 with its offset, a naive ``value`` taken as UTC; None for None."""
    return None if value is None else as_utc(value).isoformat()
