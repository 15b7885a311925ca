"""A short spoken acknowledgement the moment the caller has finished, before the answer is ready.

On a 2-core CPU the caller's words take about a second to transcribe, and an answer from the
language model another second or more. People expect a sign of life within a few hundred
milliseconds of finishing a sentence, so as soon as smart-turn judges the turn complete (before
the transcript exists) the agent says "Okay." (its audio is synthesized once, at start-up). The
answer follows as soon as it is ready. The acknowledgement is not added to the model's context.

When smart-turn judges the words unfinished, the turn only ends after ``turn_max_silence_secs``
of silence; the acknowledgement then comes after ``ACK_AFTER_SILENCE_SECS`` of silence instead, so
the caller is not left in dead air for the whole wait. Either way the caller may simply go on
talking over the "Okay.", as they would with a person who said it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from voice_agent.flows.prompts import ACKNOWLEDGEMENTS

MIN_SPEECH_SECS = 0.5  # a cough or an "uh" gets no acknowledgement
ACK_AFTER_SILENCE_SECS = 0.7  # when smart-turn says "not finished yet"


class AcknowledgingTurnStop(TurnAnalyzerUserTurnStopStrategy):
    """smart-turn end-of-turn detection that reports "turn complete" as soon as the model says
    so, without waiting for the transcript the way the turn's end itself does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_turn_complete: Callable[[], Awaitable[None]] | None = None
        self._announced = False
        self._after_silence: asyncio.Task | None = None

    async def _reset(self):
        await self._cancel_after_silence()
        self._announced = False
        await super()._reset()

    async def _discard_pending_end_of_turn(self):
        await self._cancel_after_silence()
        self._announced = False
        await super()._discard_pending_end_of_turn()

    async def _maybe_trigger_user_turn_stopped(self):
        if self._turn_complete:
            await self._announce()
        await super()._maybe_trigger_user_turn_stopped()

    async def _handle_vad_user_stopped_speaking(self, frame):
        await super()._handle_vad_user_stopped_speaking(frame)
        if not self._turn_complete and not self._announced and self.on_turn_complete:
            wait = max(0.0, ACK_AFTER_SILENCE_SECS - frame.stop_secs)
            self._after_silence = self.task_manager.create_task(
                self._announce_after(wait), f"{self}::acknowledge_after_silence"
            )

    async def _announce_after(self, secs: float) -> None:
        await asyncio.sleep(secs)
        self._after_silence = None
        if not self._vad_user_speaking:
            await self._announce()

    async def _announce(self) -> None:
        if not self._announced and self.on_turn_complete is not None:
            self._announced = True
            await self.on_turn_complete()

    async def _cancel_after_silence(self) -> None:
        if self._after_silence is not None:
            task, self._after_silence = self._after_silence, None
            await self.task_manager.cancel_task(task)


class Acknowledger:
    """Per call: picks the phrase, and only speaks when it makes sense."""

    def __init__(self, speak: Callable[[str], Awaitable[None]]) -> None:
        self._speak = speak
        self._count = 0

    async def turn_complete(self, *, speech_secs: float) -> str | None:
        if speech_secs < MIN_SPEECH_SECS:
            return None
        phrase = ACKNOWLEDGEMENTS[self._count % len(ACKNOWLEDGEMENTS)]
        self._count += 1
        await self._speak(phrase)
        return phrase
