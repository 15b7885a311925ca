"""What a watching page sees of a call as it happens: both sides' words, and each turn's latency.

An observer on the call's pipeline turns frames into small JSON events and hands them to ``send``
(for WebRTC, the peer connection's data channel). Events:

- ``{"type": "user_started"}`` / ``{"type": "user", "text": ...}``: the caller speaks / their words
- ``{"type": "bot_started"}`` / ``{"type": "bot", "text": ...}`` / ``{"type": "bot_stopped"}``
- ``{"type": "turn", ...}``: a finished turn's record (text both sides, stages, latency)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from voice_agent.call.turn_recorder import SeenFrames
from voice_agent.records import TurnRecord


class LiveEvents(BaseObserver):
    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._send = send
        self._seen = SeenFrames()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self._send(event)
        except Exception as e:  # a page that went away must not disturb the call
            logger.debug(f"live event not delivered: {e}")

    async def on_turn(self, turn: TurnRecord) -> None:
        self.emit({"type": "turn", **turn.to_dict()})

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not self._seen.first_time(frame):
            return
        if isinstance(frame, TranscriptionFrame):
            self.emit({"type": "user", "text": frame.text})
        elif isinstance(frame, TTSTextFrame):
            self.emit({"type": "bot", "text": frame.text})
        elif isinstance(frame, UserStartedSpeakingFrame):
            self.emit({"type": "user_started"})
        elif isinstance(frame, BotStartedSpeakingFrame):
            self.emit({"type": "bot_started"})
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.emit({"type": "bot_stopped"})
