"""A pipeline processor that checks something on a timer while the call runs (the watchdogs)."""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class PeriodicCheck(FrameProcessor):
    """Passes every frame on. From the pipeline's start to its end, awaits :meth:`check` every
    ``check_every_secs``; a check that raises is logged and the checks go on (a watchdog that
    died would leave the next failure unnoticed)."""

    def __init__(self, check_every_secs: float) -> None:
        super().__init__()
        self._check_every = check_every_secs
        self._task: asyncio.Task | None = None

    async def check(self) -> None:
        raise NotImplementedError

    def stop_checking(self) -> None:
        """No more checks after this one (call it before ending the call from a check: the end
        stops this processor, which must not cancel the check that is ending it)."""
        self._task = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = self.create_task(self._run())
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop()
        await self.push_frame(frame, direction)

    async def _run(self) -> None:
        while self._task is not None:
            await asyncio.sleep(self._check_every)
            try:
                await self.check()
            except Exception:
                logger.exception(f"{self}: check failed")

    async def _stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await self.cancel_task(task)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()
