"""A phone call as Twilio delivers it: the client side of Twilio's bidirectional Media Streams.

``voice-agent dial`` and the tests use this to drive our server exactly as a real Twilio call would,
without a phone number, a tunnel or a Twilio account. What it mirrors from Twilio:

* The socket: Twilio opens a WebSocket to the ``<Stream url>`` and sends only JSON text frames:
  ``connected``, then ``start`` (account/call/stream SIDs in Twilio's ``AC``/``CA``/``MZ`` + 32 hex
  form, ``tracks: ["inbound"]``, ``mediaFormat`` audio/x-mulaw 8000 Hz mono, and the
  ``<Parameter>`` values as ``customParameters``), then ``media``, ``dtmf``, ``mark`` and finally
  ``stop`` before it closes the socket. Every message after ``connected`` carries a
  ``sequenceNumber`` (a string, counting up from "1" across all events); ``media`` messages also
  carry ``chunk`` (counting up from "1") and ``timestamp`` (milliseconds since the stream began).
* The line: 160 bytes of G.711 mu-law (20 ms) per ``media`` message, paced in real time on an
  absolute schedule. The line is never silent: between the caller's words Twilio keeps sending
  mu-law silence (0xFF), so the server's VAD sees what it sees on a real call.
* The caller's ear: ``media`` from the server is buffered and played in real time. Playback is
  modelled with a clock (``play_until``), which decides when the bot has finished speaking and
  when a ``mark`` is echoed back: Twilio echoes a mark once the audio sent before it has played,
  and on ``clear`` it drops the buffer and echoes every pending mark at once.
* DTMF: a key press arrives as a ``dtmf`` event (track ``inbound_track``) next to the audio.

The caller's script: wait for the greeting, speak each utterance as one turn, keep the line open
with silence while the bot answers and move on once the reply has played out (or barge in on it
after a set delay). Voice-to-voice latency is measured at the edge a phone network sees: from the
last 20 ms of the caller's audio leaving to the first reply ``media`` arriving. When the server
speaks a short acknowledgement first and marks its end with a mark named ``ack-<turn>``, the first
``media`` after that mark is the answer itself, and voice-to-answer is measured to it as well.

The upgrade is signed with ``X-Twilio-Signature`` as Twilio signs it when ``auth_token`` is given.
Not mirrored: the REST API side of a call, and network jitter.
"""

from __future__ import annotations

import asyncio
import audioop  # the stdlib module; audioop-lts (a pipecat dependency) on Python 3.13+
import base64
import binascii
import collections
import json
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import HeadersLike
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice_agent.stats import percentile

SAMPLE_RATE = 8000
FRAME_SECS = 0.02
FRAME_BYTES = int(SAMPLE_RATE * FRAME_SECS)  # 160 mu-law bytes = 20 ms
MULAW_SILENCE = 0xFF
DTMF_DIGITS = frozenset("0123456789*#")
DTMF_GAP_FRAMES = 5  # 100 ms between the key presses of a multi-digit entry
USER_AGENT = "Twilio.TmeWs/1.0"
MAX_PROTOCOL_ERRORS = 100

# -- G.711 mu-law: audioop's codec, the one pipecat's ulaw_to_pcm/pcm_to_ulaw use ----------------


def mulaw_encode(samples: np.ndarray) -> bytes:
    """Encode 16-bit linear PCM samples as G.711 mu-law bytes."""
    pcm = np.asarray(samples).astype(np.int16, copy=False).reshape(-1)
    return audioop.lin2ulaw(pcm.tobytes(), 2)


def mulaw_decode(data: bytes | bytearray | np.ndarray) -> np.ndarray:
    """Decode G.711 mu-law bytes to 16-bit linear PCM samples (int16)."""
    codes = np.asarray(data).astype(np.uint8, copy=False) if isinstance(data, np.ndarray) else None
    pcm = audioop.ulaw2lin(bytes(data) if codes is None else codes.tobytes(), 2)
    samples = np.frombuffer(bytearray(pcm), dtype=np.int16)  # bytearray: a writable array
    return samples if codes is None else samples.reshape(codes.shape)


def twilio_signature(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """``X-Twilio-Signature`` for a request to ``url``: what Twilio sends on webhooks and on the
    media socket's upgrade (no parameters)."""
    return RequestValidator(auth_token).compute_signature(url, params or {})


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: ``CA`` (call), ``MZ`` (stream) or ``AC`` (account) + 32 hex."""
    return prefix + secrets.token_hex(16)


def load_phone_audio(path: Path | str) -> np.ndarray:
    """Any audio file, any rate, as what a phone line carries: 8 kHz mono int16 samples.

    Raises ``voice_agent.speech.audio.AudioDecodeError`` for a file that cannot be read.
    """
    from voice_agent.speech.audio import (
        decode_audio_file,  # PyAV-backed; only the CLI edge needs it
    )

    return decode_audio_file(path, SAMPLE_RATE).samples.astype(np.int16, copy=False)


# -- what one call recorded ----------------------------------------------------------------------


@dataclass
class DialTurn:
    """One caller turn (index 0: the greeting) and the bot audio the caller heard during it.

    Times are ``time.time()`` wall-clock seconds.
    """

    index: int
    source: str
    audio_secs: float = 0.0
    error: str | None = None
    started_at: float | None = None  # the caller starts speaking (the turn becomes current)
    audio_end_at: float | None = None  # the last 20 ms of the caller's audio was sent
    first_bot_media_at: float | None = None  # first server ``media`` after ``audio_end_at``
    ack_mark_at: float | None = None  # an ``ack-*`` mark arrived: the acknowledgement was sent
    answer_media_at: float | None = None  # first server ``media`` after that ``ack-*`` mark
    bot_audio: bytearray = field(default_factory=bytearray)  # int16 LE PCM, 8 kHz, decoded
    clears_received: int = 0
    marks_received: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def voice_to_voice_secs(self) -> float | None:
        """End of the caller's audio to the first reply audio, in seconds (ms resolution)."""
        if self.audio_end_at is None or self.first_bot_media_at is None:
            return None
        return round(self.first_bot_media_at - self.audio_end_at, 3)

    @property
    def voice_to_answer_secs(self) -> float | None:
        """End of the caller's audio to the first audio carrying the answer's content.

        The same as ``voice_to_voice_secs`` when the server sent no acknowledgement (no ``ack-*``
        mark); None when it acknowledged but the answer never arrived.
        """
        if self.ack_mark_at is None:
            return self.voice_to_voice_secs
        if self.audio_end_at is None or self.answer_media_at is None:
            return None
        return round(self.answer_media_at - self.audio_end_at, 3)

    @property
    def bot_audio_secs(self) -> float:
        return round(len(self.bot_audio) / 2 / SAMPLE_RATE, 3)

    def bot_samples(self) -> np.ndarray:
        """The bot's audio for this turn as int16 samples at 8 kHz."""
        return np.frombuffer(bytes(self.bot_audio), dtype="<i2")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the audio itself is left out: see ``bot_audio_secs``)."""
        return {
            "index": self.index,
            "source": self.source,
            "started_at": self.started_at,
            "audio_secs": self.audio_secs,
            "error": self.error,
            "voice_to_voice_secs": self.voice_to_voice_secs,
            "voice_to_answer_secs": self.voice_to_answer_secs,
            "bot_audio_secs": self.bot_audio_secs,
            "clears_received": self.clears_received,
            "marks_received": list(self.marks_received),
            "timed_out": self.timed_out,
        }


@dataclass
class DialResult:
    """What the caller's side of one call recorded."""

    call_sid: str
    stream_sid: str
    account_sid: str = ""
    greeting: DialTurn = field(default_factory=lambda: DialTurn(index=0, source="greeting"))
    turns: list[DialTurn] = field(default_factory=list)
    closed_by: Literal["client", "server"] | None = None
    error: str | None = None
    started_at: float | None = None  # ``start`` was sent
    protocol_errors: list[str] = field(default_factory=list)  # malformed server messages
    # how late the most delayed media frame left against its 20 ms slot: a dialer that cannot keep
    # up (CPU-starved, too many calls) sends in bursts, and its latency figures are then suspect
    max_send_lag_secs: float = 0.0

    @property
    def greeting_secs(self) -> float | None:
        """``start`` sent to the first greeting audio, in seconds."""
        if self.started_at is None or self.greeting.first_bot_media_at is None:
            return None
        return round(self.greeting.first_bot_media_at - self.started_at, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "stream_sid": self.stream_sid,
            "closed_by": self.closed_by,
            "error": self.error,
            "greeting_secs": self.greeting_secs,
            "greeting": self.greeting.to_dict(),
            "turns": [
                dict(t.to_dict(), next_started_at=nxt.started_at if nxt else None)
                for t, nxt in zip(self.turns, [*self.turns[1:], None], strict=True)
            ],
            "protocol_errors": list(self.protocol_errors),
            "max_send_lag_secs": self.max_send_lag_secs,
        }


Utterance = tuple[str, np.ndarray | Exception]  # (source, int16 8 kHz samples | read error)


class CallerScript(Protocol):
    """A caller who decides each turn by what was heard so far (``voice-agent bench scenarios``).

    ``next_utterance`` is called once the greeting, then each reply, has played out; it returns
    the next turn, or None to hang up. The line stays open with silence while it decides."""

    async def next_utterance(self, call: DialResult) -> Utterance | None: ...


class _FixedScript:
    """The same utterances in order, whatever the agent says."""

    def __init__(self, utterances: list[Utterance]) -> None:
        self._left = list(utterances)

    async def next_utterance(self, call: DialResult) -> Utterance | None:
        return self._left.pop(0) if self._left else None


class _ServerHungUp(Exception):
    """The server closed the socket while the caller was still on the line."""


# -- one call ------------------------------------------------------------------------------------


class _TwilioCall:
    """Twilio's side of one Media Stream: the line out, the playback buffer and the mark echoes."""

    def __init__(
        self,
        ws: ClientConnection,
        result: DialResult,
        *,
        caller: str,
        reply_timeout_secs: float,
        settle_secs: float,
        greeting_timeout_secs: float,
        barge_in_after_secs: dict[int, float],
        dtmf: dict[int, str],
    ) -> None:
        self._ws = ws
        self._result = result
        self._caller = caller
        self._reply_timeout_secs = reply_timeout_secs
        self._settle_secs = settle_secs
        self._greeting_timeout_secs = greeting_timeout_secs
        self._barge_in_after_secs = barge_in_after_secs
        self._dtmf = dtmf
        self._loop = asyncio.get_running_loop()
        self._send_lock = asyncio.Lock()  # sequence numbers go out in the order they are taken
        self._seq = 0
        self._chunk = 0
        self._t0 = 0.0  # loop time of the first media frame's slot
        self._current: DialTurn = result.greeting
        self._play_until = 0.0  # loop time until which received bot audio is still playing
        self._pending_marks: collections.deque[tuple[float, str]] = collections.deque()
        self._marks_changed = asyncio.Event()
        self._dtmf_queue: collections.deque[str] = collections.deque()
        self._frames_since_dtmf = DTMF_GAP_FRAMES
        self._hanging_up = False
        self._closed = asyncio.Event()

    # -- sending ---------------------------------------------------------------------------------
    async def _send_event(self, event: str, body: dict[str, Any]) -> None:
        async with self._send_lock:
            self._seq += 1
            message = {"event": event, "sequenceNumber": str(self._seq), **body}
            message["streamSid"] = self._result.stream_sid
            await self._ws.send(json.dumps(message))

    async def _send_frame(self, payload: bytes) -> None:
        """One 20 ms media frame in its slot of the absolute schedule (plus any due key press)."""
        if self._closed.is_set() and not self._hanging_up:
            raise _ServerHungUp
        self._chunk += 1
        lag = self._loop.time() - (self._t0 + (self._chunk - 1) * FRAME_SECS)
        if lag > self._result.max_send_lag_secs:
            self._result.max_send_lag_secs = round(lag, 3)
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str(round((self._chunk - 1) * FRAME_SECS * 1000)),
            "payload": base64.b64encode(payload).decode("ascii"),
        }
        await self._send_event("media", {"media": media})
        self._frames_since_dtmf += 1
        if self._dtmf_queue and self._frames_since_dtmf >= DTMF_GAP_FRAMES:
            digit = self._dtmf_queue.popleft()
            await self._send_event("dtmf", {"dtmf": {"track": "inbound_track", "digit": digit}})
            self._frames_since_dtmf = 0
        delay = self._t0 + self._chunk * FRAME_SECS - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- receiving -------------------------------------------------------------------------------
    def _protocol_error(self, what: str) -> None:
        if len(self._result.protocol_errors) < MAX_PROTOCOL_ERRORS:
            self._result.protocol_errors.append(what)

    async def _receive(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    await self._handle(raw)
                except ConnectionClosed:
                    raise
                except Exception as e:  # a malformed message must not end the call
                    self._protocol_error(f"cannot handle message: {type(e).__name__}: {e}")
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()

    async def _handle(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self._protocol_error(f"binary frame of {len(raw)} bytes (Twilio accepts only text)")
            return
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            self._protocol_error(f"not JSON: {raw[:80]!r}")
            return
        if not isinstance(message, dict):
            self._protocol_error(f"not a JSON object: {raw[:80]!r}")
            return
        event = message.get("event")
        if event not in ("media", "mark", "clear"):
            self._protocol_error(f"unknown event {event!r}")
            return
        if message.get("streamSid") != self._result.stream_sid:
            self._protocol_error(f"{event}: streamSid {message.get('streamSid')!r} is not ours")
            return
        if event == "media":
            self._on_media(message)
        elif event == "mark":
            self._on_mark(message)
        else:
            await self._on_clear()

    def _on_media(self, message: dict[str, Any]) -> None:
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._protocol_error("media: no media.payload string")
            return
        try:
            mulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._protocol_error("media: payload is not base64")
            return
        turn = self._current
        if turn.first_bot_media_at is None and (
            turn.audio_end_at is not None or turn is self._result.greeting
        ):
            turn.first_bot_media_at = time.time()
        if turn.ack_mark_at is not None and turn.answer_media_at is None:
            turn.answer_media_at = time.time()
        turn.bot_audio.extend(mulaw_decode(mulaw).astype("<i2", copy=False).tobytes())
        self._play_until = max(self._play_until, self._loop.time()) + len(mulaw) / SAMPLE_RATE

    def _on_mark(self, message: dict[str, Any]) -> None:
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            self._protocol_error("mark: no mark.name string")
            return
        self._current.marks_received.append(name)
        turn = self._current
        if name.startswith("ack-") and turn.audio_end_at is not None and turn.ack_mark_at is None:
            turn.ack_mark_at = time.time()  # the media after this one carries the answer
        # echoed once the audio buffered before it has played out (at once if nothing is playing)
        due = max(self._play_until, self._loop.time())
        self._pending_marks.append((due, name))
        self._marks_changed.set()

    async def _on_clear(self) -> None:
        self._current.clears_received += 1
        self._play_until = self._loop.time()  # the buffered audio is dropped
        released = [name for _, name in self._pending_marks]
        self._pending_marks.clear()
        self._marks_changed.set()
        for name in released:
            await self._echo_mark(name)

    async def _echo_mark(self, name: str) -> None:
        await self._send_event("mark", {"mark": {"name": name}})

    async def _play_marks(self) -> None:
        """Echo each pending mark when the playback clock reaches it."""
        while True:
            self._marks_changed.clear()
            if not self._pending_marks:
                await self._marks_changed.wait()
                continue
            due, name = self._pending_marks[0]
            delay = due - self._loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._marks_changed.wait(), delay)
                except TimeoutError:
                    pass
                continue
            self._pending_marks.popleft()
            try:
                await self._echo_mark(name)
            except ConnectionClosed:
                return

    # -- the caller's script ---------------------------------------------------------------------
    async def _wait_for_reply(
        self, turn: DialTurn, limit_secs: float, barge_in_after: float | None
    ) -> None:
        """Keep the line open with silence until the reply has been heard and has played out."""
        silence = bytes([MULAW_SILENCE]) * FRAME_BYTES
        deadline = self._loop.time() + limit_secs
        while self._loop.time() < deadline:
            await self._send_frame(silence)
            if turn.first_bot_media_at is None:
                continue
            if barge_in_after is not None:
                # talk over the answer itself, not over the acknowledgement before it
                if turn.ack_mark_at is not None and turn.answer_media_at is None:
                    continue
                began = turn.answer_media_at or turn.first_bot_media_at
                if time.time() - began >= barge_in_after:
                    return  # the caller talks over the reply
                continue
            if turn.ack_mark_at is not None and turn.answer_media_at is None:
                continue  # "One moment." was heard: the caller waits for the answer itself
            if self._loop.time() - self._play_until >= self._settle_secs:
                return
        turn.timed_out = True

    async def _speak(self, turn: DialTurn, audio: np.ndarray | Exception) -> None:
        if isinstance(audio, Exception):
            turn.error = f"{type(audio).__name__}: {audio}"
        else:
            turn.audio_secs = round(len(audio) / SAMPLE_RATE, 3)
            mulaw = mulaw_encode(audio)
            mulaw += bytes([MULAW_SILENCE]) * (-len(mulaw) % FRAME_BYTES)
            for offset in range(0, len(mulaw), FRAME_BYTES):
                await self._send_frame(mulaw[offset : offset + FRAME_BYTES])
            turn.audio_end_at = time.time()
        self._dtmf_queue.extend(self._dtmf.get(turn.index, ""))

    async def _decide(self, script: CallerScript) -> Utterance | None:
        """The caller's next turn, keeping the line open with silence while it is decided."""
        pending = asyncio.ensure_future(script.next_utterance(self._result))
        await asyncio.sleep(0)  # a fixed script answers at once: no silence frame in between
        silence = bytes([MULAW_SILENCE]) * FRAME_BYTES
        try:
            while not pending.done():
                await self._send_frame(silence)
        finally:
            pending.cancel()
        return pending.result()

    async def run(self, script: CallerScript) -> None:
        result = self._result
        tasks = [
            asyncio.create_task(self._receive(), name=f"twilio-rx-{result.call_sid}"),
            asyncio.create_task(self._play_marks(), name=f"twilio-marks-{result.call_sid}"),
        ]
        try:
            await self._ws.send(
                json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            )
            start = {
                "accountSid": result.account_sid,
                "streamSid": result.stream_sid,
                "callSid": result.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"caller": self._caller, "call_sid": result.call_sid},
            }
            await self._send_event("start", {"start": start})
            result.started_at = time.time()
            self._t0 = self._loop.time()
            await self._wait_for_reply(
                result.greeting, self._greeting_timeout_secs, self._barge_in_after_secs.get(1)
            )
            index = 0
            while (utterance := await self._decide(script)) is not None:
                index += 1
                source, audio = utterance
                turn = DialTurn(index=index, source=str(source), started_at=time.time())
                result.turns.append(turn)
                self._current = turn
                await self._speak(turn, audio)
                if turn.error is not None:  # nothing was said: no reply to wait for
                    await self._wait_for_silence(self._settle_secs)
                    continue
                await self._wait_for_reply(
                    turn, self._reply_timeout_secs, self._barge_in_after_secs.get(index + 1)
                )
            while self._dtmf_queue:  # key presses still queued after the last turn
                await self._send_frame(bytes([MULAW_SILENCE]) * FRAME_BYTES)
            self._hanging_up = True
            stop = {"accountSid": result.account_sid, "callSid": result.call_sid}
            await self._send_event("stop", {"stop": stop})
            result.closed_by = "client"
        except (_ServerHungUp, ConnectionClosed):
            result.closed_by = "server"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_for_silence(self, secs: float) -> None:
        silence = bytes([MULAW_SILENCE]) * FRAME_BYTES
        for _ in range(max(1, round(secs / FRAME_SECS))):
            await self._send_frame(silence)


def _check_utterances(utterances: list[Utterance]) -> None:
    for source, audio in utterances:
        if isinstance(audio, Exception):
            continue
        if not isinstance(audio, np.ndarray) or audio.ndim != 1 or audio.dtype.kind not in "iu":
            raise ValueError(f"{source}: expected 1-D int16 samples at 8000 Hz (or an exception)")


def _check_dtmf(dtmf: dict[int, str]) -> None:
    for index, digits in dtmf.items():
        bad = set(digits) - DTMF_DIGITS
        if bad or not digits:
            raise ValueError(f"turn {index}: DTMF digits must be 0-9, * or #, got {digits!r}")


async def dial(
    url: str,
    utterances: list[Utterance] | CallerScript,
    *,
    caller: str = "+15550100000",
    reply_timeout_secs: float = 60,
    settle_secs: float = 1.0,
    greeting_timeout_secs: float = 20,
    barge_in_after_secs: dict[int, float] | None = None,
    dtmf: dict[int, str] | None = None,
    extra_headers: HeadersLike | None = None,
    auth_token: str | None = None,
) -> DialResult:
    """Place one call to ``url`` as Twilio would stream it, and record what the caller heard.

    ``utterances`` are ``(source, samples)`` with int16 mono samples at 8000 Hz (see
    ``load_phone_audio``), or ``(source, exception)`` for a file that could not be read: that turn
    records the error and sends only silence (``settle_secs`` of it; no reply is waited for).
    A :class:`CallerScript` instead decides each turn by what the caller has heard.
    ``barge_in_after_secs[i]`` starts turn ``i`` (1-based) that many seconds after the first
    audio of the reply before it, instead of after that reply has played out. ``dtmf[i]`` is sent
    as key presses right after turn ``i``'s audio (one ``dtmf`` event per digit, 100 ms apart).

    ``auth_token``: sign the WebSocket upgrade with ``X-Twilio-Signature`` as Twilio does (the
    server requires it when it has a Twilio auth token).

    Connection failures are returned in ``DialResult.error``, not raised.
    """
    barge_in = dict(barge_in_after_secs or {})
    keys = dict(dtmf or {})
    if isinstance(utterances, list):
        _check_utterances(utterances)
        script: CallerScript = _FixedScript(utterances)
    else:
        script = utterances
    _check_dtmf(keys)
    result = DialResult(call_sid=new_sid("CA"), stream_sid=new_sid("MZ"), account_sid=new_sid("AC"))
    try:
        headers = dict(extra_headers or {})
        if auth_token:
            headers["X-Twilio-Signature"] = twilio_signature(auth_token, url)
        ws = await connect(
            url,
            additional_headers=headers,
            user_agent_header=USER_AGENT,
            compression=None,  # keeps many concurrent benchmark calls cheap
            open_timeout=10,
            close_timeout=2,
        )
    except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as e:
        result.error = f"cannot connect to {url}: {type(e).__name__}: {e}"
        return result
    try:
        call = _TwilioCall(
            ws,
            result,
            caller=caller,
            reply_timeout_secs=reply_timeout_secs,
            settle_secs=settle_secs,
            greeting_timeout_secs=greeting_timeout_secs,
            barge_in_after_secs=barge_in,
            dtmf=keys,
        )
        await call.run(script)
    finally:
        await ws.close()
    return result


async def dial_many(
    url: str,
    utterances: list[Utterance],
    *,
    calls: int,
    concurrency: int,
    scripts: list[list[Utterance]] | None = None,
    **kw: Any,
) -> list[DialResult]:
    """Place ``calls`` calls with the same script, at most ``concurrency`` at a time.

    With ``scripts``, call ``i`` speaks ``scripts[i % len(scripts)]`` instead of ``utterances``
    (a benchmark cycles through several real conversations). Keyword arguments go to ``dial``.
    Results are in the order the calls were numbered.
    """
    if calls < 1 or concurrency < 1:
        raise ValueError("calls and concurrency must be at least 1")
    if scripts is not None and not scripts:
        raise ValueError("scripts, when given, must hold at least one script")
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> DialResult:
        async with gate:
            return await dial(url, scripts[i % len(scripts)] if scripts else utterances, **kw)

    return list(await asyncio.gather(*(one(i) for i in range(calls))))


def latency_summary(results: list[DialResult]) -> dict[str, Any]:
    """Voice-to-voice latency over every caller turn that got a reply, plus failure counts."""
    turns = [t for r in results for t in r.turns]
    values = [t.voice_to_voice_secs for t in turns if t.voice_to_voice_secs is not None]
    return {
        "calls": len(results),
        "turns": len(turns),
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": round(statistics.fmean(values), 3) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "timed_out": sum(t.timed_out for t in turns),
        "greetings_timed_out": sum(r.greeting.timed_out for r in results),
        "errors": sum(t.error is not None for t in turns)
        + sum(r.error is not None for r in results),
        "closed_by_server": sum(r.closed_by == "server" for r in results),
        "max_send_lag_secs": max((r.max_send_lag_secs for r in results), default=0.0),
    }
