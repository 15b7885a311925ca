"""One Twilio phone call: the Media Streams socket carried into the shared call runner.

The socket must open with ``connected`` then ``start`` (which names the stream and call SIDs and
carries the caller's number as a custom parameter). Anything else first is refused and the socket
closed. Then the call runs like every other: Twilio's 8 kHz mu-law in, resampled to 16 kHz for STT;
20 ms mu-law frames out; barge-in sends ``clear``; a ``mark`` after each reply tells when the caller
actually finished hearing it; keypad ``0`` transfers to a human through Twilio's REST API.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputTransportMessageFrame,
    OutputTransportMessageFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

from voice_agent.call.admission import CallAdmission, CallRefused, CallSlot
from voice_agent.call.runner import Call, CallResult, run_call
from voice_agent.call.turn_recorder import TurnRecorder
from voice_agent.engines import Engines
from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.records import EndReason, TurnRecord
from voice_agent.speech.auto_gain import AutoGainFilter
from voice_agent.storage import CallStore
from voice_agent.telephony.twilio_rest import TwilioCallControl
from voice_agent.telephony.twilio_serializer import HelpdeskTwilioSerializer

TWILIO_RATE = 8000
START_TIMEOUT_SECS = 10.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class TwilioStartError(VoiceAgentError, ValueError):
    code = ErrorCode.TWILIO_BAD_START


def _text(value: object, limit: int = 64) -> str | None:
    """A custom parameter as a short string (Twilio's are strings; a forged one may not be)."""
    return str(value)[:limit] if isinstance(value, str | int) and value != "" else None


class PlaybackMarker(FrameProcessor):
    """Twilio's ``mark`` protocol: after each reply's audio, asks Twilio to echo a mark once the
    caller has heard it, and tells the turn recorder when the echo of the reply's mark arrives
    (the ``reply_heard`` stage)."""

    def __init__(self, recorder: TurnRecorder, stream_sid: str) -> None:
        super().__init__()
        self._recorder = recorder
        self._stream_sid = stream_sid

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        turn = self._recorder.current
        if turn is None:
            return
        if isinstance(frame, TTSStoppedFrame):
            # the acknowledgement ("Okay.") gets its own mark, so the far end can tell it from
            # the answer that follows
            ack = not self._recorder.answering
            name = f"ack-{turn.index}" if ack else reply_mark_name(turn)
            mark = {"event": "mark", "streamSid": self._stream_sid, "mark": {"name": name}}
            await self.push_frame(OutputTransportMessageFrame(message=mark))
        elif isinstance(frame, InputTransportMessageFrame) and isinstance(frame.message, dict):
            if frame.message.get("event") == "mark":
                name = str((frame.message.get("mark") or {}).get("name", ""))
                if name == reply_mark_name(turn):
                    await self._recorder.reply_heard()


def reply_mark_name(turn: TurnRecord) -> str:
    """The name of the playback mark sent after a turn's reply audio."""
    return f"turn-{turn.index}"


async def read_start(websocket: WebSocket) -> dict:
    """Read up to Twilio's ``start`` message; raise TwilioStartError on anything else."""
    async with asyncio.timeout(START_TIMEOUT_SECS):
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(received.get("code", 1000))
            raw = received.get("text")
            if raw is None:
                raise TwilioStartError("a binary frame before start (Twilio sends JSON text)")
            try:
                message = json.loads(raw)
            except json.JSONDecodeError as e:
                raise TwilioStartError(f"malformed JSON before start: {raw[:80]!r}") from e
            event = message.get("event") if isinstance(message, dict) else None
            if event == "connected":
                continue
            if event != "start":
                raise TwilioStartError(f"expected 'start', got {event!r} first")
            start = message.get("start")
            if not isinstance(start, dict):
                raise TwilioStartError(f"'start' must be an object, got {start!r:.80}")
            sid = start.get("streamSid") or message.get("streamSid")
            if not isinstance(sid, str) or not sid:
                raise TwilioStartError("start without a streamSid")
            params = start.get("customParameters")
            if params is not None and not isinstance(params, dict):
                raise TwilioStartError("customParameters must be an object")
            for key in ("callSid", "accountSid"):
                if start.get(key) is not None and not isinstance(start[key], str):
                    raise TwilioStartError(f"{key} must be a string")
            return message


async def close_socket(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason)
    except RuntimeError:
        pass  # already closed by the peer


async def handle_media_stream(
    websocket: WebSocket, *, engines: Engines, store: CallStore, admission: CallAdmission
) -> CallResult | None:
    if admission.draining:  # refused before the handshake: a balancer retries another instance
        logger.info("twilio media socket refused: this server is draining")
        await websocket.send_denial_response(
            PlainTextResponse(
                "this server is shutting down: connect to another instance",
                status_code=503,
                headers={"Retry-After": "1"},
            )
        )
        return None
    await websocket.accept()
    try:
        message = await read_start(websocket)
    except (TwilioStartError, TimeoutError, WebSocketDisconnect, RuntimeError) as e:
        logger.warning(f"twilio media socket refused before start: {e!r}")
        await close_socket(websocket, POLICY_VIOLATION, "expected connected/start")
        return None
    try:
        slot = admission.admit("twilio")
    except CallRefused as e:
        logger.warning(f"twilio media socket refused: {e.reason}")
        await close_socket(websocket, TRY_AGAIN_LATER, e.reason)
        return None
    with slot:
        return await _run_twilio_call(websocket, message, engines=engines, store=store, slot=slot)


async def _run_twilio_call(
    websocket: WebSocket, message: dict, *, engines: Engines, store: CallStore, slot: CallSlot
) -> CallResult | None:
    settings = engines.settings
    start = message.get("start") or {}
    stream_sid = str(start.get("streamSid") or message.get("streamSid"))  # checked on arrival
    params = start.get("customParameters") or {}
    call_sid = start.get("callSid") or _text(params.get("call_sid"))
    caller = _text(params.get("caller")) or _text(params.get("from"))
    log = logger.bind(call_sid=call_sid)
    log.info(f"twilio call {call_sid} from {caller}: stream {stream_sid}")

    control = (
        TwilioCallControl(settings, call_sid) if settings.twilio_configured and call_sid else None
    )
    serializer = HelpdeskTwilioSerializer(
        stream_sid,
        call_sid=call_sid,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_token,
        base_url=settings.twilio_api_base_url,
        params=TwilioFrameSerializer.InputParams(auto_hang_up=control is not None),
        max_message_bytes=settings.twilio_max_message_bytes,
    )
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_filter=AutoGainFilter(noise_floor_dbfs=settings.audio_noise_floor_dbfs),
            add_wav_header=False,
            serializer=serializer,
            audio_out_end_silence_secs=0,
            audio_out_10ms_chunks=2,  # 20 ms mu-law frames, as Twilio sends them
        ),
    )
    handle: Call | None = None

    async def started(h: Call) -> None:
        nonlocal handle
        handle = h

    def gave_up(_why: str) -> None:  # the socket kept misbehaving: the record says so
        if handle is not None:
            handle.end_reason = handle.end_reason or EndReason.PROTOCOL_ERROR

    serializer.on_give_up = gave_up

    async def transfer() -> None:
        if control is None or not control.can_transfer:
            raise RuntimeError("transfer is not configured (Twilio credentials, transfer number)")
        await asyncio.sleep(3.0)  # let the caller hear that they are being transferred
        await control.transfer()
        serializer.keep_call_alive()

    class StopWatcher(FrameProcessor):
        """Twilio's ``stop``: the call is over on Twilio's side."""

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)
            if (
                isinstance(frame, InputTransportMessageFrame)
                and isinstance(frame.message, dict)
                and frame.message.get("event") == "stop"
                and handle is not None
            ):
                handle.end_reason = handle.end_reason or EndReason.CALLER_HUNG_UP
                await handle.drop()

    try:
        return await run_call(
            transport,
            engines=engines,
            store=store,
            transport_name="twilio",
            audio_out_sample_rate=TWILIO_RATE,
            caller=caller,
            external_id=call_sid,
            on_started=started,
            slot=slot,
            transfer=transfer if control is not None and control.can_transfer else None,
            before_output=lambda recorder: [PlaybackMarker(recorder, stream_sid), StopWatcher()],
            wait_for_playback_marks=True,
        )
    except asyncio.CancelledError:
        return None
