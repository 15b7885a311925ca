"""Turn latency as the caller hears it: real speech through a running server, measured at the edge.

Each caller turn gets two edge measures, taken on the caller's side of the line:

* ``first_audio``: end of the caller's audio to the first reply audio (which may be a short
  acknowledgement such as "One moment.");
* ``answer_audio``: end of the caller's audio to the first audio that carries the answer's content
  (the first audio after the server's ``ack-*`` mark; the same as ``first_audio`` without one).

and, read back from the call records the server stored, the named stages of the turn as offsets
from the caller's end of speech (``speech_end``, the VAD's view): turn end, STT, triage, retrieval,
LLM first token, first sentence, TTS first audio, first audio out, answer audio out. Each is
reported as p50/p95 over the turns that had it (``n`` says how many), per concurrency level, so a
run at ``1,2,4`` concurrent calls shows how latency degrades with load.

The two clocks start at slightly different moments: the edge measures at the end of the caller's
audio file, the stages at the VAD's end of speech. Recorded speech carries trailing silence (the
SpokenWOZ turns about 0.65 s), so a server that starts replying inside that silence shows an edge
figure near zero while its stage offsets stay positive.

Transports: ``twilio`` dials the server's ``/twilio/media`` socket exactly as Twilio streams a call
(``voice_agent.telephony.twilio_dialer``), against ``--url`` or a server started here in-process;
``local`` runs the in-process simulated caller (``voice_agent.telephony.simulated_call``), no
network at all.

The floor (``--floor``): every level is run again against a second in-process server that shares
the loaded models but answers with an instant OpenAI-compatible stub
(``voice_agent.bench.instant_model``) instead of the language model. Its figures, reported beside
the real ones, are what turn-taking, recognition, synthesis and the transport cost alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from voice_agent.bench.machine import machine_info, models_summary, redact_url
from voice_agent.settings import Settings
from voice_agent.stats import percentile

# (report key, stage in the call record, label): offsets from ``speech_end``, in pipeline order
STAGES: tuple[tuple[str, str, str], ...] = (
    ("turn_end", "turn_end", "turn end (VAD + smart-turn)"),
    ("stt", "stt_done", "STT transcript"),
    ("triage", "triage_done", "triage"),
    ("retrieval", "lookup_done", "retrieval"),
    ("llm_first_token", "llm_first_token", "LLM first token"),
    ("first_sentence", "first_sentence", "first sentence"),
    ("tts_first_audio", "tts_first_audio", "TTS first audio"),
    ("first_audio_out", "first_audio_out", "first audio out (server v2v)"),
    ("answer_audio_out", "answer_audio_out", "answer audio out"),
)
STAGE_LABELS = {key: label for key, _, label in STAGES}

# edge measures, taken on the caller's side of the transport
EDGE = (
    ("first_audio", "voice-to-voice (edge, first audio)"),
    ("answer_audio", "voice-to-answer (edge, answer audio)"),
)
EDGE_LABELS = dict(EDGE)

SPOKENWOZ_TURN = re.compile(r"spokenwoz_(?P<dialogue>[A-Za-z0-9]+)_user_turn(?P<turn>\d+)\.wav$")
DEFAULT_SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
SEND_LAG_WARN_SECS = 0.25  # a dialer this late on its 20 ms schedule makes its figures suspect

Transport = Literal["twilio", "local"]
FLOOR_LABEL = "floor (instant model)"


class BenchError(Exception):
    """The benchmark cannot run at all (no audio, no server, no models); ``code``: exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# -- statistics ----------------------------------------------------------------------------------


def describe(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"p50", "p95", "n"}`` over the values that exist (None values are skipped)."""
    present = [v for v in values if v is not None]
    return {"p50": percentile(present, 50), "p95": percentile(present, 95), "n": len(present)}


def stage_offsets(stages: dict[str, float]) -> dict[str, float]:
    """Each benchmark stage as seconds after ``speech_end``; stages that never ran are left out.

    ``answer_audio_out`` falls back to ``first_audio_out`` (a reply without an acknowledgement:
    its first audio is the answer).
    """
    end = stages.get("speech_end")
    if end is None:
        return {}
    out = {key: round(stages[stage] - end, 3) for key, stage, _ in STAGES if stage in stages}
    if "answer_audio_out" not in out and "first_audio_out" in out:
        out["answer_audio_out"] = out["first_audio_out"]
    return out


def main_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The agent turn that answered a caller turn: the last one heard that has the caller's words.

    A caller turn can produce more than one agent turn record (a mid-sentence pause answered, a
    "didn't catch that" fallback); the reply to what the caller finally said is the last one.
    """
    answered = [r for r in records if "first_audio_out" in r.get("stages", {})]
    with_words = [r for r in answered if r.get("user_text")]
    if with_words:
        return with_words[-1]
    return answered[-1] if answered else None


def records_in_window(
    records: list[dict[str, Any]], start: float | None, end: float | None
) -> list[dict[str, Any]]:
    """Agent turns that began (caller speech, or else reply audio) within ``[start, end)``."""
    if start is None:
        return []
    picked = []
    for r in records:
        if r.get("kind") == "greeting":
            continue
        st = r.get("stages", {})
        anchor = st.get("speech_start") or st.get("first_audio_out")
        if anchor is not None and anchor >= start and (end is None or anchor < end):
            picked.append(r)
    return picked


# -- what was measured ---------------------------------------------------------------------------


@dataclass
class TurnMeasure:
    """One caller turn: the two edge measures and the server's stage offsets (seconds)."""

    call: str
    turn: int
    source: str
    first_audio: float | None = None
    answer_audio: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    transcript: str = ""
    reply: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "turn": self.turn,
            "source": self.source,
            "first_audio": self.first_audio,
            "answer_audio": self.answer_audio,
            "stages": dict(self.stages),
            "transcript": self.transcript,
            "reply": self.reply,
        }


@dataclass
class LevelRun:
    """Every call placed at one concurrency level."""

    concurrency: int
    calls: int
    turns: list[TurnMeasure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_calls: int = 0
    wall_secs: float = 0.0
    max_send_lag_secs: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        edge = {key: describe([getattr(t, key) for t in self.turns]) for key, _ in EDGE}
        stages = {}
        for key, _, _ in STAGES:
            values = [t.stages[key] for t in self.turns if key in t.stages]
            if values:  # a stage no turn reached is skipped, not reported as zero
                stages[key] = describe(values)
        return {
            "concurrency": self.concurrency,
            "calls": self.calls,
            "turns": len(self.turns),
            "edge": edge,
            "stages": stages,
            "errors": list(self.errors),
            "failed_calls": self.failed_calls,
            "wall_secs": round(self.wall_secs, 1),
            "max_send_lag_secs": self.max_send_lag_secs,
            "notes": list(self.notes),
            "turn_details": [t.to_dict() for t in self.turns],
        }


# -- the caller's audio --------------------------------------------------------------------------


@dataclass
class Script:
    """One call's caller turns, in order."""

    name: str
    files: list[Path]


def spokenwoz_scripts(folder: Path, turns_per_call: int) -> list[Script]:
    """SpokenWOZ caller turns grouped by dialogue (``spokenwoz_<ID>_user_turnNN.wav``), in turn
    order, the first ``turns_per_call`` of each; dialogues sorted by id."""
    if turns_per_call < 1:
        raise BenchError("--turns-per-call must be at least 1")
    if not folder.is_dir():
        raise BenchError(f"no caller audio: {folder} is not a folder (pass --audio FILES)")
    dialogues: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        m = SPOKENWOZ_TURN.match(path.name)
        if m:
            dialogues.setdefault(m["dialogue"], []).append((int(m["turn"]), path))
    if not dialogues:
        raise BenchError(f"no caller audio: no spokenwoz_<ID>_user_turnNN.wav files in {folder}")
    return [
        Script(name=f"spokenwoz_{d}", files=[p for _, p in sorted(turns)[:turns_per_call]])
        for d, turns in sorted(dialogues.items())
    ]


def choose_scripts(
    audio: list[Path] | None, turns_per_call: int, speech_dir: Path = DEFAULT_SPEECH
) -> list[Script]:
    """``--audio`` files as one script (every call speaks them), else the SpokenWOZ dialogues."""
    if audio:
        missing = [str(p) for p in audio if not Path(p).is_file()]
        if missing:
            raise BenchError(f"audio file not found: {', '.join(missing)}")
        return [Script(name="--audio", files=[Path(p) for p in audio])]
    return spokenwoz_scripts(speech_dir / "telephony", turns_per_call)


# -- the Twilio transport ------------------------------------------------------------------------


def health_url(ws_url: str) -> str:
    """``ws://host:port/twilio/media`` -> ``http://host:port/healthz``."""
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise BenchError(f"--url must look like ws://HOST:PORT/twilio/media, got {ws_url!r}")
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/healthz", "", ""))


async def check_server(ws_url: str) -> dict[str, Any]:
    """The server's ``/healthz`` (models it runs); BenchError (exit 3) when it cannot be reached."""
    import httpx

    url = health_url(ws_url)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    except httpx.HTTPError as e:
        raise BenchError(
            f"cannot reach the server at {url}: {type(e).__name__}: {e}. Start it "
            "(./run.sh serve) or leave out --url to start one in this process.",
            code=3,
        ) from e
    if response.status_code != 200:
        return {"healthz": f"HTTP {response.status_code}"}
    try:
        return response.json()
    except ValueError:
        return {"healthz": "not JSON"}


@contextlib.asynccontextmanager
async def in_process_server(settings: Settings, engines: Any) -> AsyncIterator[str]:
    """The agent server on 127.0.0.1 (a free port) in this event loop; yields its media URL."""
    from voice_agent.loopback_server import HOST, ServerStartError, serving_in_process
    from voice_agent.server import create_app

    app = create_app(settings, engines=engines)
    ws_max_size = settings.twilio_max_message_bytes * 4
    try:
        async with serving_in_process(app, ws_max_size=ws_max_size, name="bench-server") as port:
            yield f"ws://{HOST}:{port}/twilio/media"
    except ServerStartError as e:
        raise BenchError(str(e)) from e


def read_call_records(
    database_url: str, call_sids: list[str], *, wait_secs: float = 15.0
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The stored calls by Twilio call SID, waiting (a little) for each to be closed.

    The server writes a call's last turn when the call ends, just after the socket closes; the
    records are polled until every call has left ``in_progress`` or ``wait_secs`` pass. Returns
    the calls found and a note when the database could not be read (the run then reports edge
    measures only).
    """
    from voice_agent.storage import CallStore

    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.is_file():
            return {}, f"no call records: database file {path} does not exist"
    try:
        store = CallStore(database_url)
    except Exception as e:  # any driver error: the edge measures still stand
        return {}, f"call records unreachable ({redact_url(database_url)}): {type(e).__name__}: {e}"
    deadline = time.monotonic() + wait_secs
    found: dict[str, dict[str, Any]] = {}
    try:
        while True:
            for sid in call_sids:
                if sid not in found or found[sid]["status"] == "in_progress":
                    call = store.get_call_by_external_id(sid)
                    if call is not None:
                        found[sid] = call
            pending = [
                s for s in call_sids if s not in found or found[s]["status"] == "in_progress"
            ]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    except Exception as e:
        return found, f"call records unreadable: {type(e).__name__}: {e}"
    finally:
        store.engine.dispose()
    note = None
    missing = [s for s in call_sids if s not in found]
    if missing:
        note = (
            f"{len(missing)} of {len(call_sids)} calls not in the call records at "
            f"{redact_url(database_url)} (is --database-url the server's database?)"
        )
    return found, note


def measure_dialled(
    results: list[Any], calls_by_sid: dict[str, dict[str, Any]], scripts: list[Script]
) -> LevelRun:
    """Per-turn measures and error counts from the dialer's results and the stored records."""
    level = LevelRun(concurrency=0, calls=len(results))
    for i, result in enumerate(results):
        expected = len(scripts[i % len(scripts)].files)
        problems: list[str] = []
        sid = result.call_sid
        if result.error:
            problems.append(result.error)
        if result.greeting.timed_out:
            problems.append("no greeting heard")
        if result.closed_by == "server":
            problems.append(f"the server hung up after {len(result.turns)} of {expected} turns")
        if result.protocol_errors:
            level.notes.append(f"call {sid}: {len(result.protocol_errors)} malformed messages")
        level.max_send_lag_secs = max(level.max_send_lag_secs, result.max_send_lag_secs)
        records = (calls_by_sid.get(sid) or {}).get("turns", [])
        for turn, nxt in zip(result.turns, [*result.turns[1:], None], strict=False):
            if turn.error:
                problems.append(f"turn {turn.index}: {turn.error}")
                continue
            if turn.timed_out:
                problems.append(f"turn {turn.index}: no reply heard (timed out)")
            record = main_record(
                records_in_window(records, turn.started_at, nxt.started_at if nxt else None)
            )
            level.turns.append(
                TurnMeasure(
                    call=sid,
                    turn=turn.index,
                    source=Path(turn.source).name,
                    first_audio=turn.voice_to_voice_secs,
                    answer_audio=turn.voice_to_answer_secs,
                    stages=stage_offsets(record["stages"]) if record else {},
                    transcript=record.get("user_text", "") if record else "",
                    reply=record.get("bot_text", "").strip() if record else "",
                )
            )
        if problems:
            level.failed_calls += 1
            level.errors.extend(f"call {sid}: {p}" for p in problems)
    if level.max_send_lag_secs > SEND_LAG_WARN_SECS:
        level.notes.append(
            f"the dialer fell {level.max_send_lag_secs:.2f}s behind its 20 ms schedule "
            "(CPU-starved?): edge figures are suspect"
        )
    return level


async def run_twilio_level(
    url: str,
    scripts: list[Script],
    *,
    calls: int,
    concurrency: int,
    database_url: str | None,
    reply_timeout_secs: float,
    greeting_timeout_secs: float,
    auth_token: str | None = None,
) -> LevelRun:
    from voice_agent.speech.audio import AudioDecodeError
    from voice_agent.telephony.twilio_dialer import dial_many, load_phone_audio

    audio: list[list[tuple[str, Any]]] = []
    for script in scripts:
        turns: list[tuple[str, Any]] = []  # the audio, or why it could not be read
        for path in script.files:
            try:
                turns.append((str(path), load_phone_audio(path)))
            except AudioDecodeError as e:
                turns.append((str(path), e))
        audio.append(turns)
    started = time.monotonic()
    results = await dial_many(
        url,
        audio[0],
        scripts=audio,
        calls=calls,
        concurrency=concurrency,
        reply_timeout_secs=reply_timeout_secs,
        greeting_timeout_secs=greeting_timeout_secs,
        auth_token=auth_token,
    )
    wall = time.monotonic() - started
    calls_by_sid: dict[str, dict[str, Any]] = {}
    note: str | None = "server-side stages not read: no database URL"
    if database_url is not None:
        sids = [r.call_sid for r in results if r.error is None]
        calls_by_sid, note = await asyncio.to_thread(read_call_records, database_url, sids)
    level = measure_dialled(results, calls_by_sid, scripts)
    level.concurrency, level.wall_secs = concurrency, wall
    if note:
        level.notes.append(note + "; edge measures only")
    return level


# -- the local (in-process) transport ------------------------------------------------------------


def measure_simulated(reports: list[dict[str, Any] | BaseException]) -> LevelRun:
    """Per-turn measures from ``simulate_call`` reports (or the exception a call raised)."""
    level = LevelRun(concurrency=0, calls=len(reports))
    for i, report in enumerate(reports):
        if isinstance(report, BaseException):
            level.failed_calls += 1
            level.errors.append(f"call {i + 1}: {type(report).__name__}: {report}")
            continue
        call_id = report["call_id"]
        problems = [] if report["status"] == "completed" else [f"status {report['status']}"]
        for turn in report["turns"]:
            if turn["error"]:
                problems.append(f"turn {turn['turn']}: {turn['error']}")
                continue
            if turn["reply_timed_out"]:
                problems.append(f"turn {turn['turn']}: no reply heard (timed out)")
            record = main_record(turn["agent_turns"])
            stages = stage_offsets(record["stages"]) if record else {}
            first = turn["latency"].get("edge_voice_to_voice_secs")
            answer = first
            if first is not None and record is not None:
                st = record["stages"]
                if "answer_audio_out" in st and "first_audio_out" in st:
                    answer = round(
                        first + max(0.0, st["answer_audio_out"] - st["first_audio_out"]), 3
                    )
            level.turns.append(
                TurnMeasure(
                    call=call_id,
                    turn=turn["turn"],
                    source=Path(turn["audio"]).name,
                    first_audio=first,
                    answer_audio=answer,
                    stages=stages,
                    transcript=turn["transcript"],
                    reply=turn["reply"],
                )
            )
        if problems:
            level.failed_calls += 1
            level.errors.extend(f"call {call_id}: {p}" for p in problems)
    return level


async def run_local_level(
    scripts: list[Script],
    *,
    engines: Any,
    store: Any,
    calls: int,
    concurrency: int,
    reply_timeout_secs: float,
) -> LevelRun:
    from voice_agent.telephony.simulated_call import simulate_call

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, out_dir: Path) -> dict[str, Any]:
        async with gate:
            return await simulate_call(
                scripts[i % len(scripts)].files,
                engines=engines,
                store=store,
                out_dir=out_dir / f"call_{i + 1:03d}",
                reply_timeout_secs=reply_timeout_secs,
            )

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-replies-") as tmp:
        reports = await asyncio.gather(
            *(one(i, Path(tmp)) for i in range(calls)), return_exceptions=True
        )
    level = measure_simulated(list(reports))
    level.concurrency, level.wall_secs = concurrency, time.monotonic() - started
    return level


# -- the whole run -------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    transport: Transport = "twilio"
    url: str | None = None  # a running server's media socket; None: start one in-process
    database_url: str | None = None  # the server's call records; None: the configured database
    calls: int = 3
    concurrency: list[int] = field(default_factory=lambda: [1])
    turns_per_call: int = 3
    audio: list[Path] | None = None
    reply_timeout_secs: float = 60.0
    greeting_timeout_secs: float = 30.0
    speech_dir: Path = DEFAULT_SPEECH
    floor: bool = False  # the calls again with an instant model (voice_agent.bench.instant_model)

    def check(self) -> None:
        if self.transport not in ("twilio", "local"):
            raise BenchError(f"--transport must be twilio or local, got {self.transport!r}")
        if self.calls < 1:
            raise BenchError("--calls must be at least 1")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise BenchError("--concurrency must be one or more numbers >= 1, e.g. 1,2,4")
        if self.transport == "local" and self.url:
            raise BenchError("--url is for --transport twilio (local runs in this process)")
        if self.floor and self.url:
            raise BenchError("--floor swaps the model of a server it starts: leave out --url")


def load_engines(settings: Settings) -> Any:
    from voice_agent.engines import Engines
    from voice_agent.models.store import ModelNotReadyError

    try:
        return Engines.load(settings)
    except ModelNotReadyError as e:
        raise BenchError(str(e)) from e


async def run_bench(
    settings: Settings, config: BenchConfig, *, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run every concurrency level in turn and return the report (``--json``'s object)."""
    config.check()
    scripts = choose_scripts(config.audio, config.turns_per_call, config.speech_dir)
    database_url = config.database_url or settings.resolved_database_url
    if config.database_url:  # an in-process server must write where the records are read
        settings = settings.model_copy(update={"database_url": config.database_url})
    if not config.url:  # an in-process server takes every level's calls
        lines = max(settings.max_concurrent_calls, *config.concurrency)
        settings = settings.model_copy(update={"max_concurrent_calls": lines})
    server: dict[str, Any] = {}
    levels: list[LevelRun] = []
    floor: list[LevelRun] = []
    async with contextlib.AsyncExitStack() as stack:
        url = config.url
        engines = None
        if config.transport == "twilio" and url:
            server = await check_server(url)
        else:
            progress("loading the models (this process)...")
            engines = await asyncio.to_thread(load_engines, settings)
            server = {"models": engines.model_names, "in_process": True}
            if config.transport == "twilio":
                url = await stack.enter_async_context(in_process_server(settings, engines))
        levels = await _run_levels(
            config, scripts, url, engines, database_url, progress, settings.twilio_token
        )
    if config.floor:
        assert engines is not None  # --floor starts its own server
        async with contextlib.AsyncExitStack() as stack:
            from voice_agent.bench.instant_model import instant_model_server

            model_url = await stack.enter_async_context(instant_model_server())
            floor_engines = with_instant_model(engines, model_url)
            url = None
            if config.transport == "twilio":
                url = await stack.enter_async_context(
                    in_process_server(floor_engines.settings, floor_engines)
                )
            progress("the floor: the same calls, the model replaced by an instant stub...")
            floor = await _run_levels(
                config, scripts, url, floor_engines, database_url, progress, settings.twilio_token
            )
    return {
        "machine": machine_info(),
        "settings": {
            "transport": config.transport,
            "url": config.url or ("in-process" if config.transport == "twilio" else None),
            "database": redact_url(database_url),
            "calls_per_level": config.calls,
            "concurrency": list(config.concurrency),
            "turns_per_call": None if config.audio else config.turns_per_call,
            "scripts": [{"name": s.name, "files": [p.name for p in s.files]} for s in scripts],
            "models": models_summary(settings),
            "server": server,
        },
        "levels": [lv.summary() for lv in levels],
        "floor_levels": [{**lv.summary(), "label": FLOOR_LABEL} for lv in floor],
    }


async def _run_levels(
    config: BenchConfig,
    scripts: list[Script],
    url: str | None,
    engines: Any,
    database_url: str,
    progress: Callable[[str], None],
    auth_token: str | None,
) -> list[LevelRun]:
    """Every concurrency level of ``config`` in turn, against ``url`` (twilio) or ``engines``."""
    store = None
    if config.transport == "local":
        from voice_agent.storage import CallStore

        store = CallStore(database_url)
    levels = []
    for concurrency in config.concurrency:
        progress(f"concurrency {concurrency}: {config.calls} calls...")
        if config.transport == "twilio":
            assert url is not None  # given, or the in-process server's
            level = await run_twilio_level(
                url,
                scripts,
                calls=config.calls,
                concurrency=concurrency,
                database_url=database_url,
                reply_timeout_secs=config.reply_timeout_secs,
                greeting_timeout_secs=config.greeting_timeout_secs,
                auth_token=auth_token,
            )
        else:
            level = await run_local_level(
                scripts,
                engines=engines,
                store=store,
                calls=config.calls,
                concurrency=concurrency,
                reply_timeout_secs=config.reply_timeout_secs,
            )
        levels.append(level)
    return levels


def with_instant_model(engines: Any, model_url: str) -> Any:
    """``engines`` sharing every loaded model, but answering with the instant stub at
    ``model_url``: the language model (and triage's model fallback, when on) is taken out."""
    settings = engines.settings.model_copy(
        update={"llm_backend": "openai", "llm_base_url": model_url, "llm_model": "instant"}
    )
    triage = engines.triage
    if triage is not None and triage.has_llm:
        triage = copy.copy(triage)
        triage.llm_engine = None
        triage.openai_base_url = None
    names = {**engines.model_names, "llm": f"instant stub ({model_url})"}
    return dataclasses.replace(
        engines, settings=settings, llm=None, triage=triage, model_names=names
    )
