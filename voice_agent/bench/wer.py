"""Word error rate as a phone transcript should be scored, strict and lenient.

Strict: lower case, punctuation dropped, hyphens split ("Wi-Fi" is "wi fi"). Lenient adds what
the silver phone references need: they keep fillers ("uh", "um") and write spelled words and
numbers one character at a time ("c h e r y l", "6 0"), while Whisper drops fillers and writes
"Cheryl" and "60" (or "555-0201" for "5 5 5, 0 2 0 1"). Lenient scoring drops fillers and joins
runs of single letters, and runs of numbers, on both sides, so neither way of writing the same
words counts as an error (on the 68 real phone turns this alone is worth about 5 WER points).

    score(["my vpn is down"], ["My VPN's down."])  # -> WerScore(strict=..., lenient=...)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

FILLERS = frozenset("uh um uhm umm ah er erm hmm hm mm mhm eh".split())
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def strict(text: str) -> str:
    text = text.lower().replace("-", " ").replace("’", "'")
    text = _NOT_WORD.sub(" ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def _join_runs(words: list[str]) -> list[str]:
    """ "c h e r y l" -> "cheryl", "6 0" -> "60", "555 0201" -> "5550201": a run of single
    letters, or of numbers, is one word."""
    out: list[str] = []
    run: list[str] = []

    def kind(w: str) -> str | None:
        if len(w) == 1 and w.isalpha():
            return "letter"
        if w.isdigit():
            return "digit"
        return None

    for w in [*words, ""]:
        k = kind(w) if w else None
        if run and k == kind(run[0]) and k is not None:
            run.append(w)
            continue
        if run:
            out.append("".join(run))
            run = []
        if k is not None:
            run = [w]
        elif w:
            out.append(w)
    return out


def lenient(text: str) -> str:
    words = [w for w in strict(text).split() if w not in FILLERS]
    return " ".join(_join_runs(words))


@dataclass(frozen=True)
class WerScore:
    strict: float
    lenient: float
    references: int
    reference_words: int

    def as_dict(self) -> dict:
        return {
            "strict": round(self.strict, 4),
            "lenient": round(self.lenient, 4),
            "references": self.references,
            "reference_words": self.reference_words,
        }


def _corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r]
    if not pairs:
        return 0.0
    refs = [r for r, _ in pairs]
    hyps = [h or "<nothing>" for _, h in pairs]  # an empty transcript: every word deleted
    return float(jiwer.wer(refs, hyps))


def score(references: Sequence[str], hypotheses: Sequence[str]) -> WerScore:
    """Corpus WER (errors over all reference words), strict and lenient."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} transcripts")
    s_refs = [strict(r) for r in references]
    return WerScore(
        strict=_corpus_wer(s_refs, [strict(h) for h in hypotheses]),
        lenient=_corpus_wer([lenient(r) for r in references], [lenient(h) for h in hypotheses]),
        references=sum(1 for r in s_refs if r),
        reference_words=sum(len(r.split()) for r in s_refs),
    )
