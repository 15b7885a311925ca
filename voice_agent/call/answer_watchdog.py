"""No dead air: a caller left waiting for an answer hears the agent say so.

Each stage of a turn can stall: Whisper on an oversubscribed CPU, a runbook search, the language
model or its server. Measured on an overloaded 2-core machine before this existed, callers heard
"Alright." and then nothing for 25 s and more. The watchdog counts from the end of the caller's
speech while no answer plays: at ``hold_secs`` it says a holding phrase once ("Sorry, this is
taking me a moment..."), at ``give_up_secs`` it interrupts whatever is still working on the
answer and says the trouble phrase, and the call goes on.

It sits after the language model in the pipeline, so its phrases reach the text-to-speech even
while the model (or the conversation before it) is stuck on a turn: a frame queued at the
pipeline's start would wait behind the stalled stage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    InterruptionWorkerFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from voice_agent.call.periodic_check import PeriodicCheck

# (turn index, seconds the caller has waited since they stopped speaking); None: not waiting
Waiting = Callable[[], tuple[int, float] | None]


class AnswerWatchdog(PeriodicCheck):
    """Passes every frame on. Every ``check_every_secs`` asks ``waiting()`` how long the caller
    has waited for this turn's answer, and acts once per turn at each deadline:

    * ``hold_secs``: ``on_hold(hold_text)`` (the call records it), then speaks ``hold_text``;
    * ``give_up_secs``: interrupts the pipeline, and once the interruption has passed here,
      ``await on_give_up(give_up_text)`` and speaks ``give_up_text``.
    """

    def __init__(
        self,
        waiting: Waiting,
        *,
        hold_secs: float,
        give_up_secs: float,
        hold_text: str,
        give_up_text: str,
        on_hold: Callable[[str], None],
        on_give_up: Callable[[str], Awaitable[None]],
        check_every_secs: float = 0.25,
    ) -> None:
        super().__init__(check_every_secs)
        self._waiting = waiting
        self._hold_secs = hold_secs
        self._give_up_secs = give_up_secs
        self._hold_text = hold_text
        self._give_up_text = give_up_text
        self._on_hold = on_hold
        self._on_give_up = on_give_up
        self._held: int | None = None  # the last turn each deadline acted on
        self._given_up: int | None = None
        self._give_up_after_interruption = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)  # (passed on)
        if isinstance(frame, InterruptionFrame) and self._give_up_after_interruption:
            # everything before this point has dropped the stalled answer: now the phrase
            self._give_up_after_interruption = False
            await self._on_give_up(self._give_up_text)
            await self.push_frame(TTSSpeakFrame(self._give_up_text, append_to_context=False))

    async def check(self) -> None:
        waited = self._waiting()
        if waited is None:
            return
        turn, secs = waited
        if secs >= self._give_up_secs and self._given_up != turn:
            self._given_up = turn
            self._give_up_after_interruption = True
            await self.push_frame(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)
        elif secs >= self._hold_secs and self._held != turn:
            self._held = turn
            self._on_hold(self._hold_text)
            await self.push_frame(TTSSpeakFrame(self._hold_text, append_to_context=False))
