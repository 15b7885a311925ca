"""What the caller's turn does in the conversation (its dialogue act), decided in two steps.

1. **Words** (``voice_agent.flows.caller_words``): the unambiguous forms - "yes", "no thanks", "open
   a ticket", "get me a person", "what's the status of my ticket" - in microseconds.
2. **A classifier** that generalises (``voice_agent.dialogue_acts``: sentence embeddings and
   words, trained on the examples in ``caller_acts.tsv``) for everything else: "I'm back in",
   "my phone's at home so I can't do that", Whisper's "Open up tickets for me please".

The act is context-free; the conversation reads it together with the question the agent just
asked (a "no" to "did that work?" is a failed step, to "anything else?" a goodbye).

    act = understand("Nope, still falling over.", classifier)   # Act("not_worked", 0.83, "model")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voice_agent.flows import caller_words as cw
from voice_agent.settings import REPO_ROOT

ACTS = (
    "worked",  # the step fixed it
    "not_worked",  # the step did not help, or the caller cannot do it
    "yes",  # agrees, accepts an offer, confirms
    "no",  # declines, denies
    "wants_ticket",  # asks for a ticket, a technician, an escalation
    "wants_human",  # asks for a person
    "goodbye",  # nothing else; ending the call
    "ticket_status",  # asks about an existing ticket
    "problem",  # describes a problem (or more of it)
    "repeat",  # asks the agent to say it again
    "unclear",  # nothing the conversation can act on (fillers, "hello?", a stray phrase)
)
EXAMPLES_FILE = REPO_ROOT / "flows" / "caller_acts.tsv"
MIN_CONFIDENCE = 0.3  # below this the classifier's best guess is not acted on
PROBLEM_WORDS = 7  # an unsure long turn is more likely a description than a stray phrase


class ActClassifier(Protocol):
    def predict(self, text: str) -> dict[str, float]: ...


@dataclass(frozen=True)
class Act:
    kind: str
    confidence: float
    source: str  # "words" | "model" | "none"


_PLAIN_YES = {"yes", "yeah", "yep", "yup", "sure", "correct", "yes please", "yeah please",
              "yes please do", "please do", "go ahead", "yes go ahead", "sure go ahead",
              "yes that's right", "that's right", "yes it is", "yeah sure"}  # fmt: skip
_PLAIN_NO = {"no", "nope", "nah", "no thanks", "no thank you", "no need", "not really",
             "no it isn't", "no it's not", "no that's not it"}  # fmt: skip


def by_words(text: str) -> str | None:
    """The act when the words leave no doubt, else None."""
    bare = " ".join(cw.words(text))
    if not bare:
        return "unclear"
    if bare in _PLAIN_YES:
        return "yes"
    if bare in _PLAIN_NO:
        return "no"
    if cw.wants_human(text):
        return "wants_human"
    if cw.wants_ticket(text):
        return "wants_ticket"
    if cw.asks_ticket_status(text):
        return "ticket_status"
    return None


def understand(text: str, classifier: ActClassifier | None) -> Act:
    """The act of one caller turn (its final transcript)."""
    kind = by_words(text)
    if kind is not None:
        return Act(kind, 1.0, "words")
    long = len(cw.words(text)) >= PROBLEM_WORDS
    if classifier is None:
        return Act("problem" if long else "unclear", 0.0, "none")
    probs = classifier.predict(text)
    best = max(probs, key=lambda act: probs[act])
    if probs[best] < MIN_CONFIDENCE:
        return Act("problem" if long else "unclear", probs[best], "model")
    return Act(best, probs[best], "model")
