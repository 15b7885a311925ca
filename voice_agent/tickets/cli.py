"""``voice-agent tickets``: list, show and update tickets in the configured database.

Updates go through the same :class:`TicketService` as calls do, so with ServiceNow configured a
status change here reaches ServiceNow too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from voice_agent.cli_options import ConfigOpt, JsonOpt, settings_or_exit
from voice_agent.storage import CallStore
from voice_agent.tickets import (
    TicketConfigError,
    TicketService,
    make_ticket_service,
    normalize_ticket_number,
)
from voice_agent.tickets.itsm import STATUSES
from voice_agent.tickets.records import TicketInfo, TicketNotFoundError

tickets_app = typer.Typer(no_args_is_help=True, help="List, show and update helpdesk tickets")

T = TypeVar("T")


def _run(config, work: Callable[[TicketService], Awaitable[T]]) -> T:
    settings = settings_or_exit(config)
    store = CallStore.from_settings(settings)
    try:
        service = make_ticket_service(settings, store)
    except TicketConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e

    async def main() -> T:
        try:
            return await work(service)
        finally:
            await service.aclose()

    try:
        return asyncio.run(main())
    except TicketNotFoundError as e:
        typer.echo(f"error: {e.args[0]}", err=True)
        raise typer.Exit(1) from e
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    finally:
        store.engine.dispose()


@tickets_app.command("list")
def list_tickets(
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only this status: {', '.join(STATUSES)}")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Tickets, newest first."""
    tickets = _run(config, lambda s: s.list_tickets(status=status, limit=limit))
    if as_json:
        typer.echo(json.dumps([t.to_dict() for t in tickets], indent=2))
        return
    if not tickets:
        typer.echo("no tickets")
        return
    for t in tickets:
        created = t.created_at.strftime("%Y-%m-%d %H:%M") if t.created_at else ""
        external = f" [{t.external_number}]" if t.external_number else ""
        unsynced = " (not synced)" if t.sync_error else ""
        typer.echo(
            f"{t.number}{external}  {created}  {t.status:<11} {t.priority:<3} "
            f"{t.category:<14} {_one_line(t.summary, 60)}{unsynced}"
        )


@tickets_app.command("show")
def show(number: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One ticket (status refreshed from the ITSM system when one is configured)."""
    if normalize_ticket_number(number) is None:
        typer.echo(f"error: not a ticket number: {number!r} (e.g. INC0001234 or 1234)", err=True)
        raise typer.Exit(2)
    ticket = _run(config, lambda s: s.get(number))
    if ticket is None:
        typer.echo(f"error: no ticket {number!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(ticket.to_dict(), indent=2))
    else:
        _print(ticket)


@tickets_app.command("update")
def update(
    number: str,
    status: Annotated[
        str | None, typer.Option("--status", help=f"New status: {', '.join(STATUSES)}")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note to append")] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="e.g. P2")] = None,
    assignment: Annotated[str | None, typer.Option("--assignment", help="Group")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Change a ticket's status, priority or assignment, or add a note."""
    ticket = _run(
        config,
        lambda s: s.update(
            number, status=status, note=note, priority=priority, assignment=assignment
        ),
    )
    if as_json:
        typer.echo(json.dumps(ticket.to_dict(), indent=2))
        return
    _print(ticket)
    if ticket.sync_error:
        typer.echo(f"warning: saved locally, not synced: {ticket.sync_error}", err=True)


def _print(t: TicketInfo) -> None:
    rows = [
        ("number", t.number),
        ("external", f"{t.external_system} {t.external_number}" if t.external_number else None),
        ("status", t.status),
        ("priority", t.priority),
        ("category", t.category),
        ("assignment", t.assignment),
        ("caller", t.caller_name),
        ("callback", t.callback_number),
        ("calling from", t.caller),
        ("call", t.call_id),
        ("reason", t.reason),
        ("created", t.created_at.isoformat(timespec="seconds") if t.created_at else None),
        ("updated", t.updated_at.isoformat(timespec="seconds") if t.updated_at else None),
        ("sync error", t.sync_error),
        ("summary", t.summary),
    ]
    for label, value in rows:
        if value:
            typer.echo(f"{label:>12}: {value}")
    if t.description:
        typer.echo("")
        typer.echo(t.description)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
