"""Twilio Media Streams, the wire protocol: JSON messages <-> pipecat frames.

Builds on pipecat's ``TwilioFrameSerializer`` (8 kHz mu-law in and out, soxr resampling to the
pipeline's rate, ``clear`` on barge-in) and makes it safe against bad input from the socket:
malformed JSON, unknown events, undecodable payloads, oversized messages and floods of media are
logged with the call SID and dropped; a socket that keeps misbehaving is closed by raising
:class:`TwilioProtocolError` (the transport then ends the call, and the record keeps what was said).
Incoming ``mark`` echoes and ``stop`` are passed on as transport messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable

from loguru import logger
from pipecat.frames.frames import Frame, InputTransportMessageFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from voice_agent.errors import ErrorCode, VoiceAgentError

MEDIA_FRAME_SECS = 0.02
KNOWN_EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}
DTMF_DIGITS = set("0123456789*#")


class TwilioProtocolError(VoiceAgentError, RuntimeError):
    code = ErrorCode.TWILIO_PROTOCOL


class HelpdeskTwilioSerializer(TwilioFrameSerializer):
    def __init__(
        self,
        *args,
        max_message_bytes: int = 16384,
        max_bad_messages: int = 20,
        flood_burst_secs: float = 2.0,
        flood_rate: float = 1.5,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_message_bytes = max_message_bytes
        self._max_bad = max_bad_messages
        self.bad_messages = 0
        self.dropped_media = 0
        # told once, just before TwilioProtocolError closes the socket (the call's end reason)
        self.on_give_up: Callable[[str], None] | None = None
        # Token bucket over media frames: Twilio sends one 20 ms frame every 20 ms. A burst of
        # ``flood_burst_secs`` of audio is tolerated (network jitter), a sustained rate above
        # ``flood_rate`` x real time is a flood: those frames are dropped.
        self._bucket_capacity = flood_burst_secs / MEDIA_FRAME_SECS
        self._bucket = self._bucket_capacity
        self._bucket_rate = flood_rate / MEDIA_FRAME_SECS
        self._bucket_at = time.monotonic()

    def keep_call_alive(self) -> None:
        """The call now belongs elsewhere (transferred): never hang it up when our side ends."""
        self._hangup_attempted = True

    @property
    def call_sid(self) -> str | None:
        return self._call_sid

    @property
    def stream_sid(self) -> str:
        return self._stream_sid

    def _bad(self, why: str, data: str | bytes) -> None:
        self.bad_messages += 1
        logger.warning(f"twilio call {self._call_sid}: {why}: {str(data)[:120]!r}")
        if self.bad_messages > self._max_bad:
            self._give_up(f"{self.bad_messages} bad messages")

    def _give_up(self, why: str) -> None:
        if self.on_give_up is not None:
            self.on_give_up(why)
        raise TwilioProtocolError(f"twilio call {self._call_sid}: {why}, closing the socket")

    def _take_media_token(self) -> bool:
        now = time.monotonic()
        self._bucket = min(
            self._bucket_capacity, self._bucket + (now - self._bucket_at) * self._bucket_rate
        )
        self._bucket_at = now
        if self._bucket >= 1:
            self._bucket -= 1
            return True
        self.dropped_media += 1
        if self.dropped_media in (1, 100) or self.dropped_media % 1000 == 0:
            logger.warning(
                f"twilio call {self._call_sid}: media flood, {self.dropped_media} frames dropped"
            )
        if self.dropped_media > 5000:
            self._give_up("sustained media flood")
        return False

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """A frame for a good message; None for a bad one (counted, logged, dropped). Raises
        only :class:`TwilioProtocolError`, once the socket has sent too many bad messages."""
        if len(data) > self._max_message_bytes:
            self._bad(f"oversized message ({len(data)} bytes)", data[:120])
            return None
        try:
            message = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._bad("malformed JSON", data)
            return None
        if not isinstance(message, dict):
            self._bad("message is not a JSON object", data)
            return None
        event = message.get("event")
        if event not in KNOWN_EVENTS:
            self._bad(f"unknown event {event!r}", data)
            return None
        problem = _problem(event, message)
        if problem is not None:
            self._bad(problem, data)
            return None
        if event in ("mark", "stop"):
            return InputTransportMessageFrame(message=message)
        if event == "media" and not self._take_media_token():
            return None
        if event in ("media", "dtmf"):
            try:
                return await super().deserialize(data)
            except Exception as e:  # whatever else pipecat's parser trips on: drop the message
                self._bad(f"unreadable {event} ({type(e).__name__}: {e})", data)
                return None
        return None  # connected / a repeated start: nothing to do mid-call


def _problem(event: str, message: dict) -> str | None:
    """What is wrong with a message's body for its event, or None."""
    if event == "media":
        media = message.get("media")
        if not isinstance(media, dict):
            return "media is not an object"
        payload = media.get("payload")
        if not isinstance(payload, str) or not payload:
            return "media without a payload"
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return "media payload is not base64"
    elif event == "dtmf":
        dtmf = message.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_DIGITS:
            return "dtmf without a key (0-9, * or #)"
    elif event == "mark":
        mark = message.get("mark")
        if not isinstance(mark, dict) or not isinstance(mark.get("name"), str):
            return "mark without a name"
    return None
