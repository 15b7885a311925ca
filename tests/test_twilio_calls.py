"""Phone calls end to end: a real server on loopback, the Twilio-faithful dialer, real 8 kHz
caller speech, and the real pipeline (small LLM for mechanics). Bad input from the socket is
logged and dropped or the socket closed, the call record keeps what was said, and the server and
other calls go on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import time

import numpy as np
from fastapi import FastAPI, Request
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TELEPHONY, agent, serve
from voice_agent.flows import prompts
from voice_agent.telephony.twilio_dialer import (
    dial,
    dial_many,
    load_phone_audio,
    mulaw_encode,
    new_sid,
)

CLIP = TELEPHONY / "spokenwoz_MUL1423_user_turn01.wav"  # "I need your assistance..."
CLIP2 = TELEPHONY / "spokenwoz_MUL1423_user_turn03.wav"


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) if samples.size else 0.0


async def test_a_phone_call_is_answered_aloud_and_stored(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host:
        result = await dial(f"ws://{host}/twilio/media", [(str(CLIP), load_phone_audio(CLIP))])
    assert result.error is None and result.closed_by == "client"
    assert result.greeting.bot_audio_secs > 2  # the greeting was heard
    (turn,) = result.turns
    assert 0 <= turn.voice_to_voice_secs < 15  # 0.0: replying in the clip's trailing silence
    assert turn.bot_audio_secs > 0.5 and rms(turn.bot_samples()) > 300
    # playback marks sent after each reply, echoed (the caller may pause mid-sentence and be
    # answered twice, so the reply's turn number can vary)
    assert any(name.startswith("turn-") for name in turn.marks_received)
    call = store.get_call_by_external_id(result.call_sid)
    assert call["transport"] == "twilio" and call["caller"] == "+15550100000"
    assert call["status"] == "completed" and call["end_reason"] == "caller_hung_up"
    said = [t for t in call["turns"] if t["user_text"]]
    heard = " ".join(t["user_text"] for t in said).lower()
    # (cut at the caller's pause, Whisper tiny hears "assistance" or "assistant")
    assert "assist" in heard and "train" in heard
    reply = said[-1]
    assert reply["bot_text"].strip()
    st = reply["stages"]
    assert st["first_audio_out"] <= st["bot_done"]
    heard_marks = [
        t["stages"]["reply_heard"] for t in call["turns"] if "reply_heard" in t["stages"]
    ]
    assert heard_marks  # at least the greeting's playback was confirmed by a mark


async def test_barge_in_sends_clear_and_marks_the_turn(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path, llm_max_tokens=80)
    utterances = [(str(p), load_phone_audio(p)) for p in (CLIP, CLIP2)]
    async with serve(app) as host:
        # the first turn over the greeting: long enough to be cut off whatever the replies are
        result = await dial(f"ws://{host}/twilio/media", utterances, barge_in_after_secs={1: 0.8})
    assert result.turns[0].clears_received >= 1  # Twilio was told to drop the rest at once
    assert result.turns[1].voice_to_voice_secs is not None
    call = store.get_call_by_external_id(result.call_sid)
    assert any(t["interrupted"] for t in call["turns"])


async def test_three_concurrent_calls_all_complete(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host:
        results = await dial_many(
            f"ws://{host}/twilio/media", [(str(CLIP), load_phone_audio(CLIP))],
            calls=3, concurrency=3, reply_timeout_secs=60,
        )  # fmt: skip
    assert len({r.call_sid for r in results}) == 3
    for result in results:
        assert result.error is None, result.error
        assert result.turns[0].voice_to_voice_secs is not None
        assert result.turns[0].bot_audio_secs > 0.5
    calls = [store.get_call_by_external_id(r.call_sid) for r in results]
    assert all(c["status"] == "completed" for c in calls)
    assert all(any(t["user_text"] for t in c["turns"]) for c in calls)


class RawTwilio:
    """Twilio's socket, written by hand, for the messages Twilio itself would never send."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.stream_sid = new_sid("MZ")
        self.call_sid = new_sid("CA")
        self.seq = 0
        self.bot_media = 0
        self.heard_bot = asyncio.Event()
        self.greeted = asyncio.Event()  # the greeting's audio is sent: its mark came after it
        self.closed: int | None = None

    async def send(self, message: dict | str) -> None:
        self.seq += 1
        if isinstance(message, dict):
            message = json.dumps(dict(message, sequenceNumber=str(self.seq)))
        await self.ws.send(message)

    async def start(self) -> None:
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0"}))
        await self.send(
            {
                "event": "start",
                "streamSid": self.stream_sid,
                "start": {
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "accountSid": new_sid("AC"),
                    "customParameters": {"caller": "+15550199999"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    def media(self, mulaw: bytes) -> dict:
        return {
            "event": "media",
            "streamSid": self.stream_sid,
            "media": {"track": "inbound", "payload": base64.b64encode(mulaw).decode()},
        }

    async def speak(self, samples: np.ndarray, tail_secs: float = 2.0) -> None:
        pcm = np.concatenate([samples, np.zeros(int(8000 * tail_secs), dtype=np.int16)])
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for n, i in enumerate(range(0, len(pcm), 160)):
            await self.send(self.media(mulaw_encode(pcm[i : i + 160])))
            await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.02 - loop.time()))

    async def listen(self) -> None:
        try:
            async for raw in self.ws:
                event = json.loads(raw).get("event")
                if event == "media":
                    self.bot_media += 1
                    self.heard_bot.set()
                elif event == "mark":
                    self.greeted.set()
        except ConnectionClosed as e:
            self.closed = e.rcvd.code if e.rcvd else None
        else:
            self.closed = self.ws.close_code


async def test_garbage_mid_call_is_dropped_and_the_call_goes_on(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host, connect(f"ws://{host}/twilio/media") as ws:
        call = RawTwilio(ws)
        listener = asyncio.create_task(call.listen())
        await call.start()
        await asyncio.wait_for(call.greeted.wait(), 30)
        greeting_media = call.bot_media
        await call.send("{this is not json")
        await call.send({"event": "surprise", "streamSid": call.stream_sid})
        await call.send({"event": "media", "media": {"payload": "%%% not base64 %%%"}})
        await call.send({"event": "media", "media": {}})
        await call.send(call.media(bytes(20000)))  # over the 16 KB message limit
        await call.send("[]")
        await call.speak(load_phone_audio(CLIP), tail_secs=6.0)
        assert call.bot_media > greeting_media  # the caller was answered after all that
        await call.send({"event": "stop", "streamSid": call.stream_sid, "stop": {}})
        await ws.close()
        await listener
    record = store.get_call_by_external_id(call.call_sid)
    assert any("train" in t["user_text"].lower() for t in record["turns"])


async def test_a_socket_dropped_mid_reply_keeps_the_record_and_the_server(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path, llm_max_tokens=80)
    async with serve(app) as host:
        async with connect(f"ws://{host}/twilio/media") as ws:
            call = RawTwilio(ws)
            listener = asyncio.create_task(call.listen())
            await call.start()
            await asyncio.wait_for(call.greeted.wait(), 30)
            await call.speak(load_phone_audio(CLIP), tail_secs=0.0)
            before = call.bot_media  # the greeting has been sent by now; what follows is the reply
            deadline = time.monotonic() + 30
            # past the acknowledgement ("Okay.", ~25 frames): the answer itself is playing
            while call.bot_media <= before + 60 and time.monotonic() < deadline:
                await call.send(call.media(b"\xff" * 160))
                await asyncio.sleep(0.02)
            assert call.bot_media > before + 60  # the reply is playing...
        await listener  # ...and the caller is gone without a stop
        # the server goes on: another call is answered
        result = await dial(f"ws://{host}/twilio/media", [(str(CLIP2), load_phone_audio(CLIP2))])
        assert result.turns[0].voice_to_voice_secs is not None
    for _ in range(50):
        record = store.get_call_by_external_id(call.call_sid)
        if record["status"] != "in_progress":
            break
        await asyncio.sleep(0.1)
    assert record["status"] == "completed" and record["end_reason"] == "caller_hung_up"
    assert any("train" in t["user_text"].lower() for t in record["turns"])


async def test_a_flood_and_a_huge_message_close_only_their_own_socket(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path)
    async with serve(app, ws_max_size=65536) as host:
        async with connect(f"ws://{host}/twilio/media", max_size=None) as ws:
            flood = RawTwilio(ws)
            listener = asyncio.create_task(flood.listen())
            await flood.start()
            # the call has begun (its greeting plays) before the flood: a socket that dies
            # before the server has read "start" leaves no call to look up
            await asyncio.wait_for(flood.heard_bot.wait(), 30)
            frame = json.dumps(flood.media(b"\x7f" * 160))
            with contextlib.suppress(ConnectionClosed):
                for _ in range(8000):  # 160 s of audio as fast as the socket takes it
                    await ws.send(frame)
            with contextlib.suppress(ConnectionClosed):
                await ws.send("x" * 200_000)  # beyond the server's WebSocket size limit
            await asyncio.wait_for(listener, 30)
        assert flood.closed is not None  # the server closed this socket
        result = await dial(f"ws://{host}/twilio/media", [(str(CLIP), load_phone_audio(CLIP))])
        assert result.turns[0].voice_to_voice_secs is not None  # others go on
    assert store.get_call_by_external_id(flood.call_sid)["status"] != "in_progress"


async def test_pressing_0_transfers_to_a_human_through_the_rest_api(small_engines, tmp_path):
    """Twilio's REST API is a cloud service: a local server follows its published contract."""
    rest = FastAPI()
    updates: list[tuple[str, dict, str]] = []

    @rest.post("/2010-04-01/Accounts/{account}/Calls/{call}.json")
    async def update_call(account: str, call: str, request: Request):
        updates.append((call, dict(await request.form()), request.headers.get("authorization")))
        return {"sid": call, "status": "in-progress"}

    async with serve(rest) as rest_host:
        app, store = agent(
            small_engines, tmp_path,
            twilio_account_sid="AC" + "2" * 32, twilio_auth_token="t" * 32,
            twilio_transfer_number="+15557654321",
            twilio_api_base_url=f"http://{rest_host}",
        )  # fmt: skip
        async with serve(app) as host:
            result = await dial(
                f"ws://{host}/twilio/media", [(str(CLIP), load_phone_audio(CLIP))],
                dtmf={1: "0"}, reply_timeout_secs=30, auth_token="t" * 32,
            )  # fmt: skip
    assert len(updates) == 1, updates  # the transfer, and no hang-up of the transferred call
    call_sid, form, auth = updates[0]
    assert call_sid == result.call_sid and auth.startswith("Basic ")
    assert "<Dial>+15557654321</Dial>" in form["Twiml"]
    record = store.get_call_by_external_id(result.call_sid)
    assert record["end_reason"] == "transferred"
    assert any(prompts.TRANSFERRING in t["bot_text"] for t in record["turns"])


async def test_pressing_0_without_a_transfer_number_is_answered(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host:
        result = await dial(
            f"ws://{host}/twilio/media", [(str(CLIP), load_phone_audio(CLIP))],
            dtmf={1: "0"}, reply_timeout_secs=30,
        )  # fmt: skip
    record = store.get_call_by_external_id(result.call_sid)
    assert any(prompts.CANNOT_TRANSFER in t["bot_text"] for t in record["turns"]), [
        (t["user_text"], t["bot_text"]) for t in record["turns"]
    ]


async def test_voice_agent_dial_reports_latency_and_the_reply_from_the_record(
    small_engines, tmp_path
):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voice_agent.cli", "dial",
            "--url", f"ws://{host}/twilio/media", "--audio", str(CLIP), "--json",
            env=dict(os.environ, VOICE_AGENT_DATABASE_URL=f"sqlite:///{tmp_path / 'calls.db'}"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    (result,) = report["results"]
    (turn,) = result["turns"]
    assert turn["voice_to_voice_secs"] > 0 and turn["bot_audio_secs"] > 0.5
    assert "train" in turn["transcript"].lower() and turn["reply_text"]
    assert report["summary"]["count"] == 1 and report["summary"]["p50"] > 0
