"""Twilio's HTTP side with real signatures (the twilio library's validator and TwiML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator

from tests.conftest import agent
from voice_agent.telephony.twilio_dialer import twilio_signature

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://voice.example.com"


@pytest.fixture
def app_client(small_engines, tmp_path):
    app, _ = agent(
        small_engines, tmp_path,
        twilio_account_sid="AC" + "1" * 32, twilio_auth_token=TOKEN, public_url=PUBLIC,
    )  # fmt: skip
    with TestClient(app) as client:
        yield client


def signed(path: str, form: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, form)}


FORM = {"CallSid": "CA" + "a" * 32, "From": "+15551230000", "To": "+15559870000"}


def test_valid_signature_gets_twiml_that_streams_to_the_media_socket(app_client):
    response = app_client.post("/twilio/voice", data=FORM, headers=signed("/twilio/voice", FORM))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://voice.example.com/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"caller": "+15551230000", "call_sid": FORM["CallSid"]}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": "not-a-signature"},
        signed("/twilio/voice", FORM, token="f" * 32),  # signed with another account's token
        signed("/twilio/other", FORM),  # signed for another URL
    ],
)
def test_missing_or_invalid_signature_is_403(app_client, headers):
    response = app_client.post("/twilio/voice", data=FORM, headers=headers)
    assert response.status_code == 403


def test_tampered_parameters_break_the_signature(app_client):
    headers = signed("/twilio/voice", FORM)
    tampered = dict(FORM, From="+15550000000")
    assert app_client.post("/twilio/voice", data=tampered, headers=headers).status_code == 403


def test_status_callback_updates_the_call_record(app_client):
    store = app_client.app.state.store
    call_id = store.start_call("twilio", external_id=FORM["CallSid"])
    form = {"CallSid": FORM["CallSid"], "CallStatus": "completed"}
    response = app_client.post("/twilio/status", data=form, headers=signed("/twilio/status", form))
    assert response.status_code == 204
    call = store.get_call(call_id)
    assert call["status"] == "completed" and call["end_reason"] == "twilio_completed"
    unsigned = app_client.post("/twilio/status", data=form)
    assert unsigned.status_code == 403


def test_webhooks_are_refused_without_credentials(small_engines, tmp_path):
    app, _ = agent(small_engines, tmp_path)
    with TestClient(app) as client:
        response = client.post("/twilio/voice", data=FORM, headers=signed("/twilio/voice", FORM))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "first",
    [
        "this is not json",
        '{"event": "media", "media": {"payload": "AAAA"}}',  # media before start
        '{"event": "start", "start": {}}',  # start without a stream SID
        "[1, 2, 3]",
    ],
)
def test_a_socket_that_does_not_start_properly_is_closed(app_client, first):
    upgrade = {
        "X-Twilio-Signature": twilio_signature(TOKEN, "wss://voice.example.com/twilio/media")
    }
    with app_client.websocket_connect("/twilio/media", headers=upgrade) as ws:
        ws.send_text('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
        ws.send_text(first)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008
    assert app_client.get("/healthz").json()["status"] == "ok"  # the server goes on
