"""Ends a call whose caller audio has stopped arriving.

A live phone stream sends a 20 ms frame every 20 ms, silence included, and a connected browser
sends audio continuously; a call with no audio for ``timeout_secs`` has lost its caller (a media
socket left open and silent, a WebRTC offer whose connection never came up). Without this such a
call ran for minutes, or for ever, holding a slot and CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class MediaWatchdog(FrameProcessor):
    """Passes every frame on; calls ``on_timeout`` once when no input audio has arrived for
    ``timeout_secs`` (counted from the call's start, so a call that never got audio ends too)."""

    def __init__(
        self,
        timeout_secs: float,
        on_timeout: Callable[[float], Awaitable[None]],
        *,
        check_every_secs: float = 1.0,
    ) -> None:
        super().__init__()
        self._timeout = timeout_secs
        self._on_timeout = on_timeout
        self._check_every = min(check_every_secs, timeout_secs / 2)
        self._last_audio = time.monotonic()
        self._task: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._last_audio = time.monotonic()
        elif isinstance(frame, StartFrame) and self._task is None:
            self._last_audio = time.monotonic()
            self._task = self.create_task(self._watch())
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop()
        await self.push_frame(frame, direction)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            silent = time.monotonic() - self._last_audio
            if silent >= self._timeout:
                self._task = None  # on_timeout ends the call, which stops this processor
                await self._on_timeout(silent)
                return

    async def _stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await self.cancel_task(task)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()
