"""When the caller's speech over the agent cuts it off: the turn's start strategy.

pipecat's default starts the caller's turn, and interrupts the agent, as soon as the VAD hears
speech. On a helpdesk call that trips on every "mm-hm" and "okay" a caller says while a runbook
step is read to them. ``OverlapTolerantTurnStart`` starts the turn at once while the agent is
silent, and while it speaks only once the caller has talked over it for ``min_speech_secs``
(a sentence, "no, that's not what I see"). Shorter speech over the agent waits for its words:
the recogniser drops a backchannel (``WhisperSTTService(backchannels=True)`` pushes a
``UserBackchannelFrame`` instead of a transcript) and anything else ("stop", "wait", "no")
arrives as a transcript, which starts the turn through pipecat's
``TranscriptionUserTurnStartStrategy`` after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import (
    BaseUserTurnStartStrategy,
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)


class OverlapTolerantTurnStart(BaseUserTurnStartStrategy):
    """VAD turn start, held back while the agent speaks until the caller has spoken over it for
    ``min_speech_secs`` (counted from the VAD's start, while it still hears speech)."""

    def __init__(
        self, *, min_speech_secs: float, clock: Callable[[], float] = time.monotonic, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self._min_speech_secs = min_speech_secs
        self._clock = clock
        self._bot_speaking = False
        self._speech_since: float | None = None  # the caller is speaking over the agent

    async def handle_user_turn_started(self) -> None:
        self._speech_since = None

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._speech_since is not None:  # the agent finished while the caller talks
                return await self._start()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if not self._bot_speaking:
                return await self._start()
            self._speech_since = self._clock()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_since = None  # short: its words decide (a transcript or a backchannel)
        if (
            self._speech_since is not None
            and self._clock() - self._speech_since >= self._min_speech_secs
        ):
            return await self._start()  # audio frames keep arriving: this is checked every 20 ms
        return ProcessFrameResult.CONTINUE

    async def _start(self) -> ProcessFrameResult:
        self._speech_since = None
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP


def turn_start_strategies(min_speech_secs: float) -> list[BaseUserTurnStartStrategy]:
    """pipecat's defaults (VAD, then a transcript) with the VAD held back over the agent;
    ``min_speech_secs`` 0 keeps the defaults (any speech cuts the agent off at once)."""
    if min_speech_secs <= 0:
        return [VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()]
    return [
        OverlapTolerantTurnStart(min_speech_secs=min_speech_secs),
        TranscriptionUserTurnStartStrategy(),
    ]
