"""The scenario bench's parts: the scripted caller's answers, the espeak-ng phone voice, WER
scoring and the grading of a stored call. (The bench end to end runs in CI after the tests:
`voice-agent bench scenarios --file tests/data/scenarios.jsonl --limit 2`.)"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import REPO
from voice_agent.bench.scenarios import caller_phone, first_runbook, grade, seed_tickets, summarize
from voice_agent.bench.wer import lenient, score, strict
from voice_agent.telephony.scripted_caller import (
    CallerState,
    ScenarioError,
    load_scenarios,
    names_my_problem,
    next_line,
    speakable_number,
    spelled,
)

SCENARIOS = REPO / "tests" / "data" / "scenarios.jsonl"
VPN = (
    '{"id": "v1", "voice": "en-us+f3", "expect": {"category": "network", "priority": "P2", '
    '"runbook": "vpn-cannot-connect", "outcome": "resolved"}, "caller": {"name": "Angela Ruiz", '
    '"callback": "555 0201", "opening": "Hey, Angela Ruiz here. The VPN keeps failing.", '
    '"steps": ["Okay, it connects now."], "after_steps": "It is connected.", '
    '"ticket_offer": "No, it is working.", "anything_else": "No, thanks."}}'
)


@pytest.fixture
def vpn(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(VPN + "\n")
    return load_scenarios(path)[0]


def test_the_caller_answers_what_the_agent_just_asked(vpn):
    caller, state = vpn.caller, CallerState()
    line = next_line
    assert line(caller, state, "Hi, who am I speaking with?", vpn.expect.runbook) == caller.opening
    assert line(caller, state, "Is this about: VPN won't connect?", "vpn-cannot-connect") == (
        "Yes, that's right."
    )
    step = "Let's start with this: quit the VPN app. Did that work?"
    assert line(caller, state, step) == "Okay, it connects now."
    assert line(caller, state, "Next, try this: restart. Did that work?") == "It is connected."
    assert line(caller, state, "May I have your name first?") == "It's Angela Ruiz."
    assert line(caller, state, "Could you spell your name for me?") == spelled("Angela Ruiz")
    assert line(caller, state, "What's the best number to reach you?") == "5 5 5, 0 2 0 1."
    assert line(caller, state, "What's the ticket number?") == "It is connected."
    offer = "I can have a technician look at it. Would you like me to open a ticket?"
    assert line(caller, state, offer) == "No, it is working."
    assert line(caller, state, "Great. Is there anything else I can help you with?") == (
        "No, thanks."
    )
    assert line(caller, state, "Thanks for calling. Goodbye!") is None  # the caller hangs up


def test_a_wrong_guess_is_denied_and_the_problem_told_again(vpn):
    state = CallerState(said=["opening"])
    wrong = "Sorry, the line is a bit unclear. Is this about: Office Wi-Fi won't connect?"
    assert next_line(vpn.caller, state, wrong, "vpn-cannot-connect") == f"No. {vpn.caller.opening}"
    assert not names_my_problem("Is this about: VPN won't connect?", "-")
    assert names_my_problem("Is this about: VPN won't connect?", "vpn-cannot-connect")


def test_spoken_forms():
    assert spelled("Angela Ruiz") == "Angela, A N G E L A. Ruiz, R U I Z."
    assert speakable_number("555 0201") == "5 5 5, 0 2 0 1."
    assert caller_phone(SimpleNamespace(caller=SimpleNamespace(callback="555 0201"))) == (
        "+15555550201"
    )


def test_bad_scenario_files_name_the_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(VPN + "\n" + VPN.replace('"outcome": "resolved"', '"outcome": "fixed"') + "\n")
    with pytest.raises(ScenarioError, match=r"bad.jsonl:2: outcome must be one of"):
        load_scenarios(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ScenarioError, match=r"bad.jsonl:1: not JSON"):
        load_scenarios(bad)
    with pytest.raises(ScenarioError, match="no scenario with id zz"):
        load_scenarios(SCENARIOS, ["zz"])
    assert len(load_scenarios(SCENARIOS)) >= 10


def test_lenient_wer_joins_spelled_letters_and_numbers_and_drops_fillers():
    assert lenient("uh the first name is c h e r y l") == "the first name is cheryl"
    assert lenient("5 5 5, 0 2 0 1.") == lenient("555-0201") == "5550201"
    assert strict("Wi-Fi won't connect!") == "wi fi won't connect"
    result = score(["my name is c h e r y l uh"], ["My name is Cheryl."])
    assert result.lenient == 0.0 < result.strict
    assert score(["it works"], [""]).strict == 1.0  # nothing heard: every word missed


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_the_caller_voice_is_espeak_through_a_phone_line():
    from voice_agent.telephony.caller_voice import CallerVoice, CallerVoiceError

    samples = CallerVoice("en-gb-scotland").say("My work phone was stolen from my bag.")
    assert samples.dtype == np.int16 and 1.5 < len(samples) / 8000 < 6
    from scipy import signal  # 1.4 s to import: only this test needs it

    freqs, power = signal.welch(samples.astype(float), fs=8000, nperseg=512)
    in_band = power[(freqs > 300) & (freqs < 3400)].sum()
    below = power[freqs < 150].sum()
    assert below < 0.01 * in_band  # the telephone band: nothing much under 300 Hz
    with pytest.raises(CallerVoiceError, match="not an espeak-ng voice"):
        CallerVoice("--help")
    with pytest.raises(CallerVoiceError, match="could not speak"):
        CallerVoice("xx-nosuchvoice").say("hello")


def _dialled(turns):
    return SimpleNamespace(
        call_sid="CA1",
        error=None,
        closed_by="client",
        greeting=SimpleNamespace(timed_out=False),
        turns=[
            SimpleNamespace(
                index=i,
                source=said,
                started_at=10.0 * i,
                first_bot_media_at=10.0 * i + 5 if answered else None,
                timed_out=not answered,
                voice_to_voice_secs=0.5 if answered else None,
                voice_to_answer_secs=1.5 if answered else None,
            )
            for i, (said, answered) in enumerate(turns, start=1)
        ],
    )


def test_a_stored_call_is_graded_against_the_scenario(vpn):
    dialled = _dialled([(vpn.caller.opening, True), ("Okay, it connects now.", True)])
    citation = {"path": "vpn-cannot-connect.md", "title": "VPN won't connect"}
    call = {
        "category": "network",
        "priority": "P2",
        "outcome": "resolved",
        "caller_name": "angela ruiz",
        "status": "completed",
        "turns": [
            {"kind": "greeting", "stages": {"first_audio_out": 1.0}, "bot_text": "Hi."},
            {
                "kind": "reply",
                "stages": {"speech_start": 10.5},
                "user_text": "Hey, Angela Ruiz here. The VPN keeps failing.",
                "bot_text": "Okay. Let's start.",
                "citations": [citation],
            },  # fmt: skip
            {
                "kind": "reply",
                "stages": {"speech_start": 20.5},
                "user_text": "Okay, it connects now.",
                "bot_text": "Great.",
            },  # fmt: skip
        ],
    }
    result = grade(vpn, dialled, call, ["", "Okay. Let's start."], redact=lambda t: t)
    assert result.grades == dict.fromkeys(result.grades, True) and result.fully_right
    assert first_runbook(call) == "vpn-cannot-connect"
    assert result.turns[0]["transcript"].startswith("Hey, Angela Ruiz")

    call["outcome"], call["caller_name"] = "ticket", "Angela Reese"
    dialled = _dialled([(vpn.caller.opening, True), ("Okay, it connects now.", False)])
    result = grade(vpn, dialled, call, [], redact=lambda t: t)
    assert not result.grades["outcome"] and not result.grades["name"]
    assert not result.grades["answered"] and not result.fully_right
    assert any("no spoken reply" in e for e in result.errors)

    summary = summarize([result])
    assert summary["runs"][1]["calls"] == 1 and summary["wer"]["strict"] == 0.0
    assert summary["first_audio"]["n"] == 1


def test_a_ticket_the_callers_ask_about_exists_before_the_calls(store, tmp_path):
    scenario = VPN.replace("It is connected.", "It's INC0000002.")
    path = tmp_path / "s.jsonl"
    path.write_text(scenario + "\n")
    assert seed_tickets(store, load_scenarios(path)) == []
    from voice_agent.tickets.records import TicketRecords

    seeded = TicketRecords(store).find("INC0000002")
    assert seeded is not None and seeded.caller_name == "Angela Ruiz"
    assert seeded.caller == "+15555550201"
    assert json.loads(json.dumps(seeded.to_dict()))["number"] == "INC0000002"
