"""What the service manager, the load balancer and the scraper see: ``/readyz``, ``/metrics``,
and a drain that admits no new call and ends the last ones with a goodbye at its deadline.

These run no model (the server is given engines it never calls); the drain of a real server
process mid-call is in tests/test_scale_out.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from tests.conftest import serve, small_settings
from tests.postgres import free_port
from voice_agent import metrics
from voice_agent.call.admission import CallAdmission, CallRefused
from voice_agent.engines import Engines
from voice_agent.records import TurnKind, TurnRecord
from voice_agent.server import create_app


def server(tmp_path, **overrides):
    settings = small_settings(tmp_path, max_concurrent_calls=2, **overrides)
    return create_app(settings, engines=Engines(settings, None, None, None, {"llm": "none"}))  # type: ignore[arg-type]


def test_readyz_says_why_no_call_should_come_here(tmp_path):
    app = server(tmp_path)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}

        admission: CallAdmission = app.state.admission
        slots = [admission.admit("twilio"), admission.admit("twilio")]
        full = client.get("/readyz")
        assert full.status_code == 503 and full.json()["problems"] == [
            "at capacity: 2 calls in progress"
        ]
        slots[0].release()
        assert client.get("/readyz").status_code == 200

        admission.start_draining()
        draining = client.get("/readyz")
        assert draining.status_code == 503
        assert draining.json()["problems"] == ["draining: the server is shutting down"]
        assert client.get("/healthz").json()["draining"] is True  # alive all the same
        slots[1].release()


async def test_readyz_checks_the_model_server(tmp_path):
    down = server(tmp_path, llm_backend="openai", llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    with TestClient(down) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "unreachable: ConnectError" in answer.json()["problems"][0]

    model_server = FastAPI()  # a stand-in that answers the OpenAI model list, on loopback

    @model_server.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "small", "object": "model"}]}

    async with serve(model_server) as model_host:
        up = server(tmp_path / "up", llm_backend="openai", llm_base_url=f"http://{model_host}/v1")
        async with serve(up) as host, httpx.AsyncClient() as client:
            answer = await client.get(f"http://{host}/readyz")
    assert answer.json() == {"ready": True, "problems": []}


def test_metrics_count_calls_refusals_and_turn_latency(tmp_path):
    app = server(tmp_path)
    turn = TurnRecord(index=1, kind=TurnKind.REPLY, error_code="answer_slow")
    turn.stages = {"speech_end": 10.0, "stt_done": 10.4, "answer_audio_out": 11.2}
    metrics.observe_turn(turn)
    metrics.observe_call_end("completed", "caller_hung_up")
    with TestClient(app) as client:
        admission: CallAdmission = app.state.admission
        slot = admission.admit("twilio")
        admission.admit("twilio")
        with pytest.raises(CallRefused):
            admission.admit("twilio")
        slot.release()
        scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert "voice_agent_calls_active 1.0" in text
    assert "voice_agent_calls_max 2.0" in text
    assert "voice_agent_draining 0.0" in text
    assert 'voice_agent_calls_refused_total{reason="at_capacity"} 1.0' in text
    assert 'voice_agent_turn_latency_seconds_bucket{le="1.25",span="voice_to_answer"}' in text
    assert 'voice_agent_turn_latency_seconds_count{span="stt"}' in text
    assert 'voice_agent_turn_errors_total{code="answer_slow"}' in text
    assert 'voice_agent_calls_ended_total{end_reason="caller_hung_up",status="completed"}' in text


async def test_a_drain_waits_for_calls_then_says_goodbye_to_the_last():
    admission = CallAdmission(3, per_client_per_minute=10)
    assert await admission.drain(1.0) == 0  # nothing in progress: done at once
    with pytest.raises(CallRefused) as refused:
        admission.admit("twilio")
    assert refused.value.code == "draining"

    admission = CallAdmission(3, per_client_per_minute=10)
    quick, slow = admission.admit("twilio"), admission.admit("webrtc")
    goodbyes: list[str] = []

    async def say_goodbye() -> None:  # the call hangs up a moment after its goodbye
        goodbyes.append("slow")
        asyncio.get_running_loop().call_later(0.2, slow.release)

    async def cannot_say_it() -> None:  # a call whose pipeline is gone: the others go on
        asyncio.get_running_loop().call_later(0.1, broken.release)
        raise RuntimeError("pipeline already stopped")

    broken = admission.admit("twilio")
    broken.close_early = cannot_say_it
    slow.close_early = say_goodbye
    asyncio.get_running_loop().call_later(0.1, quick.release)  # ends on its own, in time
    ended = await admission.drain(0.5, goodbye_secs=2.0)
    assert ended == 2 and goodbyes == ["slow"]
    assert admission.active == 0


def test_a_draining_server_refuses_media_before_the_handshake(tmp_path):
    """Refused with HTTP 503 before the WebSocket opens, so a balancer (nginx's
    ``proxy_next_upstream http_503``) tries the next instance instead of failing the call."""
    app = server(tmp_path)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: no signature needed
        app.state.admission.start_draining()
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect("/twilio/media"):
                pass
    assert denied.value.status_code == 503
    assert "shutting down" in denied.value.text
