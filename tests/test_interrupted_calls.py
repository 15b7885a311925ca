"""A call whose server dies mid-call is closed as ``interrupted`` when that server starts again.

The first test is the real thing: a ``voice-agent serve`` process takes a phone call over Twilio's
Media Streams protocol, is killed with SIGKILL mid-call, and is started again. The others check,
on SQLite and PostgreSQL, that only the restarting instance's calls are closed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from postgres import free_port
from sqlalchemy import update

from tests.conftest import REPO, TELEPHONY
from tests.test_console_security import login
from voice_agent.console.queries import CallFilter, ConsoleQueries
from voice_agent.records import TurnRecord
from voice_agent.settings import load_settings
from voice_agent.storage import Call, CallStore
from voice_agent.telephony.twilio_dialer import DialResult, Utterance, dial, load_phone_audio

CLIP = TELEPHONY / "spokenwoz_MUL1423_user_turn01.wav"  # "I need your assistance..."
START_TIMEOUT_SECS = 120


class Server:
    """``voice-agent serve`` in a process of its own, configured through the environment."""

    def __init__(self, tmp: Path, port: int) -> None:
        kb = tmp / "kb"  # one runbook: indexing all of them would take a minute per start
        kb.mkdir(exist_ok=True)
        runbook = REPO / "voice_agent" / "knowledge" / "starter_kb" / "account-locked-out.md"
        (kb / runbook.name).write_text(runbook.read_text())
        self.db = tmp / "calls.db"
        self.port = port
        self.log = tmp / "server.log"
        self.env = {  # the developer's settings stay out; the test tier's weights folder goes in
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VOICE_AGENT_") or k == "VOICE_AGENT_MODELS_DIR"
        }
        self.env.update(
            VOICE_AGENT_LLM_MODEL="smollm2-135m",
            VOICE_AGENT_LLM_MAX_TOKENS="24",
            VOICE_AGENT_STT_MODEL="whisper-tiny.en",
            VOICE_AGENT_DATA_DIR=str(tmp),
            VOICE_AGENT_DATABASE_URL=f"sqlite:///{self.db}",
            VOICE_AGENT_KB_PATHS=f'["{kb}"]',
            VOICE_AGENT_LOG_LEVEL="INFO",
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "voice_agent.cli", "serve", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        pytest.fail(f"the server did not answer /healthz in {START_TIMEOUT_SECS}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the process crashes or the host dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text()[-chars:] if self.log.exists() else ""

    def call_row(self, call_sid: str) -> tuple[str, str | None, str | None, int] | None:
        """(status, ended_at, instance, turns) of the call, read the way an operator would."""
        if not self.db.exists():
            return None
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            try:
                return conn.execute(
                    "SELECT status, ended_at, instance,"
                    " (SELECT count(*) FROM turns WHERE turns.call_id = calls.id)"
                    " FROM calls WHERE external_id = ?",
                    (call_sid,),
                ).fetchone()
            except sqlite3.OperationalError:  # the server is still creating the tables
                return None


class _SayOnceThenHold:
    """A caller who says one thing, hears the answer, then stays on the line in silence."""

    def __init__(self, utterance: Utterance) -> None:
        self._utterance: Utterance | None = utterance

    async def next_utterance(self, call: DialResult) -> Utterance | None:
        if self._utterance is not None:
            said, self._utterance = self._utterance, None
            return said
        await asyncio.Event().wait()  # until the server goes away
        return None


@pytest.mark.models
async def test_a_call_cut_by_a_killed_server_is_closed_as_interrupted_on_restart(tmp_path):
    server = Server(tmp_path, free_port())
    try:
        server.start()
        placed = asyncio.create_task(
            dial(
                f"ws://127.0.0.1:{server.port}/twilio/media",
                _SayOnceThenHold((str(CLIP), load_phone_audio(CLIP))),
                reply_timeout_secs=60,
            )
        )
        # the call is under way: its row says so, with the greeting and the caller's turn stored
        call_sid, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and not placed.done():
            await asyncio.sleep(0.25)
            call_sid = call_sid or _sid_of(server)
            row = server.call_row(call_sid) if call_sid else None
            if row is not None and row[3] >= 2:
                break
        else:
            pytest.fail(f"no call with two turns stored:\n{server.tail()}")
        status, ended_at, instance, turns = row
        assert status == "in_progress" and ended_at is None
        assert instance == f"{socket.gethostname()}:{server.port}"

        killed_at = datetime.now(UTC)
        server.kill()
        result = await asyncio.wait_for(placed, 30)
        assert result.closed_by == "server"  # the line went dead under the caller
        status, ended_at, _, _ = server.call_row(call_sid)
        assert (status, ended_at) == ("in_progress", None)  # what the finding was about

        server.start()  # the same server again: same host, same port, same instance
        store = CallStore(f"sqlite:///{server.db}")
        call = store.get_call_by_external_id(call_sid)
        assert call["status"] == "interrupted" and call["end_reason"] == "server_restart"
        assert len(call["turns"]) == turns and any(t["user_text"] for t in call["turns"])
        ended = datetime.fromisoformat(call["ended_at"])
        started = datetime.fromisoformat(call["started_at"])
        # it ended at the last turn stored (its latest stage), not at the restart
        last = max(call["turns"], key=lambda t: t["index"])
        assert abs(ended.timestamp() - max(last["stages"].values())) < 0.001
        assert started <= ended <= killed_at
        assert "1 call(s) left in progress" in server.log.read_text()

        # the console's live view no longer lists it; its list and search find it
        queries = ConsoleQueries(store.engine)
        assert queries.live_calls() == []
        page = queries.list_calls(CallFilter.parse({"status": "interrupted"}))
        assert [r["id"] for r in page.rows] == [call["id"]]
        store.engine.dispose()
    finally:
        server.stop()


def _sid_of(server: Server) -> str | None:
    if not server.db.exists():
        return None
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            row = conn.execute("SELECT external_id FROM calls").fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


# -- the store: whose calls are closed ----------------------------------------------------------


def _call_with_turns(store: CallStore, external_id: str, *turn_ends: float) -> str:
    call_id = store.start_call("twilio", external_id=external_id)
    for index, at in enumerate(turn_ends):
        stages = {"speech_end": at - 2, "first_audio_out": at - 1, "bot_done": at}
        store.add_turn(call_id, TurnRecord(index=index, user_text="vpn down", stages=stages))
    return call_id


def _as_store(url: str, instance: str | None) -> CallStore:
    store = CallStore(url)
    store.instance = instance
    return store


def test_only_this_instances_calls_are_closed(any_database_url):
    """Two instances share the database: a restart of one leaves the other's live calls alone.
    Calls from before calls recorded their instance are closed on SQLite (one server per file),
    left alone on PostgreSQL (their instance is unknown)."""
    here, there = (
        _as_store(any_database_url, "web-1:8000"),
        _as_store(any_database_url, "web-2:8000"),
    )
    legacy = _as_store(any_database_url, None)
    t = time.time() - 60
    mine = _call_with_turns(here, "CA-mine", t, t + 10)
    mine_no_turns = _call_with_turns(here, "CA-mine-silent")
    done = _call_with_turns(here, "CA-done", t)
    here.end_call(done, status="completed", end_reason="caller_hung_up")
    theirs = _call_with_turns(there, "CA-theirs", t)
    old = _call_with_turns(legacy, "CA-legacy", t)
    with here._session.begin() as s:  # every call started before its first turn
        s.execute(update(Call).values(started_at=datetime.fromtimestamp(t - 30, UTC)))

    on_sqlite = here.engine.dialect.name == "sqlite"
    assert here.close_interrupted_calls("web-1:8000") == (3 if on_sqlite else 2)

    call = here.get_call(mine)
    assert (call["status"], call["end_reason"]) == ("interrupted", "server_restart")
    assert len(call["turns"]) == 2 and call["instance"] == "web-1:8000"
    ended = datetime.fromisoformat(call["ended_at"])
    assert abs(ended.timestamp() - (t + 10)) < 0.01  # the last turn's last stage
    silent = here.get_call(mine_no_turns)  # no turn stored: it ends where it started
    assert silent["status"] == "interrupted" and silent["ended_at"] == silent["started_at"]
    assert here.get_call(done)["status"] == "completed"
    assert here.get_call(theirs)["status"] == "in_progress"
    assert here.get_call(theirs)["ended_at"] is None
    legacy_call = here.get_call(old)
    assert legacy_call["instance"] is None
    assert legacy_call["status"] == ("interrupted" if on_sqlite else "in_progress")

    # nothing left to close; a late carrier report does not reopen or relabel the call
    assert here.close_interrupted_calls("web-1:8000") == 0
    assert here.update_by_external_id("CA-mine", status="completed", end_reason="twilio_completed")
    call = here.get_call(mine)
    assert (call["status"], call["end_reason"]) == ("interrupted", "server_restart")
    # the other instance, restarting in turn, closes its own
    assert there.close_interrupted_calls("web-2:8000") == 1
    assert there.get_call(theirs)["status"] == "interrupted"
    for store in (here, there, legacy):
        store.engine.dispose()


def test_the_server_records_its_instance_and_closes_its_calls_at_start_up(small_engines, tmp_path):
    """The in-process app: its start-up closes the calls it left open, and the console shows
    them as interrupted (list badge, call page)."""
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'calls.db'}", data_dir=tmp_path, port=8123
    )
    assert settings.resolved_instance_name == f"{socket.gethostname()}:8123"
    assert load_settings(instance_name="blue").resolved_instance_name == "blue"
    before = _as_store(settings.resolved_database_url, settings.resolved_instance_name)
    left_open = _call_with_turns(before, "CA-left-open", time.time() - 5)
    before.engine.dispose()

    from voice_agent.server import create_app

    app = create_app(settings, engines=small_engines)
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)) as client:
        store: CallStore = app.state.store
        assert store.instance == settings.resolved_instance_name
        assert store.get_call(left_open)["status"] == "interrupted"
        new = store.start_call("twilio")
        assert store.get_call(new)["instance"] == settings.resolved_instance_name
        listing, detail = _console_pages(client, store, left_open)
    assert 'class="badge err"' in listing and ">interrupted</a>" in listing
    assert "status=interrupted" in listing
    assert ">interrupted</span>" in detail and "server_restart" in detail


def _console_pages(client: TestClient, store: CallStore, call_id: str) -> tuple[str, str]:
    from tests.test_console_browser import PASSWORD
    from voice_agent.console.users import UserStore

    UserStore(store.engine).add("sam", PASSWORD, "supervisor")
    assert login(client, "sam").status_code == 303
    listing = client.get("/console/calls")
    detail = client.get(f"/console/calls/{call_id}")
    assert listing.status_code == 200 and detail.status_code == 200
    # a status filter (reached from the badge) is shown, so Apply keeps it
    filtered = client.get("/console/calls", params={"status": "interrupted"})
    assert filtered.status_code == 200 and 'id="status"' in filtered.text
    assert 'value="interrupted" selected' in filtered.text and call_id in filtered.text
    return listing.text, detail.text
