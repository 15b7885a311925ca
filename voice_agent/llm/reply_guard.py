"""What the language model may say on a call, enforced in code, not only asked for in the prompt.

Measured on 10 caller problems, Qwen2.5-Coder-1.5B kept to two sentences in 2 of 10 replies,
read out numbered lists and menu paths, and told the caller to "contact the IT helpdesk" in 5 of
10 - on a call to the IT helpdesk. The prompt asks; this guard decides, sentence by sentence, as
the model streams:

* at most ``MAX_SENTENCES`` sentences are spoken (generation stops after them);
* list items, menu paths ("File > Options > Account") and markdown headings are dropped;
* a sentence that sends the caller elsewhere ("contact your IT department", "reach out to
  support") or asks them to open a ticket themselves is dropped: the agent *is* the helpdesk,
  and it offers tickets (``OFFER``) instead;
* a reply left with nothing to say becomes ``OFFER``.

    guard = ReplyGuard()
    spoken = guard.feed("Sure. 1. Open File > Options. Contact IT if")  # -> "Sure. "
    spoken += guard.close()

What the guard lets through is whole sentences, so the text-to-speech gets each at once
(:class:`GuardedSentences`) instead of cutting the text into sentences again: pipecat's sentence
aggregator holds a sentence until text after it arrives, and that text is the guard's next
sentence, a whole sentence of generation later (0.4-0.5 s on a 2-core CPU).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from pipecat.processors.aggregators.llm_text_processor import LLMTextProcessor
from pipecat.utils.text.base_text_aggregator import Aggregation, BaseTextAggregator, TextType

MAX_SENTENCES = 2
OFFER = "Would you like me to open a ticket so a technician follows up?"

_SENTENCE_END = re.compile(r"(?<![0-9][.)])(?<=[.!?])[\"')\]]*\s+|\n+")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022#]+)\s*")
_MENU_PATH = re.compile(r"\w[\w ]*\s*(?:>|->|\u2192|\u00bb)\s*\w")
_ELSEWHERE = re.compile(
    r"\b(?:contact|call|reach out to|get in touch with|e-?mail|ask|consult|speak (?:to|with)|"
    r"talk to|check with|visit|go to)\b[^.?!]{0,40}?\b(?:it|i\.t\.|help ?desk|service ?desk|"
    r"support(?: team)?|tech(?:nical)? support|administrator|admin|it department|it team|"
    r"system administrator|the vendor|microsoft)\b",
    re.IGNORECASE,
)
_SELF_TICKET = re.compile(
    r"\b(?:you (?:can|could|should|may|might|need to|will need to|have to)|please|try to|"
    r"i (?:suggest|recommend)(?: that)?(?: you)?)\b[^.?!]{0,30}?\b(?:open|create|submit|raise|"
    r"log|file|put in)\b[^.?!]{0,20}?\b(?:a |an |the )?(?:support )?(?:ticket|request|case|"
    r"incident)\b",
    re.IGNORECASE,
)
# the same as an order: "If that doesn't work, open a ticket for a technician."
_TICKET_ORDER = re.compile(
    r"(?:^|[,;:]\s*|\b(?:then|otherwise|just|simply)\s+)(?:please\s+)?(?:open|create|submit|"
    r"raise|log|file|put in)\b[^.?!]{0,20}?\b(?:a |an |the )?(?:support )?(?:ticket|request|"
    r"case|incident)\b",
    re.IGNORECASE,
)


def allowed(sentence: str) -> bool:
    """Whether one sentence of the model's reply may be spoken."""
    if not re.search(r"[A-Za-z]", sentence):
        return False
    if _LIST_ITEM.match(sentence) or _MENU_PATH.search(sentence) or sentence.endswith(":"):
        return False  # a list, a menu path, or the sentence that announces a list
    return not (
        _ELSEWHERE.search(sentence)
        or _SELF_TICKET.search(sentence)
        or _TICKET_ORDER.search(sentence)
    )


class ReplyGuard:
    """Streams a reply through the rules above; ``done`` once it has said enough."""

    def __init__(self, max_sentences: int = MAX_SENTENCES) -> None:
        self._max = max_sentences
        self._pending = ""
        self.spoken: list[str] = []
        self.dropped: list[str] = []

    @property
    def done(self) -> bool:
        return len(self.spoken) >= self._max

    def _take(self, sentence: str) -> str:
        sentence = " ".join(sentence.split())
        if not sentence or self.done:
            return ""
        if not allowed(sentence):
            self.dropped.append(sentence)
            return ""
        self.spoken.append(sentence)
        return sentence + " "

    def feed(self, piece: str) -> str:
        """The part of the reply that may be spoken now (whole sentences only)."""
        self._pending += piece
        out = ""
        while not self.done:
            match = _SENTENCE_END.search(self._pending)
            if match is None:
                break
            sentence, self._pending = self._pending[: match.start()], self._pending[match.end() :]
            out += self._take(sentence)
        return out

    def close(self) -> str:
        """What is left to say at the end of the reply. A last fragment without an ending (the
        model ran into its token limit mid-sentence) is not spoken unless it is all there is."""
        rest, self._pending = self._pending.strip(), ""
        out = ""
        if rest and (rest.endswith((".", "!", "?")) or not self.spoken):
            out = self._take(rest)
        if not self.spoken:
            self.spoken.append(OFFER)
            out += OFFER
        return out.rstrip()


class GuardedSentences(BaseTextAggregator):
    """The model's text after a :class:`ReplyGuard`: each piece is whole sentences, passed on
    to be spoken as it comes, with nothing held back to find where a sentence ends."""

    def __init__(self) -> None:
        super().__init__(aggregation_type=TextType.SENTENCE)

    @property
    def text(self) -> Aggregation:
        return Aggregation(text="", type=TextType.SENTENCE)  # nothing is ever held

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if text.strip():
            yield Aggregation(text=text.strip(" "), type=TextType.SENTENCE)

    async def flush(self) -> Aggregation | None:
        return None

    async def handle_interruption(self) -> None:
        return None

    async def reset(self) -> None:
        return None


def spoken_sentences() -> LLMTextProcessor:
    """The pipeline step between the model and the text-to-speech: the guarded reply's
    sentences handed on as they come (see :class:`GuardedSentences`)."""
    return LLMTextProcessor(text_aggregator=GuardedSentences())


async def guarded_chunks(stream):
    """An OpenAI-compatible chunk stream with its text passed through a :class:`ReplyGuard`;
    tool calls and usage pass unchanged."""
    guard = ReplyGuard()
    template = None  # a text chunk, to carry what is left to say at the end
    async for chunk in stream:
        choice = chunk.choices[0] if chunk.choices else None
        text = choice.delta.content if choice is not None and choice.delta else None
        if not text:
            yield chunk
            continue
        template = chunk
        spoken = "" if guard.done else guard.feed(text)
        if spoken:
            yield _with_text(chunk, spoken)
    if template is not None:
        rest = guard.close()
        if rest:
            yield _with_text(template, rest)


def _with_text(chunk, text: str):
    choice = chunk.choices[0]
    delta = choice.delta.model_copy(update={"content": text, "tool_calls": None})
    return chunk.model_copy(
        update={
            "choices": [choice.model_copy(update={"delta": delta, "finish_reason": None})],
            "usage": None,
        }
    )
