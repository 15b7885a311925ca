"""A scripted helpdesk caller who answers what the agent just asked.

Scenario files are JSON lines (``../shared/eval/SCENARIOS.md`` describes the format)::

    {"id": "d01", "voice": "en-us+f3",
     "expect": {"category": "network", "priority": "P2", "runbook": "vpn-cannot-connect",
                "outcome": "resolved"},
     "caller": {"name": "Angela Ruiz", "callback": "555 0201",
                "opening": "Hey, Angela Ruiz here. The VPN keeps failing to connect.",
                "steps": ["Oh, I hadn't done that. Okay, it connects now."],
                "after_steps": "It's connected now.", "ticket_offer": "No, it's working.",
                "anything_else": "No, that's it, thanks."}}

The caller opens with ``opening`` after the greeting, then answers by what the agent just said:
its name when asked for a name (spelled out when asked to spell it), ``callback`` when asked for
a number to call back on, the next of ``steps`` after "did that work?" (then ``after_steps`` when
they run out), ``ticket_offer`` when offered a ticket, ``anything_else`` to "anything else?" (and
then hangs up), its ``opening`` again when asked to tell the problem again. A question that
checks what the problem is ("is this about: VPN won't connect?") is answered yes when it names
the caller's problem (the title of the scenario's runbook), else the caller says no and tells
the problem again. Anything else the agent says gets the next step line, or ``after_steps``.

The caller decides from the agent's words (as the call records store them), never from its own
expectations, so a misunderstanding shows in the call the way it would with a person.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("resolved", "ticket", "transfer", "status")
MAX_CALLER_TURNS = 12  # a call that goes round in circles is cut off here


class ScenarioError(ValueError):
    """A scenario file that cannot be used (names the file, line and field)."""


@dataclass(frozen=True)
class Expected:
    category: tuple[str, ...]
    priority: tuple[str, ...]
    runbook: str  # starter runbook file name without .md, or "-" for none
    outcome: str


@dataclass(frozen=True)
class CallerPersona:
    name: str
    callback: str
    opening: str
    steps: tuple[str, ...]
    after_steps: str
    ticket_offer: str
    anything_else: str


@dataclass(frozen=True)
class Scenario:
    id: str
    voice: str
    expect: Expected
    caller: CallerPersona


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _one_or_more(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ScenarioError(f"{where}: {key!r} must be a string or a list of strings")
    return tuple(values)


def parse_scenario(data: Any, where: str) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a JSON object")
    expect, caller = data.get("expect"), data.get("caller")
    if not isinstance(expect, dict) or not isinstance(caller, dict):
        raise ScenarioError(f"{where}: 'expect' and 'caller' must be objects")
    outcome = _text(expect, "outcome", where)
    if outcome not in OUTCOMES:
        raise ScenarioError(f"{where}: outcome must be one of {', '.join(OUTCOMES)}")
    steps = caller.get("steps", [])
    if not isinstance(steps, list) or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ScenarioError(f"{where}: 'steps' must be a list of strings")
    return Scenario(
        id=_text(data, "id", where),
        voice=_text(data, "voice", where),
        expect=Expected(
            category=_one_or_more(expect, "category", where),
            priority=_one_or_more(expect, "priority", where),
            runbook=_text(expect, "runbook", where),
            outcome=outcome,
        ),
        caller=CallerPersona(
            name=_text(caller, "name", where),
            callback=_text(caller, "callback", where),
            opening=_text(caller, "opening", where),
            steps=tuple(s.strip() for s in steps),
            after_steps=_text(caller, "after_steps", where),
            ticket_offer=_text(caller, "ticket_offer", where),
            anything_else=_text(caller, "anything_else", where),
        ),
    )


def load_scenarios(path: Path | str, only: list[str] | None = None) -> list[Scenario]:
    """Every scenario in a JSONL file (blank lines skipped), or those whose id is in ``only``."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    scenarios = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScenarioError(f"{path}:{number}: not JSON: {e}") from e
        scenarios.append(parse_scenario(data, f"{path}:{number}"))
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{path}: scenario ids repeat")
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise ScenarioError(f"{path}: no scenario with id {', '.join(unknown)}")
        scenarios = [s for s in scenarios if s.id in only]
    if not scenarios:
        raise ScenarioError(f"{path}: no scenarios")
    return scenarios


# -- what the agent asked ------------------------------------------------------------------------

_SPELL = re.compile(r"\bspell\b")
_NAME = re.compile(
    r"\b(your name|who am i speaking|who i'm speaking|who is calling|who's calling|"
    r"your (first|last|full) name|your surname)\b"
)
_NUMBER = re.compile(
    r"\b(what's|what is|which|your|a good|the best|best) (phone |callback |contact |mobile )?"
    r"number\b|\bnumber (to|where|i can|we can)\b"
)
_RETELL = re.compile(
    r"\b(tell|describe|explain|say)\b[^?]*\b(the|your) problem\b|\bproblem again\b|"
    r"\bwhat (can|else can) i help you with\b|\bwhat('s| is) (the problem|going on)\b"
)
_TICKET_NUMBER = re.compile(r"\bticket number\b|\bnumber of (the|your) ticket\b")
_DID_IT_WORK = re.compile(
    r"\b(did (that|it|this) (work|help|fix)|does (that|it) (work|help)|is it working|"
    r"any (luck|better|change)|has (that|it) (worked|helped|fixed)|did you (manage|get)|"
    r"have you (tried|been able|managed|done)|were you able|let me know (if|when)|"
    r"is (that|it) (fixed|sorted|better|working))\b"
)
_TICKET_OFFER = re.compile(
    r"\b(open|log|raise|create|file|put in|submit)\b[^.?!]*\b(ticket|request|case)\b[^.?!]*\?"
    r"|\b(shall|should|can|may) i\b[^.?!]*\b(ticket|technician|call you back)\b[^.?!]*\?"
    r"|\b(would|do) you (like|want)\b[^.?!]*\b(ticket|technician|call ?back)\b[^.?!]*\?"
)
_ANYTHING_ELSE = re.compile(r"\banything else\b|\bsomething else\b")
_CONFIRM = re.compile(
    r"\b(is (it|this|that) (about|your|the|a)|did you say|do you mean|are you (calling|saying)|"
    r"just to (check|confirm|make sure)|is that right|so (it's|it is|your))\b[^?]*\?"
)
_GOODBYE = re.compile(r"\b(goodbye|bye)\b")
_STOP = set(
    """a an the i i'm im my me is it it's its and or to of in on for with that this your you
    be been was are do does did not no yes so just get got can can't cant from at as about
    there here hi hey hello now ve have has had what which when any some all very really
    won't wont won keeps keep still cannot don isn doesn didn aren wasn""".split()
)


def _last_question(text: str) -> str:
    """The agent's last sentence that asks something (what a caller answers), with the sentence
    before it ("I can open a ticket. Would you like that?"); else all of it."""
    sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]
    for i in range(len(sentences) - 1, -1, -1):
        if sentences[i].endswith("?"):
            return " ".join(sentences[max(0, i - 1) : i + 1])
    return text


def _content(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w.rstrip("s") for w in words if w not in _STOP and len(w) > 2}


def spelled(name: str) -> str:
    """ "Angela Ruiz" -> "Angela, A N G E L A. Ruiz, R U I Z." as a caller spells a name."""
    parts = []
    for part in name.split():
        letters = " ".join(c.upper() for c in part if c.isalpha())
        parts.append(f"{part}, {letters}.")
    return " ".join(parts)


def speakable_number(number: str) -> str:
    """ "555 0201" -> "5 5 5, 0 2 0 1": digits one at a time, grouped as written."""
    groups = [" ".join(g) for g in re.findall(r"\d+", number)]
    return ", ".join(groups) + "."


@dataclass
class CallerState:
    """What the scripted caller has said so far in one call."""

    step: int = 0
    said: list[str] = field(default_factory=list)
    done: bool = False  # the caller answered "anything else?" and hangs up after it


def names_my_problem(question: str, problem: str) -> bool:
    """Whether the agent's "is this about: VPN won't connect?" names the caller's problem: the
    caller knows which runbook covers it (``problem``: its title, or its file name such as
    ``vpn-cannot-connect``; ``-`` when none does) and says yes when more than half of those
    words are in the question."""
    if problem == "-":
        return False
    wanted = _content(problem.replace("-", " "))
    return bool(wanted) and len(wanted & _content(question)) * 2 > len(wanted)


def next_line(
    persona: CallerPersona, state: CallerState, agent_said: str, problem: str = "-"
) -> str | None:
    """What the caller says after the agent said ``agent_said``; None: the caller hangs up.
    ``problem``: the title (or file name) of the runbook that covers the caller's problem, or
    ``-`` (what they say yes to when the agent checks)."""
    if state.done or len(state.said) >= MAX_CALLER_TURNS:
        return None
    said = agent_said.lower()
    if not state.said:
        line = persona.opening  # the answer to the greeting's "how can I help you?"
    elif not said.strip():
        line = persona.after_steps  # the agent said nothing the caller could make out
    else:
        question = _last_question(said)
        if _ANYTHING_ELSE.search(question):
            line, state.done = persona.anything_else, True
        elif _SPELL.search(question):
            line = spelled(persona.name)
        elif _DID_IT_WORK.search(question):
            line = _step_line(persona, state)
        elif _NAME.search(question):
            line = f"It's {persona.name}."
        elif _NUMBER.search(question) and not _TICKET_NUMBER.search(question):
            line = speakable_number(persona.callback)
        elif _TICKET_OFFER.search(question):
            line = persona.ticket_offer
        elif _RETELL.search(question):
            line = persona.opening  # asked to tell the problem again: the caller repeats it
        elif _CONFIRM.search(question):
            yes = names_my_problem(question, problem)
            line = "Yes, that's right." if yes else f"No. {persona.opening}"
        elif _GOODBYE.search(said) and not question.endswith("?"):
            return None
        else:
            line = _step_line(persona, state)
    state.said.append(line)
    return line


def _step_line(persona: CallerPersona, state: CallerState) -> str:
    if state.step < len(persona.steps):
        state.step += 1
        return persona.steps[state.step - 1]
    return persona.after_steps


def caller_lines(persona: CallerPersona) -> list[tuple[str, str]]:
    """Everything this caller may say, each with what it answers: ``opening`` (the greeting),
    ``step`` (did that work?), ``ticket_offer``, ``anything_else``, ``name``, ``spelling``,
    ``number``, ``confirm`` (is this about ...?)."""
    lines = [
        ("opening", persona.opening),
        *(("step", step) for step in persona.steps),
        ("step", persona.after_steps),
        ("ticket_offer", persona.ticket_offer),
        ("anything_else", persona.anything_else),
        ("name", f"It's {persona.name}."),
        ("spelling", spelled(persona.name)),
        ("number", speakable_number(persona.callback)),
        ("confirm", "Yes, that's right."),
        ("confirm", f"No. {persona.opening}"),
    ]
    first: dict[str, str] = {}
    for kind, line in lines:  # each line once, where it first appears
        first.setdefault(line, kind)
    return [(kind, line) for line, kind in first.items()]


def every_line(persona: CallerPersona) -> list[str]:
    """Everything this caller may say (to synthesize before the call, not during it)."""
    return [line for _, line in caller_lines(persona)]
