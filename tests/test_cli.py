"""The ``voice-agent`` command as a user runs it: a real process, real models, real audio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLEAN, REPO
from tests.test_audio_and_stt import normalise, wer
from voice_agent.flows.prompts import ACKNOWLEDGEMENTS
from voice_agent.speech.audio import decode_audio_file
from voice_agent.storage import CallStore

CLI = [sys.executable, "-m", "voice_agent.cli"]


def run_cli(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ.update({"VOICE_AGENT_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=REPO, env=environ, timeout=600
    )


@pytest.mark.slow
def test_call_jfk_with_the_default_models_prints_a_complete_json_report(tmp_path, small_engines):
    out = tmp_path / "reply_dir"
    proc = run_cli(
        "call", "--audio", str(CLEAN / "jfk.flac"), "--out", str(out), "--json", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    (turn,) = report["turns"]
    assert "ask not what your country can do for you" in normalise(turn["transcript"])
    assert len(turn["reply"].split()) >= 3
    for stage in (
        "stt_secs",
        "turn_detect_secs",
        "first_sentence_secs",
        "tts_first_audio_secs",
        "voice_to_voice_secs",
        "edge_voice_to_voice_secs",
    ):
        assert turn["latency"][stage] is not None, stage
    if "llm_first_token_secs" in turn["latency"]:  # the model answered (no runbook step)
        assert 0 < turn["prompt_tokens"] < 300
    # the reply audio says the reply text: transcribe it back with the real STT
    audio = decode_audio_file(turn["reply_audio"]).samples.astype(np.float32) / 32768
    heard = small_engines.stt.transcribe(audio).text
    # (an "Okay." said while the caller still counted as talking is in the text, not the audio)
    answer = turn["reply"]
    for ack in ACKNOWLEDGEMENTS:
        answer = answer.removeprefix(ack)
    assert min(wer(turn["reply"], heard), wer(answer, heard)) <= 0.3, (turn["reply"], heard)
    # stored like a real call
    store = CallStore(f"sqlite:///{tmp_path / 'voice_agent.db'}")
    stored = store.get_call(report["call_id"])
    assert stored["status"] == "completed"
    assert any("ask not" in t["user_text"].lower() for t in stored["turns"])


@pytest.mark.models
def test_unreadable_audio_is_named_and_the_call_is_kept(tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00\x01garbage" * 64)
    proc = run_cli(
        "call",
        "--audio",
        str(bad),
        "--out",
        str(tmp_path / "o"),
        "--llm-model",
        "smollm2-135m",
        "--reply-timeout",
        "20",
        tmp_path=tmp_path,
        VOICE_AGENT_USER_IDLE_SECS="2",
    )
    assert proc.returncode == 1
    assert "broken.mp3" in proc.stdout and "error:" in proc.stdout
    assert "Are you still there" in proc.stdout  # the caller heard a spoken prompt
    calls = CallStore(f"sqlite:///{tmp_path / 'voice_agent.db'}").list_calls()
    assert len(calls) == 1 and calls[0]["status"] == "completed"


def call_jfk_with_llm(llm_model: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return run_cli(
        "call", "--audio", str(CLEAN / "jfk.flac"), "--out", str(tmp_path / "out"),
        "--llm-model", llm_model, tmp_path=tmp_path,
    )  # fmt: skip


@pytest.mark.models
def test_a_missing_model_names_the_file_and_the_fix(tmp_path):
    proc = call_jfk_with_llm(str(tmp_path / "nope.gguf"), tmp_path)
    assert proc.returncode == 2
    assert "nope.gguf" in proc.stderr and "voice-agent models fetch" in proc.stderr


@pytest.mark.models
def test_a_corrupt_user_gguf_is_refused_before_loading(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"NOTGGUF" + bytes(100))
    proc = call_jfk_with_llm(str(fake), tmp_path)
    assert proc.returncode == 2 and "model.gguf" in proc.stderr


@pytest.mark.models
def test_models_list_and_verify(tmp_path):
    listed = run_cli("models", "list", "--json", tmp_path=tmp_path)
    assert listed.returncode == 0
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    for name in ("whisper-base", "qwen2.5-coder-1.5b", "piper-joe-medium", "smollm2-135m"):
        assert rows[name]["status"] == "ready", rows[name]
    verified = run_cli("models", "verify", "smollm2-135m", "piper-joe-medium", tmp_path=tmp_path)
    assert verified.returncode == 0 and verified.stdout.count("ok ") == 2
    unknown = run_cli("models", "verify", "no-such-model", tmp_path=tmp_path)
    assert unknown.returncode != 0


def test_bad_config_file_is_a_clear_error(tmp_path):
    proc = run_cli("models", "list", "--config", str(tmp_path / "missing.toml"), tmp_path=tmp_path)
    assert proc.returncode == 2 and "missing.toml" in proc.stderr


# -- what `voice-agent call` prints: no PII unless asked -------------------------------------------

EMAIL, PHONE, CARD = "john.smith@contoso.com", "415 555 0134", "4111 1111 1111 1111"
SAID = f"my email is {EMAIL}, my number is {PHONE} and my card is {CARD}"


def pii_report() -> dict:
    """A call report as ``simulate_call`` makes it, the caller's words as the recogniser heard."""
    return {
        "call_id": "c-1",
        "status": "completed",
        "greeting": {"text": "Hello, IT helpdesk.", "audio": None, "audio_secs": 1.0},
        "turns": [
            {
                "turn": 1,
                "audio": "caller/turn_01.wav",
                "error": None,
                "transcript": SAID,
                "reply": f"Thanks, I will email {EMAIL} and call {PHONE}.",
                "reply_audio": None,
                "prompt_tokens": 120,
                "latency": {"voice_to_voice_secs": 1.2},
                "agent_turns": [{"index": 1, "user_text": SAID, "bot_text": f"Card {CARD}."}],
            }
        ],
        "call": {"category": "access", "priority": "P3", "outcome": "ticket"},
        "tickets": [
            {
                "number": "INC0000001",
                "category": "access",
                "priority": "P3",
                "status": "new",
                "summary": f"Reset for {EMAIL}, card {CARD}",
                "caller": "+14155550134",
                "callback_number": "+14155550134",
            }
        ],
    }


def assert_no_pii(text: str) -> None:
    for raw in (EMAIL, PHONE, CARD, "4155550134", "4111"):
        assert raw not in text, raw


def test_the_call_report_is_printed_without_pii(capsys):
    from voice_agent.cli import _print_report, redacted_report

    report = pii_report()
    _print_report(redacted_report(report))
    out = capsys.readouterr().out
    assert_no_pii(out)
    assert "caller: my email is [email], my number is [phone] and my card is [card]" in out
    assert "INC0000001" in out and "[email]" in out
    assert_no_pii(json.dumps(redacted_report(report)))  # the --json report too
    assert report["turns"][0]["transcript"] == SAID  # the report itself is not changed
    _print_report(report)  # what --show-pii prints
    assert EMAIL in capsys.readouterr().out


def test_call_command_redacts_pii_unless_show_pii(tmp_path, monkeypatch):
    """The `call` command in-process, its pipeline stubbed: what reaches stdout."""
    from typer.testing import CliRunner

    import voice_agent.cli as cli
    import voice_agent.telephony.simulated_call as simulated_call

    async def fake_call(paths, **kw) -> dict:
        return pii_report()

    monkeypatch.setenv("VOICE_AGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "_load_engines", lambda settings: None)
    monkeypatch.setattr(simulated_call, "simulate_call", fake_call)
    args = ["call", "--audio", str(CLEAN / "jfk.flac"), "--out", str(tmp_path / "out")]
    runner = CliRunner()
    for extra in ([], ["--json"]):
        r = runner.invoke(cli.app, [*args, *extra])
        assert r.exit_code == 0, r.output
        assert_no_pii(r.stdout)
        assert "[email]" in r.stdout and "[card]" in r.stdout and "[phone]" in r.stdout
    r = runner.invoke(cli.app, [*args, "--show-pii"])
    assert r.exit_code == 0, r.output
    assert EMAIL in r.stdout and CARD in r.stdout and PHONE in r.stdout
