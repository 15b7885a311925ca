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
from voice_agent.flows.conversation import IrreversibleDecision
from voice_agent.flows.services import Reply
from voice_agent.speech.stt import HeardTurn


@dataclass
class TurnNote:
    """What the model is told on this turn only (read by the LLM service, after the caller's
    words, so the cached prompt prefix stays valid)."""

    text: str | None = None

    def __call__(self) -> str | None:
        return self.text


@dataclass
class Decided:
    """The last caller turn decided on: where its words start in the context, and the
    conversation as it was before (``checkpoint``), to take the decision back when the caller
    turns out to have gone on with that turn."""

    turn: int | None  # the call's turn index (``TurnRecorder``), None when unknown
    first_message: int  # index of the turn's first user message in the context
    checkpoint: Any  # None: none could be made, so the decision stands
    reversible: bool = True  # no ticket opened, no transfer or hang-up under way


class HelpdeskFlowProcessor(FrameProcessor):
    """Hands each finished caller turn to the conversation, and speaks or passes on its answer.

    A caller who goes on after the turn ended (a pause mid-sentence, before its answer could be
    heard: ``TurnRecorder`` keeps such speech in the same turn, ``turn_index`` says which) gets
    one answer to all they said: the decision on the first part is taken back (``rollback`` to
    the ``checkpoint`` made before it) unless it opened a ticket or began a transfer or a
    hang-up, and the parts become one user message in the context."""

    def __init__(
        self,
        decide: Callable[[str, float | None], Awaitable[Reply]],
        note: TurnNote,
        *,
        heard: Callable[[], HeardTurn] = HeardTurn,
        turn_index: Callable[[], int | None] = lambda: None,
        checkpoint: Callable[[], Any] = lambda: None,
        rollback: Callable[[Any], None] = lambda checkpoint: None,
        on_reply: Callable[[Reply], None] = lambda reply: None,
        on_say: Callable[[str], Awaitable[None]] | None = None,
        transfer: Callable[[], Coroutine[Any, Any, None]] | None = None,
        hang_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._decide = decide
        self._note = note
        self._heard = heard
        self._turn_index = turn_index
        self._checkpoint = checkpoint
        self._rollback = rollback
        self._on_reply = on_reply
        self._on_say = on_say
        self._transfer = transfer
        self._hang_up = hang_up
        self._handled_user_turns = 0
        self._decided: Decided | None = None
        self._transfer_task: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not (isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM):
            await self.push_frame(frame, direction)
            return
        messages = frame.context.get_messages()
        users = [i for i, m in enumerate(messages) if _role(m) == "user"]
        if len(users) in (0, self._handled_user_turns):  # no new caller turn: nothing to decide
            await self.push_frame(frame, direction)
            return
        turn = self._turn_index()
        decided = self._decided
        if (
            (
                decided is not None
                and turn is not None
                and decided.turn == turn
                and decided.reversible
                # a function the model called on the first part (a ticket, a transfer) stands
                and not any(_role(m) == "tool" for m in messages[decided.first_message :])
            )
            and self._took_back(decided)
        ):
            first = decided.first_message  # the caller went on: decide again on all of it
        else:
            # normally one new message; more when a turn's words were never decided on (its
            # context frame was dropped when the caller went on)
            first = (users[self._handled_user_turns :] or users[-1:])[0]
        if first != users[-1]:
            messages = _one_user_message(messages, first)
            frame.context.set_messages(messages)
        users = [i for i, m in enumerate(messages) if _role(m) == "user"]
        self._handled_user_turns = len(users)
        self._decided = now = Decided(turn, users[-1], None, reversible=False)
        said = last_user_text(messages)
        heard = self._heard()
        try:
            now.checkpoint = self._checkpoint()
            # a decision cut off before it finished (the caller went on, and the interruption
            # cancels this processor's work) answered nothing: it can be taken back
            now.reversible = now.checkpoint is not None
            reply = await self._decide(said, heard.logprob)
        except Exception as e:  # the caller hears something, never dead air
            logger.exception(f"conversation failed on {said!r}")
            reply = Reply(say=prompts.TROUBLE, error=f"{ErrorCode.FLOW_FAILED}:{type(e).__name__}")
        now.reversible = now.checkpoint is not None and not (
            reply.ticket or reply.transfer or reply.end_call
        )
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

    def _took_back(self, decided: Decided) -> bool:
        """Back to before ``decided``; False (the new words are decided alone) when it fails."""
        try:
            self._rollback(decided.checkpoint)
        except IrreversibleDecision as e:  # (a decision cut off after it opened a ticket)
            logger.info(f"the last decision stands: {e}")
            return False
        except Exception:
            logger.exception("the last decision could not be taken back")
            return False
        logger.info("the caller went on with their turn: one answer to all of it")
        return True


def _role(message: object) -> str | None:
    return message.get("role") if isinstance(message, dict) else None


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _one_user_message(messages: list, first: int) -> list:
    """The context with the caller's messages from ``first`` on joined into one, last, and the
    agent's replies between them (cut off before the caller could hear them) left out; the
    flow's own messages (a node's task) stay."""
    said = [_text(m) for m in messages[first:] if _role(m) == "user"]
    kept = [m for m in messages[first:] if _role(m) not in ("user", "assistant", "tool")]
    joined = {"role": "user", "content": " ".join(t.strip() for t in said if t.strip())}
    return [*messages[:first], *kept, joined]


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if _role(message) == "user":
            return _text(message)
    return ""
