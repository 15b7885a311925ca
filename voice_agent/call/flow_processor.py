"""Where the conversation meets the pipeline: between the caller's finished turn and the model.

For every caller turn the user aggregator pushes the context downstream; this processor hands the
caller's words to the call's ``HelpdeskConversation`` (flows/), then either speaks its answer
directly (a runbook step, a ticket number, a goodbye: no language model, so fast and exactly what
the runbook says) or lets the model answer with the turn's one-line note. Transfers and hang-ups
are carried out after the words that announce them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice_agent.errors import ErrorCode
from voice_agent.flows import prompts
from voice_agent.flows.services import Reply
from voice_agent.speech.stt import HeardTurn


@dataclass
class TurnNote:
    """What the model is told on this turn only (read by the LLM service, after the caller's
    words, so the cached prompt prefix stays valid)."""

    text: str | None = None

    def __call__(self) -> str | None:
        return self.text


class HelpdeskFlowProcessor(FrameProcessor):
    def __init__(
        self,
        decide: Callable[[str, float | None], Awaitable[Reply]],
        note: TurnNote,
        *,
        heard: Callable[[], HeardTurn] = HeardTurn,
        on_reply: Callable[[Reply], None] = lambda reply: None,
        on_say: Callable[[str], Awaitable[None]] | None = None,
        transfer: Callable[[], Coroutine[Any, Any, None]] | None = None,
        hang_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._decide = decide
        self._note = note
        self._heard = heard
        self._on_reply = on_reply
        self._on_say = on_say
        self._transfer = transfer
        self._hang_up = hang_up
        self._handled_user_turns = 0
        self._transfer_task: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not (isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM):
            await self.push_frame(frame, direction)
            return
        messages = frame.context.get_messages()
        user_turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
        if user_turns == self._handled_user_turns:  # not a new caller turn: nothing to decide
            await self.push_frame(frame, direction)
            return
        self._handled_user_turns = user_turns
        said = last_user_text(messages)
        heard = self._heard()
        try:
            reply = await self._decide(said, heard.logprob)
        except Exception as e:  # the caller hears something, never dead air
            logger.exception(f"conversation failed on {said!r}")
            reply = Reply(say=prompts.TROUBLE, error=f"{ErrorCode.FLOW_FAILED}:{type(e).__name__}")
        self._note.text = reply.note
        if heard.logprob is not None:
            reply.understood["heard_logprob"] = heard.logprob
        if heard.shaped is not None:  # decoded under the grammar of the answer asked for
            reply.understood["heard_as"] = heard.shaped.value
        self._on_reply(reply)
        if reply.say is None:
            await self.push_frame(frame, direction)  # the model answers
            return
        if self._on_say is not None:
            await self._on_say(reply.say)
        await self.push_frame(TTSSpeakFrame(reply.say))
        if reply.transfer and self._transfer is not None:
            # after the announcement is queued; kept referenced so it is not collected mid-way
            self._transfer_task = asyncio.get_running_loop().create_task(self._transfer())
        if reply.end_call and self._hang_up is not None:
            await self._hang_up()


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
