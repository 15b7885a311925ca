"""``voice-agent call``: a simulated call from audio files through the real pipeline.

Each file is one caller turn. The report gives, per caller turn, what the agent heard, what it
said, the stage latencies, and the reply audio written as WAV; the call is stored like any other.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from voice_agent.call.runner import Call, run_call
from voice_agent.engines import Engines
from voice_agent.records import TurnRecord
from voice_agent.speech.audio import AudioDecodeError, decode_audio_file, write_wav
from voice_agent.storage import CallStore
from voice_agent.telephony.simulated_caller import (
    CallerTurn,
    SimulatedCaller,
    SimulatedCallerTransport,
)


def load_utterances(paths: list[Path]) -> list[tuple[str, Any]]:
    """Decode every file up front; an unreadable one becomes that turn's error, not a crash."""
    out: list[tuple[str, Any]] = []
    for path in paths:
        try:
            out.append((str(path), decode_audio_file(path, 16000)))
        except AudioDecodeError as e:
            out.append((str(path), e))
    return out


def _agent_turns_for(
    window_start: float, window_end: float, turns: list[TurnRecord]
) -> list[TurnRecord]:
    picked = []
    for t in turns:
        anchor = t.stages.get("speech_start") or t.stages.get("first_audio_out")
        if t.kind != "greeting" and anchor is not None and window_start <= anchor < window_end:
            picked.append(t)
    return picked


def build_report(
    call_id: str,
    status: str,
    caller: SimulatedCaller,
    agent_turns: list[TurnRecord],
    out_dir: Path,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = caller.out_sample_rate

    def reply_wav(turn: CallerTurn, name: str) -> tuple[str | None, float]:
        if not turn.reply_audio:
            return None, 0.0
        path = write_wav(out_dir / name, bytes(turn.reply_audio), rate)
        return str(path), round(len(turn.reply_audio) / 2 / rate, 3)

    greeting_path, greeting_secs = reply_wav(caller.greeting, "greeting.wav")
    greeting_text = " ".join(t.bot_text for t in agent_turns if t.kind == "greeting")
    report: dict[str, Any] = {
        "call_id": call_id,
        "status": status,
        "greeting": {"text": greeting_text, "audio": greeting_path, "audio_secs": greeting_secs},
        "turns": [],
    }
    for i, turn in enumerate(caller.turns):
        start = turn.started_at or 0.0
        end = caller.turns[i + 1].started_at if i + 1 < len(caller.turns) else float("inf")
        mine = _agent_turns_for(start, end or float("inf"), agent_turns)
        answered = [t for t in mine if "first_audio_out" in t.stages]
        main = next(
            (t for t in reversed(answered) if t.user_text), answered[-1] if answered else None
        )
        latency: dict[str, float | None] = dict(main.latencies()) if main else {}
        latency["edge_voice_to_voice_secs"] = turn.edge_voice_to_voice_secs
        path, secs = reply_wav(turn, f"turn_{turn.index:02d}.wav")
        report["turns"].append(
            {
                "turn": turn.index,
                "audio": turn.source,
                "audio_secs": turn.audio_secs,
                "error": turn.error,
                "transcript": " ".join(t.user_text for t in mine if t.user_text),
                "reply": " ".join(t.bot_text.strip() for t in mine if t.bot_text.strip()),
                "reply_audio": path,
                "reply_audio_secs": secs,
                "reply_timed_out": turn.timed_out,
                "prompt_tokens": main.prompt_tokens if main else None,
                "latency": latency,
                "agent_turns": [t.to_dict() for t in mine],
            }
        )
    report["summary"] = summarise(report["turns"])
    return report


def summarise(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each latency over the turns that have it (the numbers for a closing note)."""
    values: dict[str, list[float]] = {}
    for turn in turns:
        for name, value in turn["latency"].items():
            if value is not None:
                values.setdefault(name, []).append(value)
    medians = {name: round(statistics.median(v), 3) for name, v in sorted(values.items())}
    tokens = [t["prompt_tokens"] for t in turns if t["prompt_tokens"]]
    return {
        "turns": len(turns),
        "median_latency": medians,
        "median_prompt_tokens": statistics.median(tokens) if tokens else None,
    }


async def simulate_call(
    audio_paths: list[Path],
    *,
    engines: Engines,
    store: CallStore,
    out_dir: Path,
    reply_timeout_secs: float = 90.0,
    barge_in_after_secs: dict[int, float] | None = None,
    make_llm=None,
) -> dict[str, Any]:
    utterances = load_utterances(audio_paths)
    caller = SimulatedCaller(
        utterances,
        out_sample_rate=engines.tts.sample_rate,
        reply_timeout_secs=reply_timeout_secs,
        barge_in_after_secs=barge_in_after_secs,
    )

    def started(handle: Call) -> None:
        caller.hang_up = handle.hang_up

    result = await run_call(
        SimulatedCallerTransport(caller),
        engines=engines,
        store=store,
        transport_name="simulated",
        audio_out_sample_rate=engines.tts.sample_rate,
        on_started=started,
        **({"make_llm": make_llm} if make_llm is not None else {}),
    )
    report = build_report(result.call_id, result.status, caller, result.turns, out_dir)
    stored = store.get_call(result.call_id) or {}
    report["call"] = {k: stored.get(k) for k in ("category", "priority", "triage", "outcome")}
    report["tickets"] = store.tickets_for_call(result.call_id)
    return report


def synthesize_utterances(texts: list[str], engines: Engines, out_dir: Path) -> list[Path]:
    """Caller turns spoken by the Piper voice, for a call scripted as text (``--say``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(texts, start=1):
        pcm = engines.tts.synthesize(text)
        paths.append(write_wav(out_dir / f"caller_{i:02d}.wav", pcm, engines.tts.sample_rate))
    return paths
