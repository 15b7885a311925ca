"""``voice-agent bench latency``: statistics, the chart, the machine record, the acknowledgement
mark at the edge, and quick runs against the real pipeline (small LLM) over both transports.

The end-to-end runs print their numbers; only the report's structure is asserted (CI machines are
too different for latency thresholds).
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import pytest
from loguru import logger
from PIL import Image
from typer.testing import CliRunner
from websockets.asyncio.server import ServerConnection

from tests.conftest import SPEECH, TELEPHONY, agent, serve
from tests.test_twilio_dialer import SPEECH as TONE_SPEECH
from tests.test_twilio_dialer import Bot, call_bot
from voice_agent.bench.chart import write_chart
from voice_agent.bench.cli import bench_app, parse_levels, print_report
from voice_agent.bench.instant_model import REPLY, instant_model_server
from voice_agent.bench.latency import (
    BenchError,
    Script,
    choose_scripts,
    describe,
    main_record,
    measure_dialled,
    percentile,
    records_in_window,
    run_local_level,
    spokenwoz_scripts,
    stage_offsets,
    with_instant_model,
)
from voice_agent.bench.machine import machine_info, redact_url
from voice_agent.speech.audio import write_wav
from voice_agent.telephony.caller_voice import CallerVoice
from voice_agent.telephony.twilio_dialer import DialTurn

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- statistics ----------------------------------------------------------------------------------


def test_percentiles_match_linear_interpolation():
    data = [0.9, 0.1, 0.5, 0.3, 0.7]
    assert percentile(data, 50) == 0.5
    assert percentile(data, 95) == pytest.approx(0.86)  # 0.7 + 0.8 * (0.9 - 0.7)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    rng = np.random.default_rng(3)
    values = list(rng.uniform(0.2, 3.0, size=37))
    for q in (5, 50, 95):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), abs=0.0005)
    assert percentile([], 50) is None
    assert percentile([2.0], 95) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert describe([1.0, None, 3.0]) == {"p50": 2.0, "p95": 2.9, "n": 2}
    assert describe([]) == {"p50": None, "p95": None, "n": 0}


def test_stage_offsets_from_end_of_speech():
    stages = {
        "speech_start": 98.0,
        "speech_end": 100.0,
        "stt_done": 100.4,
        "turn_end": 100.3,
        "lookup_done": 100.45,
        "llm_first_token": 101.0,
        "first_sentence": 101.2,
        "tts_first_audio": 101.5,
        "first_audio_out": 101.6,
        "bot_done": 104.0,
    }
    offsets = stage_offsets(stages)
    assert offsets == {
        "turn_end": 0.3,
        "stt": 0.4,
        "retrieval": 0.45,
        "llm_first_token": 1.0,
        "first_sentence": 1.2,
        "tts_first_audio": 1.5,
        "first_audio_out": 1.6,
        "answer_audio_out": 1.6,  # no acknowledgement: the first audio is the answer
    }
    assert stage_offsets({**stages, "answer_audio_out": 102.5})["answer_audio_out"] == 2.5
    assert stage_offsets({"first_audio_out": 3.0}) == {}  # no end of speech: nothing to measure


def test_agent_turns_are_matched_to_caller_turns():
    def rec(kind, start, out, text="x"):
        stages = {"speech_start": start} if start is not None else {}
        if out is not None:
            stages["first_audio_out"] = out
        return {"kind": kind, "user_text": text, "stages": stages}

    records = [
        rec("greeting", None, 1.0, ""),
        rec("reply", 10.5, 12.0, "partial"),
        rec("reply", 12.5, 14.0, "the rest"),
        rec("fallback", None, 15.0, ""),
        rec("reply", 20.5, 22.0),
    ]
    window = records_in_window(records, 10.0, 20.0)
    assert [r["user_text"] for r in window] == ["partial", "the rest", ""]
    assert main_record(window)["user_text"] == "the rest"
    assert main_record([records[3]]) is records[3]  # only a fallback was heard
    assert main_record([rec("reply", 1.0, None)]) is None  # nothing was heard
    assert records_in_window(records, 20.0, None) == [records[4]]
    assert records_in_window(records, None, None) == []


def test_caller_scripts_from_spokenwoz_dialogues(tmp_path):
    scripts = spokenwoz_scripts(TELEPHONY, 3)
    assert len(scripts) >= 2
    first = scripts[0]
    assert first.name == "spokenwoz_MUL1423"
    assert [p.name for p in first.files] == [
        f"spokenwoz_MUL1423_user_turn0{i}.wav" for i in (1, 2, 3)
    ]
    assert all(len(s.files) <= 3 and s.files for s in scripts)
    assert len(spokenwoz_scripts(TELEPHONY, 1)[0].files) == 1
    with pytest.raises(BenchError, match="no caller audio"):
        spokenwoz_scripts(tmp_path, 3)
    with pytest.raises(BenchError, match="not found"):
        choose_scripts([tmp_path / "missing.wav"], 3)
    (only,) = choose_scripts([TELEPHONY / "spokenwoz_SNG0072_user_turn01.wav"], 3)
    assert only.name == "--audio" and len(only.files) == 1


def test_parse_levels():
    assert parse_levels("1,2,4") == [1, 2, 4]
    assert parse_levels("3") == [3]
    for bad in ("0", "a,b", ""):
        with pytest.raises(Exception, match="expected numbers"):
            parse_levels(bad)


# -- chart and machine ---------------------------------------------------------------------------


def _level(concurrency: int, scale: float) -> dict:
    def stat(p50):
        return {"p50": round(p50 * scale, 3), "p95": round(p50 * scale * 1.4, 3), "n": 6}

    return {
        "concurrency": concurrency,
        "calls": 3,
        "turns": 6,
        "errors": [],
        "edge": {"first_audio": stat(1.9), "answer_audio": stat(2.3)},
        "stages": {
            "turn_end": stat(0.35),
            "stt": stat(0.5),
            "retrieval": stat(0.55),
            "llm_first_token": stat(1.1),
            "first_sentence": stat(1.4),
            "tts_first_audio": stat(1.6),
            "first_audio_out": stat(1.65),
            "answer_audio_out": stat(1.65),
        },
    }


def test_chart_is_a_png(tmp_path):
    path = write_chart(
        [_level(1, 1.0), _level(4, 2.2)], tmp_path / "sub" / "latency.png", title="t"
    )
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 500 and image.size[1] > 300
    # a level with no measured turn still draws (a run where every call failed)
    empty = {"concurrency": 1, "calls": 1, "turns": 0, "errors": ["x"], "edge": {}, "stages": {}}
    assert write_chart([empty], tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError):
        write_chart([], tmp_path / "none.png")


def test_the_floor_is_reported_beside_the_real_levels(tmp_path):
    from rich.console import Console

    floor = {**_level(1, 0.5), "label": "floor (instant model)", "errors": [], "notes": []}
    floor.update(calls=1, turns=2, failed_calls=0, wall_secs=9.0)
    real = {**_level(1, 1.0), "errors": [], "notes": []}
    real.update(calls=1, turns=2, failed_calls=0, wall_secs=12.0)
    report = {
        "machine": machine_info(),
        "settings": {"models": {}, "server": {"models": {"llm": "x"}}, "transport": "twilio"}
        | {"url": "in-process"},
        "levels": [real],
        "floor_levels": [floor],
    }
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "C=1 p50" in text and "floor C=1 p50" in text and "instant stub" in text
    # the answer's first audio: the real p50 beside the floor's, on one row
    row = next(line for line in text.splitlines() if "voice-to-answer" in line)
    assert "2.30" in row and "1.15" in row
    path = write_chart([real, floor], tmp_path / "floor.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_machine_info_records_the_hardware():
    info = machine_info()
    assert isinstance(info["cores"], int) and info["cores"] >= 1
    assert info["cpu"] and info["ram_gib"] and info["ram_gib"] > 0
    assert isinstance(info["gpus"], list)
    assert info["versions"]["python"].startswith("3.")
    assert info["versions"]["ctranslate2"] and info["versions"]["llama_cpp"]
    assert redact_url("postgresql://u:secret@db/calls") == "postgresql://u:***@db/calls"


# -- the acknowledgement mark at the edge --------------------------------------------------------


async def test_dialer_measures_the_answer_after_an_ack_mark():
    async def ack_then_answer(bot: Bot, ws: ServerConnection, n: int) -> None:
        await bot.send_tone(ws, 0.3, f"ack-{n}")  # "One moment."
        await asyncio.sleep(0.6)  # the answer is still being generated
        await bot.send_tone(ws, 0.4, f"turn-{n}")

    bot = Bot(greeting_secs=0.1, on_utterance=ack_then_answer)
    result = await call_bot(bot, [("a.wav", TONE_SPEECH)])  # settle 0.2 s < the gap
    assert bot.problems == []
    (turn,) = result.turns
    assert turn.marks_received == ["ack-1", "turn-1"]
    assert turn.voice_to_voice_secs is not None and turn.voice_to_answer_secs is not None
    # the answer arrived 0.6 s after the acknowledgement was sent
    gap = turn.voice_to_answer_secs - turn.voice_to_voice_secs
    assert 0.5 <= gap <= 1.0, gap
    assert turn.to_dict()["voice_to_answer_secs"] == turn.voice_to_answer_secs

    plain = await call_bot(Bot(greeting_secs=0.1), [("a.wav", TONE_SPEECH)])
    (turn,) = plain.turns
    assert turn.voice_to_answer_secs == turn.voice_to_voice_secs is not None

    acked_only = DialTurn(index=1, source="x", audio_end_at=1.0, first_bot_media_at=2.0)
    acked_only.ack_mark_at = 2.5
    assert acked_only.voice_to_answer_secs is None  # acknowledged, but no answer came


def test_measure_dialled_counts_failures_without_stopping():
    from voice_agent.telephony.twilio_dialer import DialResult

    ok = DialResult(call_sid="CA" + "1" * 32, stream_sid="MZ" + "1" * 32)
    ok.turns.append(DialTurn(index=1, source="/x/a.wav", started_at=10.0, audio_end_at=12.0))
    ok.turns[0].first_bot_media_at = 13.5
    refused = DialResult(call_sid="CA" + "2" * 32, stream_sid="MZ" + "2" * 32, error="cannot")
    stored = {
        "turns": [
            {"kind": "greeting", "user_text": "", "stages": {"first_audio_out": 5.0}},
            {
                "kind": "reply",
                "user_text": "hello",
                "bot_text": "hi ",
                "stages": {"speech_start": 10.3, "speech_end": 11.8, "first_audio_out": 13.4},
            },
        ]
    }
    level = measure_dialled([ok, refused], {ok.call_sid: stored}, [Script("s", [])])
    assert level.failed_calls == 1 and len(level.errors) == 1 and "cannot" in level.errors[0]
    (turn,) = level.turns
    assert turn.first_audio == 1.5 and turn.answer_audio == 1.5 and turn.reply == "hi"
    assert turn.stages["first_audio_out"] == pytest.approx(1.6)
    summary = level.summary()
    assert summary["edge"]["first_audio"] == {"p50": 1.5, "p95": 1.5, "n": 1}
    assert "stt" not in summary["stages"]  # no turn had it: skipped, not zero


# -- command line ----------------------------------------------------------------------------


def test_cli_reports_an_unreachable_server_and_missing_audio(tmp_path):
    runner = CliRunner()
    down = runner.invoke(bench_app, ["latency", "--url", "ws://127.0.0.1:9/twilio/media"])
    assert down.exit_code == 3 and "cannot reach the server" in down.output
    bad_url = runner.invoke(bench_app, ["latency", "--url", "http://127.0.0.1:9/"])
    assert bad_url.exit_code == 2 and "ws://HOST:PORT/twilio/media" in bad_url.output
    missing = runner.invoke(
        bench_app,
        ["latency", "--transport", "local", "--audio", str(tmp_path / "nope.wav")],
    )
    assert missing.exit_code == 2 and "audio file not found" in missing.output


# -- end to end ----------------------------------------------------------------------------------


async def test_quick_run_against_a_running_server(small_engines, tmp_path, capsys):
    app, _store = agent(small_engines, tmp_path)
    database_url = f"sqlite:///{tmp_path / 'calls.db'}"
    chart, out_json = tmp_path / "latency.png", tmp_path / "bench.json"
    async with serve(app) as host:
        args = [
            "latency",
            "--url",
            f"ws://{host}/twilio/media",
            "--database-url",
            database_url,
            "--quick",
            "--json",
            "--chart",
            str(chart),
            "--out-json",
            str(out_json),
        ]
        # the bench runs its own event loop (as from a shell); the server keeps this one
        try:
            result = await asyncio.to_thread(CliRunner().invoke, bench_app, args)
        finally:
            logger.remove()  # the command pointed loguru at the runner's (now closed) stream
            logger.add(sys.__stderr__, level="WARNING")
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    assert json.loads(out_json.read_text()) == report
    with capsys.disabled():
        print()
        print_report(report)

    assert report["machine"]["cores"] >= 1 and "versions" in report["machine"]
    assert report["settings"]["transport"] == "twilio"
    assert report["settings"]["server"]["status"] == "ok"  # the server's /healthz
    assert report["settings"]["models"]["llm_model"] == "qwen2.5-coder-1.5b"  # configured here
    (level,) = report["levels"]
    assert level["concurrency"] == 1 and level["calls"] == 1 and level["turns"] == 2
    for key in ("first_audio", "answer_audio"):
        stat = level["edge"][key]
        assert stat["n"] >= 1 and stat["p50"] is not None and stat["p95"] >= stat["p50"]
    for stage in ("stt", "turn_end", "first_audio_out", "answer_audio_out"):
        assert level["stages"][stage]["n"] >= 1, stage
    assert level["turn_details"][0]["transcript"]
    assert chart.read_bytes()[:8] == PNG_SIGNATURE and report["chart"] == str(chart)


async def _one_local_call(
    engines, store, clip=SPEECH / "telephony" / "spokenwoz_MUL1423_user_turn01.wav"
):
    """One simulated call of one caller turn, measured like ``--transport local``."""
    return await run_local_level(
        [Script("one", [clip])],
        engines=engines,
        store=store,
        calls=1,
        concurrency=1,
        reply_timeout_secs=60,
    )


async def test_local_transport_measures_a_simulated_call(small_engines, tmp_path, capsys):
    _app, store = agent(small_engines, tmp_path)
    level = await _one_local_call(small_engines, store)
    summary = level.summary()
    with capsys.disabled():
        print("\nlocal:", json.dumps({k: summary[k] for k in ("edge", "stages", "errors")}))
    assert summary["turns"] == 1 and summary["failed_calls"] == 0, summary["errors"]
    assert summary["edge"]["first_audio"]["n"] == 1 and summary["edge"]["answer_audio"]["n"] == 1
    assert summary["stages"]["first_audio_out"]["n"] == 1
    assert store.get_call(level.turns[0].call)["transport"] == "simulated"


async def test_the_floor_answers_with_the_instant_model(small_engines, tmp_path):
    """``--floor``: the same loaded models, the language model swapped for the instant stub.
    A greeting is small talk, which the model answers (a problem would get a fixed question)."""
    _app, store = agent(small_engines, tmp_path)
    greeting = tmp_path / "greeting.wav"
    write_wav(greeting, CallerVoice("en-us").say("Good morning.").tobytes(), 8000)
    async with instant_model_server() as model_url:
        floor = with_instant_model(small_engines, model_url)
        assert floor.stt is small_engines.stt and floor.tts is small_engines.tts
        assert floor.llm is None and floor.settings.llm_backend == "openai"
        level = await _one_local_call(floor, store, greeting)
    summary = level.summary()
    assert summary["turns"] == 1 and summary["failed_calls"] == 0, summary["errors"]
    record = store.get_call(level.turns[0].call)
    answered = [t for t in record["turns"] if t["user_text"]]
    assert answered and REPLY in answered[0]["bot_text"], answered
    assert small_engines.settings.llm_backend == "local"  # the real engines are left as they were
