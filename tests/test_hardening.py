"""Who may start a call, and how the server holds up against bad input: the real server on loopback,
real HTTP (httpx, raw sockets) and WebSocket clients, a real WebRTC offer from aiortc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import TELEPHONY, agent, serve
from tests.test_console_browser import PASSWORD
from tests.test_twilio_calls import RawTwilio
from voice_agent.console.users import UserStore
from voice_agent.telephony.twilio_dialer import load_phone_audio, twilio_signature

CLIP = TELEPHONY / "spokenwoz_MUL1423_user_turn01.wav"  # "I need your assistance..."
TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "3" * 32


async def real_offer() -> tuple[RTCPeerConnection, str]:
    """A browser-like SDP offer (audio, ICE credentials, DTLS fingerprint) made by aiortc."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def sign_in(client: httpx.AsyncClient, username: str) -> str:
    """Sign in through the console's login form; the session's CSRF token for the demo."""
    page = await client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"username": username, "password": PASSWORD, "csrf_token": token, "next": "/"}
    signed = await client.post("/console/login", data=form)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    config = await client.get("/api/config")
    assert config.status_code == 200
    return config.json()["csrf_token"]


async def wait_for(predicate, secs: float, what: str):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- 1. who may start a call, and how many --------------------------------------------------------


async def test_browser_calls_need_a_console_sign_in_a_real_offer_and_a_free_line(
    small_engines, tmp_path
):
    app, store = agent(
        small_engines, tmp_path,
        max_concurrent_calls=1, demo_calls_per_minute=2, media_timeout_secs=2.0,
    )  # fmt: skip
    UserStore(store.engine).add("ada", PASSWORD, "supervisor")
    pcs = []
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        # anonymous: nothing starts, and the TURN credentials stay on the server
        page = await client.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/console/login?next=/"
        config = await client.get("/api/config")
        assert config.status_code == 401 and "ice_servers" not in config.text
        anon = await client.post("/api/offer", json={"sdp": "hello world", "type": "offer"})
        assert anon.status_code == 401
        assert store.list_calls() == []

        csrf = await sign_in(client, "ada")
        assert (await client.get("/api/config")).json()[
            "ice_servers"
        ] == app.state.settings.ice_servers
        headers = {"X-CSRF-Token": csrf}
        pc, sdp = await real_offer()
        pcs.append(pc)
        forged = await client.post("/api/offer", json={"sdp": sdp, "type": "offer"})
        assert forged.status_code == 403  # signed in, but no CSRF token: another site's form

        async def offer(body, **kw) -> httpx.Response:
            return await client.post("/api/offer", headers=headers, **kw, json=body)

        junk = [
            {"sdp": "hello world", "type": "offer"},
            {"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "type": "offer"},
            {"sdp": sdp.replace("m=audio", "m=video"), "type": "offer"},
            {"sdp": re.sub(r"a=fingerprint:[^\r\n]+\r\n", "", sdp), "type": "offer"},
            {"sdp": 123, "type": "offer"},
        ]
        for body in junk:
            r = await offer(body)
            assert r.status_code == 400, (body, r.text)
        bad_json = await client.post(
            "/api/offer", headers={**headers, "Content-Type": "application/json"}, content=b"{no"
        )
        assert bad_json.status_code == 400 and "not JSON" in bad_json.text
        huge = await offer({"sdp": "v=0\r\n" + "a=x\r\n" * 1_000_000, "type": "offer"})
        assert huge.status_code == 413
        assert store.list_calls() == []  # none of that started a call

        first = await offer({"sdp": sdp, "type": "offer"})
        assert first.status_code == 200 and first.json()["type"] == "answer"
        pc2, sdp2 = await real_offer()
        pcs.append(pc2)
        busy = await offer({"sdp": sdp2, "type": "offer"})
        assert busy.status_code == 503 and "busy" in busy.text and "Retry-After" in busy.headers
        # the offer's peer never connects: no audio arrives, and the call is ended
        await wait_for(
            lambda: store.list_calls() and store.list_calls()[0]["status"] != "in_progress",
            30, "the silent browser call to end",
        )  # fmt: skip
        (ended,) = store.list_calls()
        assert ended["end_reason"] == "media_timeout"
        await wait_for(lambda: app.state.admission.active == 0, 10, "the line to be free")
        second = await offer({"sdp": sdp2, "type": "offer"})
        assert second.status_code == 200  # a free line again, the second call this minute
        pc3, sdp3 = await real_offer()
        pcs.append(pc3)
        await wait_for(lambda: app.state.admission.active == 0, 30, "the second call to end")
        third = await offer({"sdp": sdp3, "type": "offer"})
        assert third.status_code == 429 and "too many calls" in third.text
    for pc in pcs:
        await pc.close()


async def _greeted(ws) -> bool:
    async with asyncio.timeout(30):
        async for raw in ws:
            if json.loads(raw).get("event") == "media":
                return True
    return False


async def test_media_sockets_must_be_signed_by_twilio(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path, twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN)
    async with serve(app) as host:
        url = f"ws://{host}/twilio/media"
        for headers in (
            {},
            {"X-Twilio-Signature": "forged"},
            {"X-Twilio-Signature": twilio_signature("f" * 32, url)},  # another account's
            {"X-Twilio-Signature": twilio_signature(TOKEN, f"ws://{host}/twilio/other")},
        ):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        assert store.list_calls() == []
        async with connect(
            url, additional_headers={"X-Twilio-Signature": twilio_signature(TOKEN, url)}
        ) as ws:
            call = RawTwilio(ws)
            await call.start()
            assert await _greeted(ws)
    (call_row,) = store.list_calls()
    assert call_row["caller"] == "+15550199999"


async def test_calls_beyond_capacity_are_refused_and_a_silent_socket_is_ended(
    small_engines, tmp_path
):
    app, store = agent(
        small_engines, tmp_path, twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN,
        public_url="https://voice.example.com", max_concurrent_calls=1, media_timeout_secs=3.0,
    )  # fmt: skip
    async with serve(app) as host:
        url = f"ws://{host}/twilio/media"
        signed = {
            "X-Twilio-Signature": twilio_signature(TOKEN, "wss://voice.example.com/twilio/media")
        }
        async with connect(url, additional_headers=signed) as silent:
            first = RawTwilio(silent)
            await first.start()  # then nothing: no media at all
            assert await _greeted(silent)
            async with connect(url, additional_headers=signed) as second:
                await RawTwilio(second).start()
                with pytest.raises(ConnectionClosed) as closed:
                    async for _ in second:
                        pass
                assert closed.value.rcvd.code == 1013 and "busy" in closed.value.rcvd.reason
            # the voice webhook says so before a stream is even tried
            form = {"CallSid": "CA" + "b" * 32, "From": "+15551230000"}
            webhook = "https://voice.example.com/twilio/voice"
            async with httpx.AsyncClient(base_url=f"http://{host}") as client:
                twiml = await client.post(
                    "/twilio/voice",
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature(TOKEN, webhook, form)},
                )
            assert twiml.status_code == 200 and "lines are busy" in twiml.text
            assert "<Hangup" in twiml.text and "<Stream" not in twiml.text
            started = time.monotonic()
            with contextlib.suppress(ConnectionClosed):
                async for _ in silent:  # the server ends the silent call
                    pass
            assert time.monotonic() - started < 15
    record = store.get_call_by_external_id(first.call_sid)
    assert record["status"] == "completed" and record["end_reason"] == "media_timeout"
    assert any(t["kind"] == "greeting" for t in record["turns"])  # what was said is kept
    assert len(store.list_calls()) == 1


# -- 2. a malformed message is dropped, not the call ----------------------------------------------


async def test_malformed_messages_after_start_are_dropped_and_the_call_goes_on(
    small_engines, tmp_path
):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host, connect(f"ws://{host}/twilio/media") as ws:
        call = RawTwilio(ws)
        listener = asyncio.create_task(call.listen())
        await call.start()
        await asyncio.wait_for(call.heard_bot.wait(), 30)
        for bad in (
            {"event": "media", "media": "abc"},
            {"event": "media", "media": [1, 2]},
            {"event": "dtmf", "dtmf": None},
            {"event": "dtmf", "dtmf": "5"},
            {"event": "mark", "mark": 7},
        ):
            await call.send(bad)
        await ws.send(b"\x00\x01 binary")
        await asyncio.sleep(1.0)
        assert call.closed is None and not listener.done()  # still connected
        greeted = call.bot_media
        await call.speak(load_phone_audio(CLIP), tail_secs=6.0)
        assert call.bot_media > greeted  # answered after all that
        await call.send({"event": "stop", "streamSid": call.stream_sid, "stop": {}})
        await ws.close()
        await listener
    record = store.get_call_by_external_id(call.call_sid)
    assert record["end_reason"] == "caller_hung_up"
    assert any(t["user_text"] for t in record["turns"])


async def test_a_socket_that_keeps_sending_garbage_is_closed_and_the_record_says_why(
    small_engines, tmp_path
):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host, connect(f"ws://{host}/twilio/media") as ws:
        call = RawTwilio(ws)
        listener = asyncio.create_task(call.listen())
        await call.start()
        await asyncio.wait_for(call.heard_bot.wait(), 30)
        with contextlib.suppress(ConnectionClosed):
            for _ in range(40):
                await call.send({"event": "dtmf", "dtmf": None})
        await asyncio.wait_for(listener, 30)
    record = await wait_for(
        lambda: (r := store.get_call_by_external_id(call.call_sid))["status"] != "in_progress"
        and r,
        10, "the record to close",
    )  # fmt: skip
    assert record["end_reason"] == "protocol_error"


@pytest.mark.parametrize(
    "first",
    [b"\x00binary first frame", '{"event": "start", "start": "abc"}',
     '{"event": "start", "start": {"streamSid": "MZ1", "customParameters": "x"}}'],
)  # fmt: skip
async def test_a_bad_first_frame_is_closed_with_a_reason(small_engines, tmp_path, first):
    app, store = agent(small_engines, tmp_path)
    async with serve(app) as host, connect(f"ws://{host}/twilio/media") as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0"}))
        await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason
        async with httpx.AsyncClient(base_url=f"http://{host}") as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
    assert store.list_calls() == []


# -- 5. secrets and surface -----------------------------------------------------------------------


async def _raw_request(host: str, head: str, body: bytes = b"") -> bytes:
    """Send a request head (and the first bytes of its body), then read the answer."""
    address, port = host.split(":")
    reader, writer = await asyncio.open_connection(address, int(port))
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


async def test_no_public_api_map_private_files_and_no_unbounded_bodies(small_engines, tmp_path):
    data = tmp_path / "data"
    app, store = agent(small_engines, data, twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN)
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
        # 100 MB announced, unsigned: refused at once, without waiting for the body
        answer = await _raw_request(
            host,
            f"POST /twilio/voice HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 100000000\r\n",
            b"CallSid=CA" + b"x" * 1000,
        )
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]
        # signed but oversized: 413 before the body is read
        answer = await _raw_request(
            host,
            f"POST /twilio/voice HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "X-Twilio-Signature: anything\r\nContent-Length: 100000000\r\n",
            b"CallSid=CA",
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    database = Path(store.engine.url.database)
    assert database.parent == data and stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


# -- 6. a data folder the server cannot write -----------------------------------------------------


@contextlib.contextmanager
def read_only_folder(path: Path):
    """``path`` read-only for this process: chmod for a normal user, a read-only bind mount for
    root (whom permissions do not stop)."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)
        return
    source = path.with_name(path.name + "-source")
    source.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", source, path], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=False)


def test_a_read_only_data_folder_fails_at_once_naming_the_path(tmp_path):
    with read_only_folder(tmp_path / "ro") as folder:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "voice_agent.cli", "serve", "--port", "0"],
            env=dict(os.environ, VOICE_AGENT_DATA_DIR=str(folder), VOICE_AGENT_DATABASE_URL=""),
            capture_output=True,
            text=True,
            timeout=120,
        )
        secs = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert str(folder) in error and "read-only" in error, proc.stderr
    assert "Traceback" not in proc.stderr
    assert secs < 30  # before any model is loaded
