"""Tickets: the local table (real SQLite), ServiceNow over HTTP (a local instance that follows
the Table API contract), failures and their recovery, ticket numbers in caller words, the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from typer.testing import CliRunner

from tests.conftest import serve
from tests.servicenow_server import FakeServiceNow, create_app
from voice_agent.settings import load_settings
from voice_agent.storage import CallStore
from voice_agent.tickets import (
    ITSMError,
    TicketConfigError,
    TicketNotFoundError,
    TicketService,
    make_ticket_service,
    normalize_ticket_number,
)
from voice_agent.tickets.cli import tickets_app
from voice_agent.tickets.itsm import IncidentChanges, ITSMAdapter, NewIncident
from voice_agent.tickets.records import NewTicket, TicketRecords
from voice_agent.tickets.service import parse_ticket_number
from voice_agent.tickets.servicenow import ServiceNowAdapter, retry_after_secs

USER, PASSWORD = "voice.agent", "s3cret-pass"


def adapter(address: str, **kwargs) -> ServiceNowAdapter:
    kwargs.setdefault("timeout_secs", 2.0)
    return ServiceNowAdapter(f"http://{address}", USER, kwargs.pop("password", PASSWORD), **kwargs)


def servicenow_settings(tmp_path, address: str, **overrides):
    values = dict(
        database_url=f"sqlite:///{tmp_path / 'calls.db'}",
        data_dir=tmp_path,
        itsm_backend="servicenow",
        servicenow_instance_url=f"http://{address}",
        servicenow_username=USER,
        servicenow_password=PASSWORD,
        servicenow_timeout_secs=2.0,
    )
    values.update(overrides)
    return load_settings(**values)


# -- the local ticket table -----------------------------------------------------------------


async def test_create_get_update_locally(store: CallStore):
    service = TicketService(store, None)
    call_id = store.start_call("webrtc", caller="+15550100")
    ticket = await service.create(
        NewTicket(
            summary="VPN drops every few minutes, mail me at dana.w@contoso.com",
            description="Since this morning the VPN disconnects. Call me on 555 867 5309.",
            category="network",
            priority="p2",
            call_id=call_id,
            caller="+15550100",
            caller_name="Dana Whitfield",
            callback_number="+15558675309",
            assignment="Network Operations",
            reason="caller_request",
        )
    )
    assert ticket.number == "INC0000001"
    assert ticket.status == "new" and ticket.priority == "P2" and ticket.category == "network"
    assert "dana.w@contoso.com" not in ticket.summary and "[email]" in ticket.summary
    assert "867" not in ticket.description and "[phone]" in ticket.description
    assert ticket.callback_number == "+15558675309"  # kept: the helpdesk must call back
    assert ticket.created_at is not None and ticket.created_at.tzinfo is not None
    assert ticket.external_number is None and ticket.sync_error is None
    assert ticket.reference == "INC0000001"

    for spoken in ("INC0000001", "inc 1", "1", "INC 000 0001", "#1"):
        found = await service.get(spoken)
        assert found is not None and found.number == "INC0000001", spoken
    assert await service.get("INC0000002") is None
    assert await service.get("my printer") is None

    updated = await service.update(
        "inc 1", status="In Progress", note="Caller says it also fails at home; password hunter2"
    )
    assert updated.status == "in_progress"
    assert updated.updated_at is not None and updated.updated_at >= ticket.created_at
    last = updated.description.splitlines()[-1]
    assert last.startswith("[20") and " UTC] Caller says it also fails at home" in last
    assert updated.description.startswith(ticket.description)  # appended, not replaced
    updated = await service.update("INC0000001", priority="P1", assignment="Service Desk")
    assert (updated.priority, updated.assignment, updated.status) == (
        "P1",
        "Service Desk",
        "in_progress",
    )

    assert [t.number for t in await service.list_for_call(call_id)] == ["INC0000001"]
    assert await service.list_for_call("no-such-call") == []
    # the older store API reads the same rows
    (row,) = store.tickets_for_call(call_id)
    assert row["number"] == "INC0000001" and row["status"] == "in_progress"
    # and numbers keep counting across both ways of opening a ticket
    assert (
        TicketRecords(store).insert(NewTicket(summary="from the grounder", call_id=call_id)).number
        == "INC0000002"
    )
    assert [t.number for t in await service.list_tickets()] == ["INC0000002", "INC0000001"]
    assert [t.number for t in await service.list_tickets(status="in progress")] == ["INC0000001"]
    assert await service.retry_sync() == 0  # nothing to push without an ITSM system


async def test_bad_input_is_refused_clearly(store: CallStore):
    service = TicketService(store, None)
    await service.create(NewTicket(summary="Outlook crashes", category="email", priority="P3"))
    with pytest.raises(TicketNotFoundError, match="no ticket INC0000009"):
        await service.update("INC0000009", status="resolved")
    with pytest.raises(TicketNotFoundError, match="not a ticket number"):
        await service.update("the printer", status="resolved")
    with pytest.raises(ValueError, match="unknown ticket status 'fixed'.*in_progress"):
        await service.update("1", status="fixed")
    with pytest.raises(ValueError, match="nothing to update"):
        await service.update("1")
    with pytest.raises(ValueError, match="needs a summary"):
        await service.create(NewTicket(summary="  ", category="email", priority="P3"))
    assert (await service.get("1")).status == "new"  # type: ignore[union-attr]


def test_redaction_off_keeps_text(tmp_path):
    store = CallStore(f"sqlite:///{tmp_path / 'raw.db'}", redact_kinds=None)
    service = TicketService(store, None)
    ticket = asyncio.run(
        service.create(
            NewTicket(summary="mail me at a.b@contoso.com", category="email", priority="P4")
        )
    )
    assert ticket.summary == "mail me at a.b@contoso.com"


# -- ServiceNow ---------------------------------------------------------------------------


async def test_create_reaches_servicenow(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        settings = servicenow_settings(tmp_path, address)
        store = CallStore.from_settings(settings)
        service = make_ticket_service(settings, store)
        assert isinstance(service.itsm, ITSMAdapter)
        try:
            ticket = await service.create(
                NewTicket(
                    summary="Cannot log in to the VPN",
                    description="Locked out after the password change; mail dana@contoso.com",
                    category="account_access",
                    priority="P2",
                    caller="+15550100",
                    caller_name="Dana Whitfield",
                    callback_number="+15558675309",
                    assignment="Service Desk - Accounts",
                )
            )
            second = await service.create(
                NewTicket(summary="Outlook asks for my password", category="email", priority="P4")
            )
        finally:
            await service.aclose()

    assert ticket.number == "INC0000001" and ticket.sync_error is None
    assert ticket.external_system == "servicenow" and ticket.external_number == "INC0010001"
    assert ticket.reference == "INC0010001" and second.external_number == "INC0010002"
    record = fake.by_number("INC0010001")
    assert record is not None and record["sys_id"] == ticket.external_id
    assert len(record["sys_id"]) == 32
    # priority -> impact/urgency from the triage taxonomy (P2: impact 2, urgency 1)
    assert (record["impact"], record["urgency"], record["priority"]) == ("2", "1", "2")
    assert fake.by_number("INC0010002")["impact"] == "3"  # type: ignore[index]
    assert fake.by_number("INC0010002")["urgency"] == "3"  # type: ignore[index]
    assert record["correlation_id"] == "INC0000001"
    assert record["contact_type"] == "phone"
    assert record["short_description"] == "Cannot log in to the VPN"
    assert record["assignment_group"] == "Service Desk - Accounts"
    assert record["category"] == "inquiry"
    assert fake.by_number("INC0010002")["subcategory"] == "email"  # type: ignore[index]
    assert "Dana Whitfield" in record["description"] and "+15558675309" in record["description"]
    assert "dana@contoso.com" not in record["description"]  # ServiceNow gets the redacted text

    post = next(r for r in fake.requests if r["method"] == "POST")
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert post["headers"]["authorization"] == expected
    assert post["headers"]["accept"] == "application/json"
    assert post["headers"]["content-type"] == "application/json"
    assert post["path"] == "/api/now/table/incident"
    assert json.loads(post["body"])["urgency"] == "1"
    # a first attempt creates straight away: one request per ticket, the caller waits less
    assert [r["method"] for r in fake.requests] == ["POST", "POST"]


async def test_servicenow_down_keeps_the_local_ticket_and_retry_pushes_it(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD, down=True)
    async with serve(create_app(fake)) as address:
        store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
        service = TicketService(store, adapter(address))
        try:
            ticket = await service.create(
                NewTicket(summary="Printer jams", category="printer", priority="P3")
            )
            assert ticket.number == "INC0000001" and ticket.external_number is None
            assert ticket.sync_error and ticket.sync_error.startswith("unavailable:")
            assert "503" in ticket.sync_error
            # updates while it is down are kept locally
            noted = await service.update("1", note="Tray 2 only")
            assert noted.description.endswith("Tray 2 only") and noted.external_id is None
            assert fake.incidents == {}

            fake.down = False
            assert await service.retry_sync() == 1
            assert await service.retry_sync() == 0  # nothing left to push
        finally:
            await service.aclose()
    (record,) = fake.incidents.values()
    assert record["correlation_id"] == "INC0000001" and "Tray 2 only" in record["description"]
    synced = await TicketService(store, None).get("INC0000001")
    assert synced is not None and synced.sync_error is None
    assert synced.external_number == record["number"]


async def test_a_create_that_timed_out_is_not_created_twice(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
        service = TicketService(store, adapter(address, timeout_secs=0.3))
        try:
            # the find answers in time; the create arrives but its answer is too late
            fake.delay_secs = 0.0
            original = service.itsm.create_incident  # type: ignore[union-attr]

            async def slow_create(incident: NewIncident):
                fake.delay_secs = 1.5
                try:
                    return await original(incident)
                finally:
                    fake.delay_secs = 0.0

            service.itsm.create_incident = slow_create  # type: ignore[union-attr,method-assign]
            started = time.monotonic()
            ticket = await service.create(
                NewTicket(summary="Laptop won't boot", category="hardware", priority="P2")
            )
            assert time.monotonic() - started < 1.5  # the caller is not kept waiting
            assert ticket.sync_error and ticket.sync_error.startswith("timeout:")
            for _ in range(100):  # the instance finishes the create on its own
                if fake.incidents:
                    break
                await asyncio.sleep(0.05)
            assert len(fake.incidents) == 1

            assert await service.retry_sync() == 1
        finally:
            await service.aclose()
    assert len(fake.incidents) == 1  # found by correlation id, not created again
    find = fake.requests[-1]
    assert find["method"] == "GET" and find["query"]["sysparm_query"] == "correlation_id=INC0000001"
    assert find["query"]["sysparm_limit"] == "1"
    (record,) = fake.incidents.values()
    linked = await TicketService(store, None).get("1")
    assert linked is not None and linked.external_id == record["sys_id"]


async def test_rate_limit_honours_retry_after_once(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        itsm = adapter(address, retry_after_cap_secs=1.0)
        try:
            fake.rate_limit = [0.3]
            started = time.monotonic()
            found = await itsm.get_incident("INC0010001")
            elapsed = time.monotonic() - started
            assert found is None and elapsed >= 0.3
            assert len(fake.requests) == 2

            fake.rate_limit = [0.05, 0.05]  # one retry only
            with pytest.raises(ITSMError) as e:
                await itsm.get_incident("INC0010001")
            assert e.value.code == "rate_limited" and e.value.retryable and e.value.status == 429

            fake.rate_limit = [30]  # longer than a caller should wait: fail now, retry later
            started = time.monotonic()
            with pytest.raises(ITSMError) as e:
                await itsm.get_incident("INC0010001")
            assert time.monotonic() - started < 1.0
            assert e.value.code == "rate_limited" and e.value.retryable
        finally:
            await itsm.aclose()


async def test_wrong_credentials_are_a_clear_non_retryable_error(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        itsm = adapter(address, password="wrong")
        with pytest.raises(ITSMError) as e:
            await itsm.get_incident("INC0010001")
        assert e.value.code == "unauthorized" and not e.value.retryable and e.value.status == 401
        assert "User Not Authenticated" in str(e.value)
        assert "servicenow_username and servicenow_password" in str(e.value)

        store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
        service = TicketService(store, itsm)
        try:
            for n in range(3):
                ticket = await service.create(
                    NewTicket(summary=f"problem {n}", category="other", priority="P3")
                )
                assert ticket.sync_error and ticket.sync_error.startswith("unauthorized:")
            before = len(fake.requests)
            assert await service.retry_sync() == 0
            assert len(fake.requests) == before + 1  # stopped at the first refusal
        finally:
            await service.aclose()
    assert fake.incidents == {}


async def test_unreachable_and_missing_records(tmp_path):
    itsm = ServiceNowAdapter("http://127.0.0.1:9", USER, PASSWORD, timeout_secs=1.0)
    try:
        with pytest.raises(ITSMError) as e:
            await itsm.get_incident("INC0010001")
        assert e.value.code == "unreachable" and e.value.retryable
    finally:
        await itsm.aclose()

    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        itsm = adapter(address)
        try:
            with pytest.raises(ITSMError) as e:
                await itsm.update_incident("0" * 32, IncidentChanges(status="in_progress"))
            assert e.value.code == "not_found" and not e.value.retryable
            assert "No Record found" in str(e.value)
        finally:
            await itsm.aclose()


async def test_status_and_updates_round_trip_with_servicenow(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
        service = TicketService(store, adapter(address))
        try:
            ticket = await service.create(
                NewTicket(summary="Teams has no audio", category="software", priority="P3")
            )
            record = fake.incidents[ticket.external_id]  # type: ignore[index]
            assert (record["impact"], record["urgency"]) == ("2", "2")  # fallback mapping

            # a technician picks it up in ServiceNow
            record["state"] = "2"
            refreshed = await service.get(ticket.number)
            assert refreshed is not None and refreshed.status == "in_progress"
            by_their_number = await service.get(ticket.external_number)  # type: ignore[arg-type]
            assert by_their_number is not None and by_their_number.number == ticket.number
            local = await TicketService(store, None).get(ticket.number)
            assert local is not None and local.status == "in_progress"  # stored, too

            # ServiceNow unreachable: the last known status, no error
            fake.down = True
            record["state"] = "3"
            offline = await service.get(ticket.number)
            assert offline is not None and offline.status == "in_progress"
            fake.down = False

            # our update reaches ServiceNow (resolving passes its data policy)
            done = await service.update(
                ticket.number, status="resolved", note="Audio device reset; works now"
            )
            assert done.status == "resolved" and done.sync_error is None
            assert record["state"] == "6" and record["active"] == "false"
            assert record["close_code"] and "Audio device reset" in record["close_notes"]
            assert fake.journal[-1]["field"] == "work_notes"
            assert "Audio device reset" in fake.journal[-1]["value"]
            raised = await service.update(ticket.number, priority="P1")
            assert (record["impact"], record["urgency"], record["priority"]) == ("1", "1", "1")
            assert raised.priority == "P1"

            # a ticket opened in ServiceNow by a person, never on a call
            other = await service.itsm.create_incident(  # type: ignore[union-attr]
                NewIncident(
                    correlation_id="", summary="Badge reader", description="", category="other",
                    priority="P4",
                )
            )  # fmt: skip
            theirs = await service.get(f"incident {other.number[3:]}")
            assert theirs is not None and theirs.number == other.number
            assert theirs.summary == "Badge reader" and theirs.status == "new"
            assert theirs.call_id is None
        finally:
            await service.aclose()


async def test_failed_update_is_resent(tmp_path):
    fake = FakeServiceNow(username=USER, password=PASSWORD)
    async with serve(create_app(fake)) as address:
        store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
        service = TicketService(store, adapter(address))
        try:
            ticket = await service.create(
                NewTicket(summary="Wi-Fi drops", category="network", priority="P3")
            )
            fake.down = True
            pending = await service.update(ticket.number, status="on_hold", note="waiting for user")
            assert pending.status == "on_hold" and pending.sync_error
            record = fake.incidents[ticket.external_id]  # type: ignore[index]
            assert record["state"] == "1"
            fake.down = False
            # a lookup meanwhile does not let ServiceNow's older state undo the local change
            looked_up = await service.get(ticket.number)
            assert looked_up is not None and looked_up.status == "on_hold"
            assert looked_up.sync_error
            assert await service.retry_sync() == 1
            assert record["state"] == "3" and record["hold_reason"] == "1"
            synced = await service.get(ticket.number)
            assert synced is not None and synced.status == "on_hold" and synced.sync_error is None
            assert "waiting for user" in fake.journal[-1]["value"]
        finally:
            await service.aclose()


def test_factory_needs_servicenow_settings(tmp_path, store):
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'calls.db'}", itsm_backend="servicenow"
    )
    with pytest.raises(TicketConfigError) as e:
        make_ticket_service(settings, store)
    for name in ("INSTANCE_URL", "USERNAME", "PASSWORD"):
        assert f"VOICE_AGENT_SERVICENOW_{name}" in str(e.value)
    settings = load_settings(
        itsm_backend="servicenow",
        servicenow_instance_url="acme.service-now.com",
        servicenow_username="u",
        servicenow_password="p",
    )
    with pytest.raises(TicketConfigError, match="https://"):
        make_ticket_service(settings, store)
    assert make_ticket_service(load_settings(), store).itsm is None


def test_retry_after_forms():
    assert retry_after_secs("2") == 2.0
    assert retry_after_secs("0.5") == 0.5
    assert retry_after_secs(None) is None and retry_after_secs("soon") is None
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_secs(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert retry_after_secs(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0


# -- ticket numbers in what callers say -----------------------------------------------------


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("INC0001234", "INC0001234"),
        ("I N C 1 2 3 4", "INC0001234"),
        ("ticket one two three four", "INC0001234"),
        ("incident number 0001234", "INC0001234"),
        ("ink 1234", "INC0001234"),
        ("My ticket number is I.N.C. 0001234.", "INC0001234"),
        ("It's INC-0001234, can you check it?", "INC0001234"),
        ("Ticket number, uh, oh oh oh one two three four.", "INC0001234"),
        ("I'm calling about ticket 1,234.", "INC0001234"),
        ("the ticket is double four five six", "INC0004456"),
        ("Hi, any news on incident INC0010001?", "INC0010001"),
        ("ticket number is one two three oh.", "INC0001230"),
        ("ticket 1234, oh wait", "INC0001234"),
        ("case number 98765", "INC0098765"),
        ("inc 12", "INC0000012"),
    ],
)
def test_parse_ticket_number(said, number):
    assert parse_ticket_number(said) == number


@pytest.mark.parametrize(
    "said",
    [
        "call me at 555 1234",
        "you can reach me on five five five one two three four",
        "open a ticket, my number is 555 1234",
        "I'd like to open a ticket, call me at 555 1234",
        "the printer is out of ink 2 times a day",
        "can you open a ticket one more time",
        "ticket, oh, I forgot it",
        "my ticket is 555 123 4567",  # ten digits: a phone number, not INC + 7
        "ticket 0000000",
        "",
        "my VPN is broken since 2023",
    ],
)
def test_no_ticket_number(said):
    assert parse_ticket_number(said) is None


def test_bare_digits_count_when_a_number_was_asked_for():
    assert parse_ticket_number("one two three four", expecting=True) == "INC0001234"
    assert parse_ticket_number("yes it's 1234", expecting=True) == "INC0001234"
    assert parse_ticket_number("one moment please", expecting=True) is None
    assert parse_ticket_number("one two three four") is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("INC0001234", "INC0001234"),
        ("inc 1234", "INC0001234"),
        ("1234", "INC0001234"),
        (" #42 ", "INC0000042"),
        ("INC00001234", "INC0001234"),
        ("INC12345678", None),
        ("hello", None),
        ("", None),
        ("0", None),
    ],
)
def test_normalize_ticket_number(text, number):
    assert normalize_ticket_number(text) == number


# -- the CLI --------------------------------------------------------------------------------


def test_cli_list_show_update(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOICE_AGENT_DATABASE_URL", url)
    monkeypatch.delenv("VOICE_AGENT_CONFIG", raising=False)
    store = CallStore(url)
    service = TicketService(store, None)
    asyncio.run(service.create(NewTicket(summary="VPN fails", category="network", priority="P2")))
    asyncio.run(
        service.create(NewTicket(summary="Printer jams", category="printer", priority="P4"))
    )
    runner = CliRunner()

    result = runner.invoke(tickets_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert [t["number"] for t in json.loads(result.output)] == ["INC0000002", "INC0000001"]

    result = runner.invoke(tickets_app, ["update", "1", "--status", "resolved", "--note", "fixed"])
    assert result.exit_code == 0, result.output
    assert "resolved" in result.output

    result = runner.invoke(tickets_app, ["list", "--status", "resolved"])
    assert result.exit_code == 0 and "INC0000001" in result.output
    assert "INC0000002" not in result.output

    result = runner.invoke(tickets_app, ["show", "INC0000001", "--json"])
    shown = json.loads(result.output)
    assert shown["status"] == "resolved" and shown["description"].endswith("fixed")

    result = runner.invoke(tickets_app, ["show", "INC0000077"])
    assert result.exit_code == 1 and "no ticket" in result.output
    result = runner.invoke(tickets_app, ["show", "printer"])
    assert result.exit_code == 2 and "not a ticket number" in result.output
    result = runner.invoke(tickets_app, ["update", "1", "--status", "done"])
    assert result.exit_code == 2 and "unknown ticket status" in result.output
