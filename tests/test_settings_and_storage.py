"""Settings parsing and the call store on a real SQLite database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voice_agent.call_records import TurnRecord
from voice_agent.settings import load_settings
from voice_agent.storage import CallStore


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


def test_an_older_database_gains_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE calls (id VARCHAR(36) PRIMARY KEY, transport VARCHAR(32))")
    con.execute(
        'CREATE TABLE turns (id INTEGER PRIMARY KEY, call_id VARCHAR(36), "index" INTEGER, '
        "kind VARCHAR(16))"
    )
    con.execute("INSERT INTO calls (id, transport) VALUES ('old-call', 'simulated')")
    con.commit()
    con.close()
    store = CallStore(f"sqlite:///{path}")
    assert store.get_call("old-call")["transport"] == "simulated"  # kept
    call_id = store.start_call("twilio")
    turn = TurnRecord(index=0, citations=[{"path": "vpn.md", "title": "VPN"}])
    turn.mark("reply_heard", 5.0)
    store.add_turn(call_id, turn)
    assert store.get_call(call_id)["turns"][0]["citations"][0]["title"] == "VPN"
