"""The shape of the answer the agent has just asked for, as a grammar for Whisper's decoder.

After "What's the ticket number? It starts with I N C." the caller's answer has a known form: the
prefix and seven digits. Telephone IVRs recognise such answers with a digits grammar; Whisper has
none, and over an 8 kHz line it writes what English text makes likely instead ("I N C, 3D time,
446 time" for "I N C 3 8 5 4 4 6 5"). Its decoder can still be kept to the tokens a form may use:
every other token of the vocabulary is suppressed (faster-whisper's ``suppress_tokens``), a short
example of the form follows the agent's question in the prompt, and a fixed start is forced. A
ticket-number answer is therefore written as "I N C" and the digits heard, whether or not the
caller said the prefix (the agent asked for a number that starts with it), and nothing else the
caller said around it is kept.

A caller may answer something else ("I don't have it with me"): a shaped transcript is kept only
when it has the form (enough digits, no loop, not the example written back) and Whisper was sure
of it; otherwise the answer is decoded freely as well and the shaped reading is kept only when
Whisper was clearly surer of it than of the free one. Measured on espeak-ng callers through an
8 kHz line (``voice-agent bench stt --set tickets --variant answers=off --variant ""``): see the
README's figures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Expected(StrEnum):
    """What the agent's last question asks the caller for."""

    SPEECH = "speech"  # anything: no grammar
    TICKET_NUMBER = "ticket_number"  # "I N C 0 0 1 2 3 4 5"


# Kept without a second, free decode when Whisper's mean token log-probability is at least this:
# ticket numbers read by espeak-ng voices decoded at -0.13 to -0.39 under their grammar; other
# answers forced into the grammar that still had its form came out below -0.5.
SURE_LOGPROB = -0.5
# Otherwise kept only when this much surer than the free reading of the same audio.
SURER_BY = 0.1


@dataclass(frozen=True)
class Grammar:
    """The tokens an answer of one form may use, and how to tell a transcript has that form."""

    allowed: re.Pattern[str]  # a vocabulary token (as decoded, with its leading space) it may use
    example: str  # read after the agent's question: Whisper writes the answer the same way
    prefix: str  # the answer's fixed start, forced: the grammar then covers only what follows
    min_items: int  # at least this many items (digits)
    item: re.Pattern[str]
    max_run: int  # more of one word in a row than this, to the end, is a decoding loop

    def suppressed(self, token_texts: list[str]) -> list[int]:
        """Every text token of the vocabulary this form may not use."""
        return [i for i, text in enumerate(token_texts) if not self.allowed.fullmatch(text)]

    def fits(self, text: str) -> bool:
        """Whether a transcript decoded under this grammar has the form: enough items, not a
        loop, and not the example written back."""
        items = self.item.findall(text)
        if len(items) < self.min_items:
            return False
        # a decoding loop repeats one word to the end ("5. 5. 5. 5. ..."); a long run that
        # ends is a miscount Whisper makes of read-out zeros ("0 0 0 0 0 0 0 0 0 1"), which
        # the ticket number's padding absorbs
        words = [w.lower() for w in re.split(r"[\s,.-]+", text) if w]
        tail = words[-(self.max_run + 1) :]
        if len(tail) > self.max_run and len(set(tail)) == 1:
            return False
        if self.example:
            example_items = self.item.findall(self.example)
            if items[: len(example_items)] == example_items:
                return False
        return True


GRAMMARS: dict[Expected, Grammar] = {
    Expected.TICKET_NUMBER: Grammar(
        # after the forced "I N C": single digits, commas and full stops. With the letters
        # allowed anywhere, espeak-ng's "five" and "nine" came out as "I" and "N"; with digit
        # runs allowed, "7 7" came out as "77" and was lost.
        allowed=re.compile(r" ?[0-9]|,|\.| ,"),
        example="I N C 2 0 4 7 1 9 5.",
        prefix="I N C",
        min_items=4,
        item=re.compile(r"[0-9]"),
        max_run=6,  # INC0000001 has six zeros in a row
    ),
}


class AnswerGrammars:
    """The suppressed-token lists of every grammar for one Whisper vocabulary, built once."""

    def __init__(self, decode_token: Callable[[int], str], text_tokens: int) -> None:
        texts = [decode_token(i) for i in range(text_tokens)]
        self._suppressed = {expected: g.suppressed(texts) for expected, g in GRAMMARS.items()}

    def suppressed(self, expected: Expected) -> list[int]:
        """A fresh list (faster-whisper extends the list it is given)."""
        return list(self._suppressed[expected])


def sure_enough(shaped_logprob: float | None) -> bool:
    """A shaped reading Whisper was sure of is kept without a free decode."""
    return shaped_logprob is not None and shaped_logprob >= SURE_LOGPROB


def surer(shaped_logprob: float | None, free_logprob: float | None) -> bool:
    """Whether a shaped reading is clearly surer than the free reading of the same audio."""
    if shaped_logprob is None:
        return False
    return free_logprob is None or shaped_logprob >= free_logprob + SURER_BY


def shaped_prompt(prompt: str | None, grammar: Grammar) -> str | None:
    """The agent's question, then an example answer of the form when the grammar has one."""
    return " ".join(p for p in (prompt, grammar.example) if p) or None


# A spelling grammar (single capitals and the name words they spell) was tried and dropped: on the
# 20 dev callers' spelled names it lowered WER from 70 % to 59 % offline, but no name came out
# right either way (espeak-ng's letters over a phone line: "G" heard as "D", "S" as "F"), and on
# calls the second, free decode it often needed made the answer after a spelling 1.1 s slower
# (p50 2.88 s against 1.76 s, `voice-agent bench scenarios`, 2026-12-02).
