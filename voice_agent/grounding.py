"""Grounding each answer in the company's runbooks, per turn, before the language model runs.

For every caller turn the runbooks are searched (hybrid BM25 + dense, tens of milliseconds) with
what the caller just said, and the best article's similarity decides whether it really covers the
problem. A covered problem is walked through one step at a time: the agent says the runbook's next
step (runbook steps are written as one short spoken sentence each) and asks whether it worked;
"no, still nothing" moves to the next step, "yes, that worked" closes it, and when every step has
failed a ticket is offered. Those turns need no language model at all, so they are fast and say
exactly what the runbook says. When no runbook covers the problem, the model answers with a short
note (after the caller's words, so its cached prefix stays valid) telling it to say so and offer a
ticket. When the runbooks cannot be searched (store down, empty), the caller hears that the agent
can't look that up right now. The runbook used is recorded with the turn (citations).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from flows import prompts
from voice_agent.knowledge.retriever import ArticleHit, HybridRetriever
from voice_agent.knowledge.store import KnowledgeError

_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class TurnNote:
    """What the model is told about the runbooks on this turn (read by the LLM service)."""

    text: str | None = None

    def __call__(self) -> str | None:
        return self.text


_STEP = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*])\s+")
_YES = re.compile(
    r"\b(yes|yeah|yep|it works|it worked|that worked|that did it|fixed|solved|working now|"
    r"all good|thank you|thanks)\b"
)
_FOLLOW_UP = re.compile(
    r"\b(no|nope|yes|yeah|ok|okay|done|did|didn't|doesn't|don't|not|still|same|worked|work|"
    r"working|next|again|tried|nothing|fails?|failed|thanks?)\b"
)
FOLLOW_UP_MAX_WORDS = 14


def steps_of(retriever: HybridRetriever, hit: ArticleHit) -> list[str]:
    """The article's numbered steps (its "Steps" section), one sentence each."""
    chunks = sorted(
        (
            c
            for c in retriever.store.chunks()
            if c.root == hit.root and c.article_path == hit.article_path
        ),
        key=lambda c: c.ordinal,
    )
    sections = [c for c in chunks if "step" in c.section.lower().rsplit(">", 1)[-1]]
    text = "\n".join(c.text for c in sections) if sections else hit.best_chunk.text
    steps = [" ".join(s.split()) for s in _STEP.split(text) if s.strip()]
    return steps or [" ".join(text.split()[:40])]


def is_follow_up(said: str) -> bool:
    """A short answer about the step just given ("no, still nothing", "yes, that worked")."""
    words = _WORD.findall(said.lower())
    return len(words) <= FOLLOW_UP_MAX_WORDS and bool(_FOLLOW_UP.search(said.lower()))


@dataclass
class RunbookWalk:
    """The runbook a call is working through, and the step it is on."""

    hit: ArticleHit
    steps: list[str]
    next_step: int = 0


class RunbookGrounder(FrameProcessor):
    """Between the user turn and the LLM: searches the runbooks and sets the turn's note."""

    def __init__(
        self,
        retriever: HybridRetriever | None,
        note: TurnNote,
        *,
        on_grounded: Callable[[list[dict], str | None], None] = lambda citations, error: None,
        on_say: Callable[[str], None] = lambda text: None,
        open_ticket: Callable[[str], Awaitable[str | None]] | None = None,
        top_k: int = 3,
        min_similarity: float = 0.84,  # measured: off-topic speech <= 0.82, IT problems >= 0.84
        min_follow_up_similarity: float = 0.86,
    ) -> None:
        super().__init__()
        self._retriever = retriever
        self._note = note
        self._on_grounded = on_grounded
        self._on_say = on_say
        self._open_ticket = open_ticket
        self._top_k = top_k
        self._min_similarity = min_similarity
        self._min_follow_up = min_follow_up_similarity
        self.walk: RunbookWalk | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            spoken = await self._ground(frame)
            if spoken == prompts.LOOKUP_DOWN and self._open_ticket is not None:
                # nothing to look things up with: leave a ticket so nobody is left waiting
                said = last_user_text(frame.context.get_messages())
                number = await self._open_ticket(said)
                if number:
                    spoken = prompts.lookup_down_with_ticket(number)
            if spoken is not None:
                # the runbook (or its absence) decides the words: no need for the model
                self._on_say(spoken)
                await self.push_frame(TTSSpeakFrame(spoken))
                return
        await self.push_frame(frame, direction)

    async def _ground(self, frame: LLMContextFrame) -> str | None:
        """Decide this turn: words to speak directly, or None to let the model answer (with
        the turn's note set)."""
        said = last_user_text(frame.context.get_messages())
        self._note.text = None
        if not said:
            return None
        if self._retriever is None:
            self._record("lookup_unavailable", [])
            return prompts.LOOKUP_DOWN
        try:
            if len(self._retriever.store) == 0:
                self._record("lookup_unavailable", [])
                return prompts.LOOKUP_DOWN
            hits = await asyncio.to_thread(self._retriever.search, said, self._top_k)
            best = hits[0] if hits else None
            score = (best.similarity or 0.0) if best else 0.0
        except KnowledgeError as e:
            logger.warning(f"runbook search failed: {e}")
            self._record("lookup_unavailable", [])
            return prompts.LOOKUP_DOWN
        walk = self.walk
        follow_up = walk is not None and is_follow_up(said)
        if best is not None and score >= (
            self._min_follow_up if follow_up else self._min_similarity
        ):
            if walk is None or walk.hit.article_path != best.article_path:
                steps = await asyncio.to_thread(steps_of, self._retriever, best)
                self.walk = walk = RunbookWalk(best, steps)
                follow_up = False
        elif not follow_up:
            self.walk = walk = None
        if walk is None:
            self._note.text = prompts.NO_RUNBOOK_NOTE  # the model says so and offers a ticket
            self._record(None, [], 0.0)
            return None
        self._record(None, [walk.hit], score)
        if follow_up and _YES.search(said.lower()):
            self.walk = None
            return prompts.STEP_WORKED
        if walk.next_step < len(walk.steps):
            step = walk.steps[walk.next_step]
            walk.next_step += 1
            return prompts.say_step(step, walk.next_step, len(walk.steps))
        self.walk = None
        return prompts.STEPS_EXHAUSTED

    def _record(self, error: str | None, hits: list[ArticleHit], similarity: float = 0.0) -> None:
        citations = [
            {
                "path": h.article_path,
                "title": h.title,
                "section": h.best_chunk.section,
                "similarity": round(similarity, 3),
            }
            for h in hits
        ]
        self._on_grounded(citations, error)


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
