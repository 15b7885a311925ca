"""Twilio's HTTP side: the voice webhook (TwiML), the status callback, the media socket.

Every webhook must carry a valid ``X-Twilio-Signature`` for the account's auth token, computed over
the public URL Twilio called (``public_url`` setting, for servers behind proxies) and the form
parameters; anything else gets 403 and a log line. The media socket's upgrade is signed the same
way and checked before it is accepted. Without credentials configured, webhooks are refused (there
is nothing to check them against) and the media socket accepts only this machine (loopback: the
benchmarks, ``voice-agent dial``, a local test). Beyond ``max_concurrent_calls`` the voice webhook
answers "all our lines are busy" instead of connecting a stream.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response, WebSocket
from loguru import logger
from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from voice_agent.call.admission import CallAdmission
from voice_agent.console.auth import is_loopback
from voice_agent.request_limits import read_body
from voice_agent.settings import Settings
from voice_agent.telephony.twilio_media import POLICY_VIOLATION, handle_media_stream


def public_url_for(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the configured public URL if any, else the one we were called at."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{base}{request.url.path}{query}"
    return str(request.url)


def media_stream_url(request: HTTPConnection, settings: Settings) -> str:
    base = settings.public_url or str(request.base_url)
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/twilio/media"


async def verified_form(request: Request, settings: Settings) -> dict[str, str] | None:
    """The webhook's form fields if its signature is valid, else None (and a log line).

    A request without a signature is refused before its body is read; a body is read only up to
    ``max_request_bytes`` (HTTP 413 beyond), so an unsigned 100 MB post costs nothing.
    """
    signature = request.headers.get("X-Twilio-Signature")
    if not settings.twilio_auth_token:
        logger.warning(f"twilio webhook {request.url.path} refused: no auth token configured")
        return None
    if not signature:
        logger.warning(f"twilio webhook {request.url.path} without signature")
        return None
    body = await read_body(request, settings.max_request_bytes)
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        logger.warning(f"twilio webhook {request.url.path}: the form is not UTF-8")
        return None
    validator = RequestValidator(settings.twilio_token)
    if not validator.validate(public_url_for(request, settings), form, signature):
        call_sid = form.get("CallSid")
        logger.warning(f"twilio webhook {request.url.path} with a bad signature (call {call_sid})")
        return None
    return form


def media_socket_signed(websocket: WebSocket, settings: Settings) -> bool:
    """Whether a media socket may open: Twilio signs the WebSocket upgrade like a webhook (the
    stream URL, no parameters) with ``X-Twilio-Signature``. Without an auth token there is
    nothing to check against, so only this machine's own clients (loopback) are let in."""
    if not settings.twilio_auth_token:
        host = websocket.client.host if websocket.client else ""
        return is_loopback(host)
    signature = websocket.headers.get("X-Twilio-Signature")
    if not signature:
        return False
    validator = RequestValidator(settings.twilio_token)
    url = media_stream_url(websocket, settings)  # the URL the voice webhook gave Twilio
    # without public_url, as called in both schemes: a TLS proxy in front turns wss into ws
    urls = [url] if settings.public_url else [url, url.replace("ws://", "wss://", 1)]
    return any(validator.validate(url, {}, signature) for url in urls)


def busy_twiml() -> str:
    twiml = VoiceResponse()
    twiml.say("Sorry, all our lines are busy right now. Please call back in a few minutes.")
    twiml.hangup()
    return str(twiml)


def twilio_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/twilio", tags=["twilio"])

    @router.post("/voice")
    async def voice(request: Request) -> Response:
        form = await verified_form(request, settings)
        if form is None:
            return Response("invalid signature", status_code=403)
        admission: CallAdmission = request.app.state.admission
        if admission.refuse_if_full():  # Twilio plays this instead of going silent
            logger.warning(f"call {form.get('CallSid')} refused: all {admission.max_calls} busy")
            return Response(busy_twiml(), media_type="application/xml")
        stream = Stream(url=media_stream_url(request, settings))
        stream.parameter(name="caller", value=form.get("From", ""))
        stream.parameter(name="call_sid", value=form.get("CallSid", ""))
        connect = Connect()
        connect.append(stream)
        twiml = VoiceResponse()
        twiml.append(connect)
        return Response(str(twiml), media_type="application/xml")

    @router.post("/status")
    async def status(request: Request) -> Response:
        form = await verified_form(request, settings)
        if form is None:
            return Response("invalid signature", status_code=403)
        twilio_status = form.get("CallStatus", "")
        ours = {
            "completed": "completed",
            "busy": "abandoned",
            "no-answer": "abandoned",
            "canceled": "abandoned",
            "failed": "failed",
        }.get(twilio_status)
        if ours and form.get("CallSid"):
            store = request.app.state.store
            await asyncio.to_thread(
                store.update_by_external_id,
                form["CallSid"],
                status=ours,
                end_reason=f"twilio_{twilio_status}",
            )
        return Response(status_code=204)

    @router.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        app = websocket.app
        if not media_socket_signed(websocket, settings):
            peer = websocket.client.host if websocket.client else "?"
            logger.warning(f"twilio media socket from {peer} refused: not signed by Twilio")
            await websocket.close(code=POLICY_VIOLATION)  # before accepting: HTTP 403
            return
        await handle_media_stream(
            websocket,
            engines=app.state.engines,
            store=app.state.store,
            admission=app.state.admission,
        )

    return router
