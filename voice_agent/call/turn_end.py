"""When the caller's turn ends: smart-turn, and the transcript's own sentence end, after silences
that do not depend on how fast the transcript arrives.

smart-turn v3 judges from the audio alone whether the caller sounds finished. When it says "not
yet", the turn only ends after ``turn_max_silence_secs`` (1.5 s) of silence. On phone speech it
often says "not yet" about a finished sentence, and the caller then waits the whole 1.5 s plus the
answer. The finalized transcript is a second witness: when Whisper wrote a whole sentence ("...
a train to Cambridge." or "...is that right?") and the caller has stayed silent for
``sentence_end_silence_secs``, the turn ends there. Whisper marks words that trail off ("and...",
"so the thing is,") and such endings never end a turn early.

The turn also never ends before ``min_silence_secs`` of silence, even when smart-turn judged it
finished and the transcript is in; and when the transcript leaves its words open (no full stop,
"?" or "!": "And so my fellow America", "555 0212"), not before smart-turn's own limit for an
unfinished turn (its ``stop_secs``), whatever smart-turn said: the two witnesses must agree
for an early end. A slow decode used to be that floor by accident (a
whole-window decode lands ~1.1 s after the caller stops; a pause shorter than that always
outlasted it); a fast one (a short window, a GPU) lands in ~0.5 s, inside the pauses callers
make mid-utterance ("And so, my fellow Americans, [1.1 s] ask not ..."). Measured on the shared
clips: of 26 pauses inside the 68 real phone turns smart-turn judged 6 finished, and of 112 in
the scripted callers' lines 91; all but a few are under 0.8 s. Whisper writes the audio before
such a pause as open words ("And so my fellow America"), while a whole turn ends a sentence: all
68 real phone turns, and 189 of the 210 scripted lines (the rest: phone numbers read out).
"""

from __future__ import annotations

import asyncio
import re
import time

from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.frames.frames import TranscriptionFrame, VADUserStoppedSpeakingFrame

from voice_agent.call.acknowledgement import AcknowledgingTurnStop

# Words that leave a sentence open even when Whisper put a full stop after them.
_OPEN_ENDINGS = frozenset(
    "and or but so because the a an to of for with if um uh er like my your our".split()
)
_SENTENCE_END = re.compile(r"[^.?!…]([.?!])[\"')\]]*\s*$")


def ends_a_sentence(text: str) -> bool:
    """Whether a transcript ends a sentence: a full stop, "?" or "!", not "..." or a comma,
    and not after a word that leaves the sentence open ("and.")."""
    text = text.strip()
    if not _SENTENCE_END.search(text):
        return False
    last = re.sub(r"[^\w']", "", text.split()[-1].lower())
    return bool(last) and last not in _OPEN_ENDINGS


class SentenceEndTurnStop(AcknowledgingTurnStop):
    """smart-turn end-of-turn detection (with the acknowledgement), plus: a finalized transcript
    that ends a sentence ends the turn after ``sentence_end_silence_secs`` of silence, even when
    smart-turn judged the audio unfinished (``None`` turns that off); and no turn ends before
    ``min_silence_secs`` of silence (0: as soon as smart-turn and the transcript allow), or
    before smart-turn's limit for an unfinished turn when the transcript leaves its words open."""

    def __init__(
        self,
        *args,
        sentence_end_silence_secs: float | None = 1.2,
        min_silence_secs: float = 0.8,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._sentence_end_silence_secs = sentence_end_silence_secs
        self._min_silence_secs = min_silence_secs
        self._speech_ended_at: float | None = None  # wall clock, as VAD frames carry it
        self._sentence_end_task: asyncio.Task | None = None
        self._floor_task: asyncio.Task | None = None

    async def cleanup(self):
        await self._cancel_sentence_end()
        await self._cancel_floor()
        await super().cleanup()

    async def _discard_pending_end_of_turn(self):
        await self._cancel_sentence_end()
        await self._cancel_floor()
        await super()._discard_pending_end_of_turn()

    async def trigger_user_turn_stopped(self, **kwargs):
        """End the turn now, or once the caller has been silent long enough (``_floor_left``)."""
        wait = self._floor_left()
        if wait <= 0:
            await super().trigger_user_turn_stopped(**kwargs)
        elif self._floor_task is None:
            self._floor_task = self.task_manager.create_task(
                self._stop_after_floor(wait, kwargs), f"{self}::min_silence"
            )

    def _floor_left(self) -> float:
        if self._speech_ended_at is None or self._vad_user_speaking:
            return 0.0  # no VAD stop to count from (a transcript-only turn)
        floor = self._min_silence_secs
        params = self._turn_analyzer.params
        if (
            isinstance(params, SmartTurnParams)
            and self._text.strip()
            and not ends_a_sentence(self._text)
        ):
            floor = max(floor, params.stop_secs)
        return floor - (time.time() - self._speech_ended_at)

    async def _stop_after_floor(self, secs: float, kwargs: dict) -> None:
        await asyncio.sleep(secs)
        self._floor_task = None
        if not self._vad_user_speaking:  # speech again would have cancelled this task
            await super().trigger_user_turn_stopped(**kwargs)

    async def _cancel_floor(self) -> None:
        if self._floor_task is not None:
            task, self._floor_task = self._floor_task, None
            await self.task_manager.cancel_task(task)

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        self._speech_ended_at = frame.timestamp - frame.stop_secs
        await super()._handle_vad_user_stopped_speaking(frame)

    async def _handle_transcription(self, frame: TranscriptionFrame):
        await super()._handle_transcription(frame)
        if (
            self._sentence_end_silence_secs is None
            or self._turn_complete
            or self._vad_user_speaking
            or not self._vad_stopped
            or not frame.finalized
            or self._speech_ended_at is None
            or not ends_a_sentence(frame.text)
        ):
            return
        await self._cancel_sentence_end()
        silent_for = time.time() - self._speech_ended_at
        wait = max(0.0, self._sentence_end_silence_secs - silent_for)
        self._sentence_end_task = self.task_manager.create_task(
            self._end_at_sentence_after(wait), f"{self}::end_at_sentence"
        )

    async def _end_at_sentence_after(self, secs: float) -> None:
        await asyncio.sleep(secs)
        self._sentence_end_task = None
        if self._vad_user_speaking or self._turn_complete or not self._transcript_finalized:
            return
        self._turn_complete = True
        await self._maybe_trigger_user_turn_stopped()

    async def _cancel_sentence_end(self) -> None:
        if self._sentence_end_task is not None:
            task, self._sentence_end_task = self._sentence_end_task, None
            await self.task_manager.cancel_task(task)
