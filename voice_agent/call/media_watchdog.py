"""Ends a call whose caller audio has stopped arriving.

A live phone stream sends a 20 ms frame every 20 ms, silence included, and a connected browser
sends audio continuously; a call with no audio for ``timeout_secs`` has lost its caller (a media
socket left open and silent, a WebRTC offer whose connection never came up). Without this such a
call ran for minutes, or for ever, holding a slot and CPU.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame, InputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection

from voice_agent.call.periodic_check import PeriodicCheck


class MediaWatchdog(PeriodicCheck):
    """Passes every frame on; calls ``on_timeout`` once when no input audio has arrived for
    ``timeout_secs`` (counted from the call's start, so a call that never got audio ends too)."""

    def __init__(
        self,
        timeout_secs: float,
        on_timeout: Callable[[float], Awaitable[None]],
        *,
        check_every_secs: float = 1.0,
    ) -> None:
        super().__init__(min(check_every_secs, timeout_secs / 2))
        self._timeout = timeout_secs
        self._on_timeout = on_timeout
        self._last_audio = time.monotonic()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame | StartFrame):
            self._last_audio = time.monotonic()
        await super().process_frame(frame, direction)

    async def check(self) -> None:
        silent = time.monotonic() - self._last_audio
        if silent >= self._timeout:
            self.stop_checking()
            await self._on_timeout(silent)
