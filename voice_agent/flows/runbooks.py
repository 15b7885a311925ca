"""The company's runbooks as the conversation uses them: does one cover this problem, and what
are its steps, one short spoken sentence each.

Search is hybrid (BM25 + dense, tens of milliseconds). The best article's cosine similarity decides
whether it may cover the problem: measured on the starter runbooks, off-topic speech scores at
most about 0.80-0.818 and real IT problems 0.81 to 0.91 (the dev scenario callers' openings). A
match is only a candidate: the conversation confirms one below
``voice_agent.flows.conversation.SURE_RUNBOOK`` with the caller before walking it, and a runbook the
caller rejected is not offered again.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from voice_agent.knowledge.retriever import ArticleHit, HybridRetriever
from voice_agent.knowledge.store import KnowledgeError

MIN_SIMILARITY = 0.81
MIN_FOLLOW_UP_SIMILARITY = 0.86
_STEP = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*])\s+")


class RunbooksUnavailable(Exception):
    """The runbooks cannot be searched (store down or empty)."""


@dataclass
class RunbookWalk:
    """The runbook a call is working through, and the step it is on."""

    hit: ArticleHit
    steps: list[str]
    similarity: float
    next_step: int = 0

    @property
    def exhausted(self) -> bool:
        return self.next_step >= len(self.steps)

    def citation(self) -> dict:
        return {
            "path": self.hit.article_path,
            "title": self.hit.title,
            "section": self.hit.best_chunk.section,
            "similarity": round(self.similarity, 3),
        }


class RunbookGuide:
    def __init__(
        self,
        retriever: HybridRetriever | None,
        *,
        top_k: int = 3,
        min_similarity: float = MIN_SIMILARITY,
        min_follow_up_similarity: float = MIN_FOLLOW_UP_SIMILARITY,
    ) -> None:
        self._retriever = retriever
        self._top_k = top_k
        self._min = min_similarity
        self._min_follow_up = min_follow_up_similarity

    async def find(
        self, said: str, *, follow_up: bool = False, exclude: frozenset[str] = frozenset()
    ) -> RunbookWalk | None:
        """The runbook that covers what the caller said, or None; raises RunbooksUnavailable.
        ``exclude``: article paths the caller already said are not their problem."""
        retriever = self._retriever
        if retriever is None:
            raise RunbooksUnavailable("no runbooks are configured or they could not be opened")
        try:
            if len(retriever.store) == 0:
                raise RunbooksUnavailable("the runbook index is empty")
            found = await asyncio.to_thread(retriever.search, said, self._top_k + len(exclude))
        except KnowledgeError as e:
            raise RunbooksUnavailable(str(e)) from e
        hits = [h for h in found if h.article_path not in exclude]
        best = hits[0] if hits else None
        score = (best.similarity or 0.0) if best else 0.0
        if best is None or score < (self._min_follow_up if follow_up else self._min):
            return None
        steps = await asyncio.to_thread(steps_of, retriever, best)
        return RunbookWalk(best, steps, score)


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
