"""Settings parsing, and the call store on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from voice_agent.records import TurnRecord
from voice_agent.settings import load_settings
from voice_agent.storage import CallStore
from voice_agent.tickets import NewTicket, TicketService


@pytest.fixture
def store(any_database_url) -> Iterator[CallStore]:
    """A store on an empty database: SQLite, then PostgreSQL (this overrides conftest's)."""
    store = CallStore(any_database_url)
    yield store
    store.engine.dispose()


def test_settings_layers_defaults_file_env_and_overrides(tmp_path, monkeypatch):
    config = tmp_path / "agent.toml"
    config.write_text('llm_model = "qwen2.5-coder-0.5b"\nport = 9000\ncompany_name = "Acme"\n')
    monkeypatch.setenv("VOICE_AGENT_PORT", "9100")
    settings = load_settings(config, host="0.0.0.0")
    assert settings.llm_model == "qwen2.5-coder-0.5b"  # from the file
    assert settings.port == 9100  # env beats file
    assert settings.host == "0.0.0.0"  # explicit override beats env
    assert settings.stt_model == "whisper-base"  # embedded default
    assert settings.resolved_database_url.startswith("sqlite:///")


def test_settings_reject_unknown_keys_and_bad_values(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICE_AGENT_CONFIG", raising=False)
    config = tmp_path / "agent.toml"
    config.write_text('lmm_model = "typo"\n')
    with pytest.raises(ValidationError, match="lmm_model"):
        load_settings(config)
    monkeypatch.delenv("VOICE_AGENT_CONFIG", raising=False)
    with pytest.raises(ValidationError):
        load_settings(llm_backend="cloud")
    with pytest.raises(ValidationError, match="answer_give_up_secs .* must be greater than"):
        load_settings(answer_hold_secs=8, answer_give_up_secs=8)


def test_call_store_keeps_calls_and_turns(store: CallStore):
    call_id = store.start_call("simulated", caller="+15551234", models={"llm": "x"})
    assert store.get_call(call_id)["status"] == "in_progress"  # visible while in progress
    turn = TurnRecord(index=0, kind="reply", user_text="my vpn is down", bot_text="Let's check.")
    turn.mark("speech_end", 100.0)
    turn.mark("first_audio_out", 101.25)
    store.add_turn(call_id, turn)
    store.end_call(call_id, status="completed")
    call = store.get_call(call_id)
    assert call["status"] == "completed" and call["ended_at"]
    (saved,) = call["turns"]
    assert saved["user_text"] == "my vpn is down"
    assert saved["latency"]["voice_to_voice_secs"] == 1.25
    assert store.list_calls()[0]["id"] == call_id
    with pytest.raises(KeyError):
        store.end_call("no-such-call", status="completed")


def test_turn_record_rejects_unknown_stages():
    with pytest.raises(ValueError, match="unknown stage"):
        TurnRecord(index=0).mark("lunch", 1.0)


async def test_json_booleans_and_timezone_aware_times_round_trip(store: CallStore):
    call_id = store.start_call("twilio", external_id="CA42", models={"llm": "x", "gpu": False})
    turn = TurnRecord(index=0, interrupted=True, citations=[{"path": "vpn.md", "score": 0.91}])
    turn.mark("reply_heard", 1_700_000_000.125)
    store.add_turn(call_id, turn)
    store.update_by_external_id("CA42", status="completed", end_reason="hangup")
    call = store.get_call_by_external_id("CA42")
    assert call["models"] == {"llm": "x", "gpu": False}
    (saved,) = call["turns"]
    assert saved["interrupted"] is True and saved["citations"][0]["score"] == 0.91
    assert saved["stages"]["reply_heard"] == 1_700_000_000.125
    started, ended = (datetime.fromisoformat(call[k]) for k in ("started_at", "ended_at"))
    assert started.utcoffset().total_seconds() == 0 and ended >= started
    ticket = await TicketService(store).create(
        NewTicket(summary="VPN down", category="other", priority="P2", call_id=call_id)
    )
    assert ticket.number == "INC0000001"
    assert store.tickets_for_call(call_id)[0]["priority"] == "P2"


def stored_texts(store: CallStore) -> list[str]:
    """What the database itself holds (not what the store hands back)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text('SELECT user_text, bot_text FROM turns ORDER BY "index"'))
        texts = [t for row in rows for t in row]
        texts += conn.execute(sa.text("SELECT summary FROM tickets ORDER BY id")).scalars().all()
    return texts


async def test_what_callers_say_is_stored_without_their_pii(store: CallStore):
    call_id = store.start_call("twilio", caller="+15551230000")
    said = (
        "Hi, this is John Smith, my email is john dot smith at contoso dot com and my password "
        "is hunter2. Call me back on 555 867 5309 about ticket INC0001234."
    )
    store.add_turn(call_id, TurnRecord(index=0, user_text=said, bot_text="Thanks John."))
    store.add_turn(
        call_id,
        TurnRecord(
            index=1,
            user_text="it charged my card 4111 1111 1111 1111 twice, error 0x80070005",
            bot_text="I read back john.smith@contoso.com, is that right?",
        ),
    )
    await TicketService(store).create(
        NewTicket(
            summary=f"Password reset for John Smith: {said}",
            category="other",
            priority="P3",
            call_id=call_id,
        )
    )
    texts = stored_texts(store)
    assert texts[0] == (
        "Hi, this is John Smith, my email is [email] and my password is [password]. "
        "Call me back on [phone] about ticket INC0001234."
    )
    assert texts[2] == "it charged my card [card] twice, error 0x80070005"
    assert texts[3] == "I read back [email], is that right?"
    assert texts[4].startswith("Password reset for John Smith: Hi, this is John Smith")
    for secret in ("contoso", "hunter2", "867", "4111"):
        assert not any(secret in t for t in texts), secret
    assert store.get_call(call_id)["caller"] == "+15551230000"  # the line to call back on


def test_redaction_follows_the_settings(tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", redact_kinds=["email"])
    store = CallStore.from_settings(settings)
    assert store.redact("mail a@b.io or call 555 123 4567") == "mail [email] or call 555 123 4567"
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", redact_pii=False)
    assert CallStore.from_settings(settings).redact("a@b.io") == "a@b.io"
    assert CallStore(f"sqlite:///{tmp_path / 'c.db'}", redact_kinds=None).redact("a@b.io") == (
        "a@b.io"
    )
    assert CallStore(f"sqlite:///{tmp_path / 'd.db'}").redact("a@b.io") == "[email]"  # default
    with pytest.raises(ValueError, match="unknown PII kinds.*'ssn'"):
        CallStore(f"sqlite:///{tmp_path / 'e.db'}", redact_kinds=["email", "ssn"])
    with pytest.raises(ValidationError, match="redact_kinds"):
        load_settings(redact_kinds=["ssn"])
