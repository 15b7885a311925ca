"""Answers of a known form (a ticket number, a spelling) decoded under a grammar.

The grammar checks are pure; the decodes run the real whisper-base on espeak-ng voices through
an 8 kHz phone line, as the scenario bench's callers speak.
"""

from __future__ import annotations

import pytest

from flows import prompts
from flows.caller_words import spelled_words
from telephony.caller_voice import CallerVoice
from tests.conftest import TELEPHONY
from voice_agent.answer_grammar import (
    GRAMMARS,
    AnswerGrammars,
    Expected,
    shaped_prompt,
    sure_enough,
    surer,
)
from voice_agent.bench.stt import as_heard
from voice_agent.tickets.numbers import parse_ticket_number

TICKET = GRAMMARS[Expected.TICKET_NUMBER]
SPELLING = GRAMMARS[Expected.SPELLING]


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


@pytest.mark.parametrize(
    "text, fits",
    [
        ("Tyler, T-Y-L-E-R. Rook, D-R-O-O-K-F.", True),
        ("Paul, B.L. Young, Why O.N.P.", True),
        ("I, I, I, I, I, I, I, I,", False),  # a loop on the caller's first name
        ("Can You Just Use My Email", False),  # words, not letters
    ],
)
def test_a_spelling_reading_must_have_letters(text, fits):
    assert SPELLING.fits(text) is fits


def test_the_grammars_keep_only_the_tokens_of_their_form():
    vocabulary = [" the", " 4", "17", " I", "N", "C", ",", " time", " Ruiz", "iz", " R", "..."]
    grammars = AnswerGrammars(lambda i: vocabulary[i], len(vocabulary))
    kept = lambda expected: [  # noqa: E731
        t for i, t in enumerate(vocabulary) if i not in grammars.suppressed(expected)
    ]
    assert kept(Expected.TICKET_NUMBER) == [" 4", ","]
    assert kept(Expected.SPELLING) == [" I", "N", "C", ",", " Ruiz", "iz", " R"]
    # faster-whisper extends the list it is given: each call hands out a fresh one
    grammars.suppressed(Expected.SPELLING).append(-5)
    assert -5 not in grammars.suppressed(Expected.SPELLING)
    assert shaped_prompt(prompts.ASK_TICKET_NUMBER, TICKET).endswith(TICKET.example)
    assert shaped_prompt(None, SPELLING) is None


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


@pytest.mark.parametrize(
    "expecting, question",
    [
        (Expected.TICKET_NUMBER, prompts.ASK_TICKET_NUMBER),
        (Expected.SPELLING, prompts.ASK_SPELLING),
    ],
)
def test_an_answer_of_another_form_is_heard_freely(small_engines, expecting, question):
    """A caller who answers something else is not forced into digits or letters."""
    audio = _phone("en-us", "Sorry, I don't have it with me.")
    heard = small_engines.stt.transcribe(audio, prompt=question, expecting=expecting)
    assert heard.shaped is None
    assert "have it with me" in heard.text


def test_a_real_callers_spelling_is_heard_under_its_grammar(small_engines):
    """A real caller on an 8 kHz line ("uh and my last name is t u r n v")."""
    from voice_agent.audio import decode_audio_file

    clip = decode_audio_file(TELEPHONY / "spokenwoz_SNG0480_user_turn13.wav", 8000).samples
    heard = small_engines.stt.transcribe(
        as_heard(clip, 8000, -60.0), prompt=prompts.ASK_SPELLING, expecting=Expected.SPELLING
    )
    assert heard.shaped is Expected.SPELLING
    assert spelled_words(heard.text)[0].startswith("turnv")
