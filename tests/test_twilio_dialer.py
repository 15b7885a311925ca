"""The Twilio dialer against a small real WebSocket bot: protocol, pacing, playback and marks.

The bot checks every message the dialer sends as a Twilio Media Streams server would see it, sends a
short greeting, and answers each caller utterance (speech energy, then silence) with a tone and a
mark. No models are loaded; the whole file runs in a few seconds of real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from voice_agent.speech.audio import AudioDecodeError
from voice_agent.telephony.twilio_dialer import (
    FRAME_BYTES,
    DialResult,
    DialTurn,
    dial,
    dial_many,
    latency_summary,
    load_phone_audio,
    mulaw_decode,
    mulaw_encode,
)

RATE = 8000
SETTLE = 0.2
SPEECH_RMS = 500.0  # a 20 ms frame louder than this is the caller speaking
END_OF_SPEECH_FRAMES = 3  # this many quiet frames after speech: the caller has finished


def tone(secs: float, freq: float = 300.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(secs * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


SPEECH = tone(0.4)


@dataclass
class Bot:
    """A minimal Media Streams server: validates the caller's stream and replies with tones."""

    greeting_secs: float = 0.3
    reply_secs: float = 0.5
    # called instead of the default reply (tone + mark) when the caller's utterance ends
    on_utterance: Callable[[Bot, ServerConnection, int], Awaitable[None]] | None = None
    problems: list[str] = field(default_factory=list)
    start: dict = field(default_factory=dict)
    media_arrivals: list[float] = field(default_factory=list)  # loop time of each media frame
    speech_ends: list[float] = field(default_factory=list)
    marks_sent: dict[str, float] = field(default_factory=dict)
    marks_echoed: dict[str, float] = field(default_factory=dict)
    digits: list[str] = field(default_factory=list)
    stopped: bool = False
    stream_sid: str = ""

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    async def send_tone(self, ws: ServerConnection, secs: float, mark: str | None) -> None:
        """Buffer ``secs`` of a 600 Hz tone at once (as a TTS burst would), then a mark."""
        mulaw = mulaw_encode(tone(secs, freq=600.0))
        for offset in range(0, len(mulaw), FRAME_BYTES):
            payload = base64.b64encode(mulaw[offset : offset + FRAME_BYTES]).decode()
            await ws.send(
                json.dumps(
                    {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
                )
            )
        if mark is not None:
            await self.send_mark(ws, mark)

    async def send_mark(self, ws: ServerConnection, name: str) -> None:
        self.marks_sent[name] = asyncio.get_running_loop().time()
        await ws.send(
            json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        )

    async def handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            connected = json.loads(await ws.recv())
            self.check(
                connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"},
                f"connected: {connected}",
            )
            start = json.loads(await ws.recv())
            self.start = start
            body = start.get("start", {})
            self.stream_sid = body.get("streamSid", "")
            self.check(start.get("event") == "start", "second message is not start")
            self.check(start.get("sequenceNumber") == "1", "start is not sequence 1")
            self.check(start.get("streamSid") == self.stream_sid, "start streamSid mismatch")
            for key, prefix in (("streamSid", "MZ"), ("callSid", "CA"), ("accountSid", "AC")):
                sid = body.get(key, "")
                self.check(bool(re.fullmatch(prefix + "[0-9a-f]{32}", sid)), f"{key}={sid!r}")
            self.check(body.get("tracks") == ["inbound"], "tracks")
            self.check(
                body.get("mediaFormat")
                == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "mediaFormat",
            )
            self.check(body.get("customParameters", {}).get("caller") is not None, "caller")
            if self.greeting_secs:
                await self.send_tone(ws, self.greeting_secs, "greeting")

            seq, chunk, last_ts = 1, 0, None
            speaking, quiet, utterances = False, 0, 0
            async for raw in ws:
                message = json.loads(raw)
                seq += 1
                self.check(message.get("sequenceNumber") == str(seq), f"sequence at {message}")
                self.check(message.get("streamSid") == self.stream_sid, "streamSid")
                event = message.get("event")
                if event == "media":
                    self.media_arrivals.append(loop.time())
                    media = message["media"]
                    chunk += 1
                    self.check(media.get("track") == "inbound", "media track")
                    self.check(media.get("chunk") == str(chunk), f"chunk {media.get('chunk')}")
                    ts = int(media["timestamp"])
                    self.check(last_ts is None or ts - last_ts == 20, f"timestamp step at {ts}")
                    last_ts = ts
                    payload = base64.b64decode(media["payload"], validate=True)
                    self.check(len(payload) == FRAME_BYTES, f"payload of {len(payload)} bytes")
                    pcm = mulaw_decode(payload).astype(np.float64)
                    loud = float(np.sqrt(np.mean(pcm**2))) > SPEECH_RMS
                    if loud:
                        speaking, quiet = True, 0
                    elif speaking:
                        quiet += 1
                        if quiet >= END_OF_SPEECH_FRAMES:
                            speaking = False
                            utterances += 1
                            self.speech_ends.append(loop.time())
                            if self.on_utterance is not None:
                                await self.on_utterance(self, ws, utterances)
                            else:
                                await self.send_tone(ws, self.reply_secs, f"reply-{utterances}")
                elif event == "mark":
                    self.marks_echoed[message["mark"]["name"]] = loop.time()
                elif event == "dtmf":
                    self.check(message["dtmf"].get("track") == "inbound_track", "dtmf track")
                    self.digits.append(message["dtmf"]["digit"])
                elif event == "stop":
                    self.stopped = True
                    self.check(message["stop"].get("callSid") == body.get("callSid"), "stop sid")
                else:
                    self.problems.append(f"unexpected event {event!r}")
        except ConnectionClosed:
            pass
        except Exception as e:  # surfaced by the test through ``problems``
            self.problems.append(f"bot crashed: {type(e).__name__}: {e}")


async def call_bot(bot: Bot, utterances, **kw) -> DialResult:
    async with serve(bot.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        kw.setdefault("settle_secs", SETTLE)
        kw.setdefault("reply_timeout_secs", 5)
        kw.setdefault("greeting_timeout_secs", 5)
        return await dial(f"ws://127.0.0.1:{port}/twilio/media", utterances, **kw)


# -- G.711 ---------------------------------------------------------------------------------------


def test_mulaw_round_trip_is_close():
    x = tone(0.5, freq=440.0, amplitude=12000.0)
    y = mulaw_decode(mulaw_encode(x)).astype(np.float64)
    noise = y - x
    snr_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr_db > 30  # G.711 mu-law gives ~38 dB on a full-scale-ish sine
    assert np.max(np.abs(noise)) <= 12000 / 16  # within one step of the top segment used


def test_mulaw_known_codes_and_table():
    # -1 is 0x7E: audioop (Sun's G.711 reference) rounds a negative magnitude up
    assert mulaw_encode(np.array([0, 32767, -32768, -1], dtype=np.int16)) == b"\xff\x80\x00\x7e"
    every_code = bytes(range(256))
    decoded = mulaw_decode(every_code)
    assert decoded.dtype == np.int16
    assert decoded[0xFF] == 0 and decoded[0x80] == 32124 and decoded[0x00] == -32124
    # every code survives decode -> encode, except 0x7F ("negative zero", which becomes 0xFF)
    again = mulaw_encode(decoded)
    assert [i for i in range(256) if again[i] != i] == [0x7F]


# -- a call ----------------------------------------------------------------------------------


async def test_call_protocol_pacing_latency_and_marks():
    bot = Bot()
    result = await call_bot(bot, [("a.wav", SPEECH), ("b.wav", SPEECH)], dtmf={2: "0"})

    assert bot.problems == []
    assert result.closed_by == "client" and result.error is None
    assert result.protocol_errors == []
    assert bot.stopped
    assert bot.start["start"]["callSid"] == result.call_sid
    assert bot.start["streamSid"] == result.stream_sid
    assert bot.digits == ["0"]

    # the greeting was heard and played out
    assert result.greeting.first_bot_media_at is not None
    assert result.greeting.bot_audio_secs == pytest.approx(0.3, abs=0.021)
    assert result.greeting.marks_received == ["greeting"]
    assert result.greeting_secs is not None and result.greeting_secs >= 0

    # frames paced in real time: N frames take N * 20 ms (+-15 %)
    arrivals = bot.media_arrivals
    assert len(arrivals) > 60
    span = arrivals[-1] - arrivals[0]
    assert span == pytest.approx((len(arrivals) - 1) * 0.02, rel=0.15)
    assert result.max_send_lag_secs < 0.25

    assert [t.index for t in result.turns] == [1, 2]
    for turn in result.turns:
        assert turn.error is None and not turn.timed_out
        assert turn.audio_secs == pytest.approx(0.4)
        assert turn.voice_to_voice_secs is not None and 0 < turn.voice_to_voice_secs < 1.0
        assert turn.bot_audio_secs == pytest.approx(0.5, abs=0.021)
        assert turn.marks_received == [f"reply-{turn.index}"]
        assert np.abs(turn.bot_samples()).max() > 5000  # the tone, decoded to PCM

    # each mark came back only once the audio before it had played (0.5 s of it)
    for name, secs in (("greeting", 0.3), ("reply-1", 0.5), ("reply-2", 0.5)):
        delay = bot.marks_echoed[name] - bot.marks_sent[name]
        assert secs - 0.03 <= delay <= secs + 0.25, (name, delay)

    summary = latency_summary([result])
    assert summary["count"] == 2 and summary["timed_out"] == 0 and summary["errors"] == 0
    assert summary["min"] <= summary["p50"] <= summary["p95"] <= summary["max"]


async def test_clear_releases_pending_marks_at_once():
    async def long_reply_then_clear(bot: Bot, ws: ServerConnection, n: int) -> None:
        await bot.send_tone(ws, 2.0, "long")
        await ws.send("this is not json")  # malformed messages are recorded, not fatal
        await ws.send(json.dumps({"event": "bogus", "streamSid": bot.stream_sid}))

        async def clear_soon() -> None:
            await asyncio.sleep(0.2)
            bot.marks_sent["clear"] = asyncio.get_running_loop().time()
            await ws.send(json.dumps({"event": "clear", "streamSid": bot.stream_sid}))

        asyncio.get_running_loop().create_task(clear_soon())

    bot = Bot(greeting_secs=0.1, on_utterance=long_reply_then_clear)
    result = await call_bot(bot, [("a.wav", SPEECH)])

    assert bot.problems == []
    turn = result.turns[0]
    assert turn.clears_received == 1 and turn.marks_received == ["long"]
    # released by the clear (~0.2 s in), not after the 2 s of audio had played
    assert bot.marks_echoed["long"] - bot.marks_sent["clear"] < 0.15
    assert bot.marks_echoed["long"] - bot.marks_sent["long"] < 0.5
    # the cleared audio stopped "playing", so the turn ended well before 2 s of reply
    assert turn.first_bot_media_at is not None and not turn.timed_out
    assert len(result.protocol_errors) == 2
    assert "not JSON" in result.protocol_errors[0] and "bogus" in result.protocol_errors[1]


async def test_barge_in_starts_next_turn_early():
    bot = Bot(greeting_secs=0.1, reply_secs=1.0)
    result = await call_bot(
        bot, [("a.wav", SPEECH), ("b.wav", SPEECH)], barge_in_after_secs={2: 0.2}
    )

    assert bot.problems == []
    first, second = result.turns
    assert first.first_bot_media_at is not None and second.started_at is not None
    lead = second.started_at - first.first_bot_media_at
    assert 0.2 <= lead < 0.6  # talked over the 1 s reply instead of waiting it out
    assert second.voice_to_voice_secs is not None
    assert result.closed_by == "client"


async def test_server_hang_up_keeps_what_was_recorded():
    async def reply_then_hang_up(bot: Bot, ws: ServerConnection, n: int) -> None:
        await bot.send_tone(ws, 0.2, None)
        await asyncio.sleep(0.1)
        await ws.close()

    bot = Bot(greeting_secs=0.1, on_utterance=reply_then_hang_up)
    result = await call_bot(bot, [("a.wav", SPEECH), ("b.wav", SPEECH), ("c.wav", SPEECH)])

    assert result.closed_by == "server" and result.error is None
    assert len(result.turns) == 1
    assert result.turns[0].voice_to_voice_secs is not None
    assert result.turns[0].bot_audio_secs == pytest.approx(0.2, abs=0.021)
    assert not bot.stopped


async def test_unreadable_file_turn_records_its_error(tmp_path: Path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioDecodeError) as caught:
        load_phone_audio(missing)
    bot = Bot(greeting_secs=0.1)
    result = await call_bot(bot, [(str(missing), caught.value), ("b.wav", SPEECH)])

    assert bot.problems == []
    bad, good = result.turns
    assert bad.error is not None and "not found" in bad.error
    assert bad.audio_secs == 0 and bad.voice_to_voice_secs is None
    assert good.error is None and good.voice_to_voice_secs is not None
    assert len(bot.speech_ends) == 1  # only silence was sent for the unreadable file
    summary = latency_summary([result])
    assert summary["errors"] == 1 and summary["count"] == 1


def test_load_phone_audio_resamples_to_8k(tmp_path: Path):
    path = tmp_path / "hello.wav"
    t = np.arange(16000) / 16000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes())
    samples = load_phone_audio(path)
    assert samples.dtype == np.int16 and abs(len(samples) - 8000) <= 10


async def test_dial_many_and_connection_failure():
    bots: list[Bot] = []

    async def one_bot_per_call(ws: ServerConnection) -> None:
        bots.append(Bot(greeting_secs=0.1, reply_secs=0.2))
        await bots[-1].handler(ws)

    async with serve(one_bot_per_call, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        results = await dial_many(
            f"ws://127.0.0.1:{port}/twilio/media",
            [("a.wav", SPEECH)],
            calls=3,
            concurrency=2,
            settle_secs=SETTLE,
            reply_timeout_secs=5,
        )
    assert len(bots) == 3 and all(b.problems == [] for b in bots)
    assert len({r.call_sid for r in results}) == 3
    assert all(r.closed_by == "client" and r.turns[0].voice_to_voice_secs for r in results)
    assert latency_summary(results)["count"] == 3

    refused = await dial(f"ws://127.0.0.1:{port}/twilio/media", [("a.wav", SPEECH)])
    assert refused.error is not None and refused.closed_by is None


def test_latency_summary_percentiles():
    def result_with(*latencies: float | None) -> DialResult:
        r = DialResult(call_sid="CA" + "0" * 32, stream_sid="MZ" + "0" * 32)
        for i, v in enumerate(latencies, start=1):
            turn = DialTurn(index=i, source="x")
            if v is not None:
                turn.audio_end_at, turn.first_bot_media_at = 100.0, 100.0 + v
            else:
                turn.timed_out = True
            r.turns.append(turn)
        return r

    summary = latency_summary([result_with(0.5, 1.0, None), result_with(1.5, 2.0)])
    assert summary["count"] == 4 and summary["timed_out"] == 1
    assert summary["p50"] == pytest.approx(1.25)
    assert summary["p95"] == pytest.approx(1.925)
    assert summary["min"] == 0.5 and summary["max"] == 2.0
    assert latency_summary([])["p50"] is None
