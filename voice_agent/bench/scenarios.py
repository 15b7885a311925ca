"""Scripted helpdesk calls played over the Twilio protocol and graded from the call records.

``voice-agent bench scenarios`` is how an IT team checks a deployment before it goes live, and
how we measure what a caller experiences. Each scenario (``voice_agent.telephony.scripted_caller``)
is one caller with one problem and what a correct call ends with. The caller speaks with an
espeak-ng voice through a phone line (``voice_agent.telephony.caller_voice``: never the agent's own
Piper voice), over Twilio Media Streams in real time (``voice_agent.telephony.twilio_dialer``), and
answers what the agent just said, read from the call records as the server stores them. When the
call is over, the stored call is graded:

* ``category`` / ``priority``: the triage on the call record (a list in the scenario: any of them);
* ``runbook``: the first runbook the agent walked (the first article cited by a reply; ``-``:
  none should be walked);
* ``outcome``: resolved, ticket, status (a ticket's status read back), transfer (transferred, or
  the agent said plainly that it cannot and arranged a call-back);
* ``name``: the caller's name on the call record;
* ``answered``: every caller turn got a spoken reply;
* the caller-side latency of each turn (first audio, first answer audio, as in ``bench latency``),
  and the word error rate of the stored transcripts against what the caller said (both sides
  through the same PII redaction, strict and lenient: ``voice_agent.bench.wer``).

A call is *fully right* when category, priority, runbook and outcome match and every turn was
answered. ``--runs 2`` plays the whole set twice and counts the calls that ended the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice_agent.bench.latency import (
    BenchError,
    check_server,
    in_process_server,
    load_engines,
    percentile,
    records_in_window,
)
from voice_agent.bench.machine import machine_info, models_summary, redact_url
from voice_agent.bench.wer import score
from voice_agent.settings import Settings
from voice_agent.telephony.scripted_caller import (
    CallerState,
    Scenario,
    ScenarioError,
    every_line,
    load_scenarios,
    next_line,
)

DEFAULT_SCENARIOS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "scenarios_dev.jsonl"
)
GRADES = ("category", "priority", "runbook", "outcome", "name", "answered")
FULLY_RIGHT = ("category", "priority", "runbook", "outcome", "answered")
OUTCOME_RECORDED = {  # expected outcome -> the call-record outcomes that satisfy it
    "resolved": {"resolved"},
    "ticket": {"ticket"},
    "status": {"status"},
    "transfer": {"transferred", "callback"},
}
_TICKET = re.compile(r"\bINC\d{7}\b")
AGENT_WORDS_WAIT_SECS = 4.0  # the reply's record is written once its playback mark comes back


def runbook_titles(paths: list[Path]) -> dict[str, str]:
    """The deployment's runbooks by file name without extension: their titles (what the agent
    names when it checks a problem, and what a scripted caller recognises as theirs)."""
    from voice_agent.knowledge.documents import DocumentError, iter_files, load_document

    titles: dict[str, str] = {}
    for root in paths:
        if not Path(root).exists():
            continue
        for path in iter_files(Path(root)):
            try:
                titles.setdefault(path.stem, load_document(path).title)
            except DocumentError:
                continue
    return titles


def caller_phone(scenario: Scenario) -> str:
    """The line the scenario's caller rings from (E.164, from its callback number)."""
    digits = re.sub(r"\D", "", scenario.caller.callback)
    return "+1555" + digits[-7:].rjust(7, "0")


# -- the caller ----------------------------------------------------------------------------------


class ScenarioCaller:
    """A :class:`voice_agent.telephony.twilio_dialer.CallerScript` for one scenario: it reads what
    the agent said from the call records and answers it from the scenario."""

    def __init__(
        self,
        scenario: Scenario,
        audio: dict[str, Any],
        agent_said: Callable[[str, float | None], str],
        runbook_title: str | None = None,
    ) -> None:
        self.scenario = scenario
        self._audio = audio
        self._agent_said = agent_said
        # how the caller recognises their problem when the agent names it: its runbook's title
        self._problem = runbook_title or scenario.expect.runbook
        self.state = CallerState()
        self.heard: list[str] = []  # what the agent said before each caller turn

    async def next_utterance(self, call) -> tuple[str, Any] | None:
        since = call.turns[-1].started_at if call.turns else None
        said = ""
        if call.turns:
            deadline = time.monotonic() + AGENT_WORDS_WAIT_SECS
            while not said and time.monotonic() < deadline:
                said = await asyncio.to_thread(self._agent_said, call.call_sid, since)
                if not said:
                    await asyncio.sleep(0.2)
        line = next_line(self.scenario.caller, self.state, said, self._problem)
        if line is None:
            return None
        self.heard.append(said)
        return line, self._audio[line]


def synthesize_lines(scenarios: list[Scenario]) -> dict[str, dict[str, Any]]:
    """Every line each caller may say, spoken and put through a phone line, before any call:
    the caller answers at once, and synthesis never competes with the agent for the CPU."""
    from voice_agent.telephony.caller_voice import CallerVoice, CallerVoiceError

    audio: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        try:
            voice = CallerVoice(scenario.voice)
            audio[scenario.id] = {line: voice.say(line) for line in every_line(scenario.caller)}
        except CallerVoiceError as e:
            raise BenchError(f"scenario {scenario.id}: {e}") from e
    return audio


# -- grading -------------------------------------------------------------------------------------


def _norm_name(name: str | None) -> str:
    return " ".join(re.findall(r"[a-z]+", (name or "").lower()))


def first_runbook(call: dict[str, Any]) -> str:
    """The first runbook a reply cited (file name without extension), or "-"."""
    for turn in call.get("turns", []):
        for citation in turn.get("citations") or []:
            path = citation.get("path")
            if path:
                return Path(path).stem
    return "-"


@dataclass
class ScenarioResult:
    scenario: str
    run: int
    call_sid: str
    got: dict[str, Any] = field(default_factory=dict)
    grades: dict[str, bool] = field(default_factory=dict)
    turns: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def fully_right(self) -> bool:
        return all(self.grades.get(g) for g in FULLY_RIGHT)

    def ending(self) -> tuple:
        """What decides whether two runs of this scenario ended the same way."""
        return tuple(self.got.get(k) for k in ("category", "priority", "runbook", "outcome"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "run": self.run,
            "call_sid": self.call_sid,
            "got": self.got,
            "grades": self.grades,
            "fully_right": self.fully_right,
            "turns": self.turns,
            "errors": self.errors,
        }


def grade(
    scenario: Scenario,
    dialled: Any,
    call: dict[str, Any] | None,
    heard: list[str],
    *,
    redact: Callable[[str], str],
    run: int = 1,
) -> ScenarioResult:
    """Grade one call from what the caller heard (``dialled``) and what the server stored."""
    result = ScenarioResult(scenario=scenario.id, run=run, call_sid=dialled.call_sid)
    if dialled.error:
        result.errors.append(dialled.error)
    if dialled.greeting.timed_out:
        result.errors.append("no greeting heard")
    if call is None:
        result.errors.append("the call is not in the call records")
        call = {"turns": []}
    records = call.get("turns", [])
    expect = scenario.expect
    runbook = first_runbook(call)
    result.got = {
        "category": call.get("category"),
        "priority": call.get("priority"),
        "runbook": runbook,
        "outcome": call.get("outcome"),
        "name": call.get("caller_name"),
        "callback_number": call.get("callback_number"),
        "status": call.get("status"),
        "end_reason": call.get("end_reason"),
    }
    unanswered = []
    for i, turn in enumerate(dialled.turns):
        nxt = dialled.turns[i + 1] if i + 1 < len(dialled.turns) else None
        window = records_in_window(records, turn.started_at, nxt.started_at if nxt else None)
        heard_text = " ".join(r.get("user_text", "") for r in window if r.get("user_text"))
        replied = " ".join(r.get("bot_text", "") for r in window if r.get("bot_text"))
        answered = turn.first_bot_media_at is not None and not turn.timed_out
        if not answered:
            unanswered.append(turn.index)
        result.turns.append(
            {
                "index": turn.index,
                "said": turn.source,
                "transcript": heard_text,
                "reply": replied.strip(),
                "answered": answered,
                "first_audio": turn.voice_to_voice_secs,
                "answer_audio": turn.voice_to_answer_secs,
                "agent_before": heard[i] if i < len(heard) else "",
                "reference": redact(turn.source),
            }
        )
    if unanswered:
        result.errors.append(f"caller turns {unanswered} got no spoken reply")
    if dialled.closed_by == "server" and result.turns and not result.turns[-1]["answered"]:
        result.errors.append("the server hung up on the caller")
    result.grades = {
        "category": result.got["category"] in expect.category,
        "priority": result.got["priority"] in expect.priority,
        "runbook": runbook == expect.runbook,
        "outcome": result.got["outcome"] in OUTCOME_RECORDED[expect.outcome],
        "name": bool(result.got["name"])
        and _norm_name(result.got["name"]) == _norm_name(scenario.caller.name),
        "answered": bool(dialled.turns) and not unanswered,
    }
    return result


def summarize(results: list[ScenarioResult]) -> dict[str, Any]:
    """Counts per grade, WER, caller-side latency, and run-to-run agreement."""
    turns = [t for r in results for t in r.turns]
    wer = score([t["reference"] for t in turns], [t["transcript"] for t in turns])
    first = [t["first_audio"] for t in turns if t["first_audio"] is not None]
    answer = [t["answer_audio"] for t in turns if t["answer_audio"] is not None]
    runs = sorted({r.run for r in results})
    per_run = {}
    for run in runs:
        these = [r for r in results if r.run == run]
        per_run[run] = {
            "calls": len(these),
            **{g: sum(r.grades.get(g, False) for r in these) for g in GRADES},
            "fully_right": sum(r.fully_right for r in these),
        }
    same = same_outcome = None
    if len(runs) > 1:
        endings: dict[str, set] = {}
        outcomes: dict[str, set] = {}
        for r in results:
            endings.setdefault(r.scenario, set()).add(r.ending())
            outcomes.setdefault(r.scenario, set()).add(r.got.get("outcome"))
        same = sum(1 for e in endings.values() if len(e) == 1)
        same_outcome = sum(1 for o in outcomes.values() if len(o) == 1)
    return {
        "calls": len(results),
        "runs": per_run,
        "same_ending_across_runs": same,  # category, priority, runbook and outcome
        "same_outcome_across_runs": same_outcome,
        "scenarios": len({r.scenario for r in results}),
        "wer": wer.as_dict(),
        "caller_turns": len(turns),
        "first_audio": {
            "p50": percentile(first, 50),
            "p95": percentile(first, 95),
            "n": len(first),
        },
        "answer_audio": {
            "p50": percentile(answer, 50),
            "p95": percentile(answer, 95),
            "n": len(answer),
        },
        "turns_per_call": round(statistics.fmean(len(r.turns) for r in results), 2)
        if results
        else None,
    }


# -- the run -------------------------------------------------------------------------------------


@dataclass
class ScenarioBenchConfig:
    scenarios_file: Path = DEFAULT_SCENARIOS
    only: list[str] | None = None
    limit: int | None = None
    runs: int = 1
    url: str | None = None  # a running server's media socket; None: start one in-process
    database_url: str | None = None  # the server's call records; None: a fresh SQLite file
    reply_timeout_secs: float = 45.0
    greeting_timeout_secs: float = 30.0

    def check(self) -> None:
        if self.runs < 1:
            raise BenchError("--runs must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise BenchError("--limit must be at least 1")
        if self.url and not self.database_url:
            raise BenchError(
                "--url needs --database-url: the calls are graded from the server's call records"
            )


def agent_words_reader(store: Any) -> Callable[[str, float | None], str]:
    """What the agent said on a call since a moment, read from the call records."""

    def agent_said(call_sid: str, since: float | None) -> str:
        call = store.get_call_by_external_id(call_sid)
        if call is None:
            return ""
        window = records_in_window(call.get("turns", []), since, None)
        return " ".join(r.get("bot_text", "") for r in window if r.get("bot_text")).strip()

    return agent_said


def seed_tickets(store: Any, scenarios: list[Scenario]) -> list[str]:
    """Tickets the callers will ask about (an ``INC`` number in a line) exist before the calls.

    Ticket numbers follow the table's row ids, so on a fresh database the seeded tickets get the
    numbers the scenarios name. Returns notes for numbers that could not be set up."""
    from voice_agent.tickets.records import NewTicket, TicketRecords

    records = TicketRecords(store)
    notes = []
    for scenario in scenarios:
        persona = scenario.caller
        lines = [persona.opening, *persona.steps, persona.after_steps, persona.ticket_offer]
        for number in sorted({n for line in lines for n in _TICKET.findall(line)}):
            while records.find(number) is None:
                made = records.insert(
                    NewTicket(
                        summary=f"Reported by {persona.name} on an earlier call",
                        caller=caller_phone(scenario),
                        caller_name=persona.name,
                        callback_number=persona.callback,
                        description=persona.opening,
                        reason="bench_seed",
                    )
                )
                if int(made.number[3:]) >= int(number[3:]):
                    if made.number != number:
                        notes.append(f"scenario {scenario.id}: ticket {number} could not be seeded")
                    break
    return notes


async def run_scenarios(
    settings: Settings,
    config: ScenarioBenchConfig,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Play every scenario (``runs`` times) and return the report (``--json``'s object)."""
    import tempfile

    from voice_agent.storage import CallStore
    from voice_agent.telephony.twilio_dialer import dial

    config.check()
    try:
        scenarios = load_scenarios(config.scenarios_file, config.only)
    except ScenarioError as e:
        raise BenchError(str(e)) from e
    scenarios = scenarios[: config.limit] if config.limit else scenarios
    progress(f"speaking {len(scenarios)} callers' lines with espeak-ng...")
    audio = await asyncio.to_thread(synthesize_lines, scenarios)
    results: list[ScenarioResult] = []
    notes: list[str] = []
    server: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        database_url = config.database_url
        if database_url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scenarios-"))
            database_url = f"sqlite:///{tmp}/calls.db"
        store = CallStore(
            database_url, redact_kinds=settings.redact_kinds if settings.redact_pii else None
        )
        stack.callback(store.engine.dispose)
        notes += seed_tickets(store, scenarios)
        url = config.url
        if url:
            server = await check_server(url)
        else:
            progress("loading the models (this process)...")
            engines = await asyncio.to_thread(load_engines, settings)
            server = {"models": engines.model_names, "in_process": True}
            local = settings.model_copy(update={"database_url": database_url})
            url = await stack.enter_async_context(in_process_server(local, engines))
        agent_said = agent_words_reader(store)
        titles = runbook_titles(settings.kb_paths)
        started = time.monotonic()
        for run in range(1, config.runs + 1):
            for scenario in scenarios:
                progress(f"run {run}: {scenario.id} ({scenario.voice})...")
                title = (
                    titles.get(scenario.expect.runbook) if scenario.expect.runbook != "-" else "-"
                )
                caller = ScenarioCaller(scenario, audio[scenario.id], agent_said, title)
                dialled = await dial(
                    url,
                    caller,
                    caller=caller_phone(scenario),
                    reply_timeout_secs=config.reply_timeout_secs,
                    greeting_timeout_secs=config.greeting_timeout_secs,
                    auth_token=settings.twilio_token,
                )
                call = await _closed_call(store, dialled.call_sid)
                result = grade(scenario, dialled, call, caller.heard, redact=store.redact, run=run)
                results.append(result)
                progress(_one_line(result))
        wall = time.monotonic() - started
    return {
        "machine": machine_info(),
        "settings": {
            "scenarios": str(config.scenarios_file),
            "runs": config.runs,
            "url": config.url or "in-process",
            "database": redact_url(database_url) if config.database_url else "fresh SQLite",
            "models": models_summary(settings),
            "server": server,
        },
        "summary": summarize(results),
        "results": [r.to_dict() for r in results],
        "notes": notes,
        "wall_secs": round(wall, 1),
    }


async def _closed_call(store: Any, call_sid: str, wait_secs: float = 15.0) -> dict | None:
    """The stored call once the server has closed it (its last turn is written at the end)."""
    deadline = time.monotonic() + wait_secs
    call = None
    while time.monotonic() < deadline:
        call = await asyncio.to_thread(store.get_call_by_external_id, call_sid)
        if call is not None and call["status"] != "in_progress":
            return call
        await asyncio.sleep(0.2)
    return call


def _one_line(result: ScenarioResult) -> str:
    marks = " ".join(f"{g}={'ok' if result.grades.get(g) else 'NO'}" for g in GRADES)
    got = result.got
    return (
        f"  {result.scenario}: {got.get('category')}/{got.get('priority')}, "
        f"runbook {got.get('runbook')}, outcome {got.get('outcome')}, name {got.get('name')!r}: "
        f"{marks}"
    )
