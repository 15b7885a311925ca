"""Answers of a known form (a ticket number) decoded under a grammar.

The grammar checks are pure; the decodes run the real whisper-base on espeak-ng voices through
an 8 kHz phone line, as the scenario bench's callers speak.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voice_agent.bench.stt import as_heard
from voice_agent.flows import prompts
from voice_agent.speech.answer_grammar import (
    GRAMMARS,
    AnswerGrammars,
    Expected,
    shaped_prompt,
    sure_enough,
    surer,
)
from voice_agent.telephony.caller_voice import CallerVoice
from voice_agent.tickets.numbers import parse_ticket_number

TICKET = GRAMMARS[Expected.TICKET_NUMBER]


@pytest.mark.parametrize(
    "text, fits",
    [  # what Whisper wrote under the ticket-number grammar for espeak-ng callers
        ("I N C 2 1 6 7 0 1 4", True),
        ("I N C, 0 0 0 5 1 2 8 3.", True),  # zero-padded numbers have runs of zeros
        ("I N C 0 0 0 0 0 0 1", True),
        ("I N C, 0 0 0 0 0 0 0 0 0 1.", True),  # zeros miscounted: the padding absorbs them
        ("3 0", False),  # "No." forced into digits
        ("5. 5. 5. 5. 5. 5. 5. 5. 5. 5.", False),  # a decoding loop
        ("5, 5, 5, 5, 5, 5, 5", False),
        ("3 0, 5, 5, 5, 5, 5, 5, 5, 5, 5", False),
        ("I N C 2 0 4 7 1 9 5", False),  # the example written back
    ],
)
def test_a_ticket_number_reading_must_have_the_form(text, fits):
    assert TICKET.fits(text) is fits


def test_the_grammars_keep_only_the_tokens_of_their_form():
    vocabulary = [" the", " 4", "17", " I", "N", "C", ",", " time", "5", " R", "..."]
    grammars = AnswerGrammars(lambda i: vocabulary[i], len(vocabulary))
    kept = lambda expected: [  # noqa: E731
        t for i, t in enumerate(vocabulary) if i not in grammars.suppressed(expected)
    ]
    assert kept(Expected.TICKET_NUMBER) == [" 4", ",", "5"]
    # faster-whisper extends the list it is given: each call hands out a fresh one
    grammars.suppressed(Expected.TICKET_NUMBER).append(-5)
    assert -5 not in grammars.suppressed(Expected.TICKET_NUMBER)
    assert shaped_prompt(prompts.ASK_TICKET_NUMBER, TICKET).endswith(TICKET.example)
    assert shaped_prompt(None, TICKET) == TICKET.example


def test_a_shaped_reading_is_kept_when_sure_or_clearly_surer():
    assert sure_enough(-0.2) and not sure_enough(-0.7) and not sure_enough(None)
    assert surer(-0.6, -0.8) and not surer(-0.6, -0.65) and surer(-0.6, None)
    assert not surer(None, -2.0)


def _phone(voice: str, line: str):
    return as_heard(CallerVoice(voice).say(line), 8000, -60.0)


def test_a_ticket_number_is_heard_under_its_grammar(small_engines):
    stt = small_engines.stt
    audio = _phone("en-us+m3", "I N C, 2 1 6 7 0 1 4.")
    heard = stt.transcribe(
        audio, prompt=prompts.ASK_TICKET_NUMBER, expecting=Expected.TICKET_NUMBER
    )
    assert heard.shaped is Expected.TICKET_NUMBER
    assert parse_ticket_number(heard.text, expecting=True) == "INC2167014"
    # the grammar reading was surer than the free one
    free = stt.transcribe(audio, prompt=prompts.ASK_TICKET_NUMBER)
    assert free.shaped is None and heard.avg_logprob > free.avg_logprob


def test_an_answer_of_another_form_is_heard_freely(small_engines):
    """A caller who answers something else is not forced into digits."""
    audio = _phone("en-us", "Sorry, I don't have it with me.")
    heard = small_engines.stt.transcribe(
        audio, prompt=prompts.ASK_TICKET_NUMBER, expecting=Expected.TICKET_NUMBER
    )
    assert heard.shaped is None
    assert "have it with me" in heard.text


def test_the_stt_bench_reads_ticket_numbers_and_compares_the_grammar_on_and_off(small_engines):
    """``voice-agent bench stt --set tickets --variant answers=off``: the same audio decoded
    with and without the grammar."""
    from voice_agent.bench.stt import BenchError, decode_all, load_set, parse_variant

    scenarios = Path(__file__).parent / "data" / "scenarios.jsonl"
    tickets = load_set("tickets", scenarios=scenarios)
    assert len(tickets) == 2 * len(scenarios.read_text().splitlines())
    assert [u.reference for u in tickets] == [
        u.reference for u in load_set("tickets", scenarios=scenarios)
    ]  # a fixed seed: the same numbers every run
    first = tickets[0]
    assert re.fullmatch(r"I N C, (\d ){6}\d\.", first.reference)
    assert first.expecting is Expected.TICKET_NUMBER
    assert first.answers == prompts.ASK_TICKET_NUMBER
    assert parse_variant("answers=off beam=1") == {"answers": "off", "beam": 1}
    with pytest.raises(BenchError, match="answers is on or off"):
        parse_variant("answers=maybe")
    on, off = (
        decode_all(small_engines.stt, tickets[:2], context=True, noise_floor_dbfs=-60.0, answers=a)
        for a in (True, False)
    )
    assert {row["shaped"] for row in off} == {None}
    assert "ticket_number" in {row["shaped"] for row in on}
