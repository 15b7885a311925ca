"""Caller requests that bypass the conversation: keypad digits (``0`` asks for a human)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame, InputDTMFFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

HUMAN_DIGIT = "0"


class KeypadListener(FrameProcessor):
    """Passes every frame on; calls ``on_digit`` for each key the caller presses."""

    def __init__(self, on_digit: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self._on_digit = on_digit

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame):
            await self._on_digit(frame.button.value)
