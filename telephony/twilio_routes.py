"""Twilio's HTTP side: the voice webhook (TwiML), the status callback, the media socket.

Every webhook must carry a valid ``X-Twilio-Signature`` for the account's auth token, computed over
the public URL Twilio called (``public_url`` setting, for servers behind proxies) and the form
parameters; anything else gets 403 and a log line. Without credentials configured, webhooks are
refused (there is nothing to check them against) while the media socket still accepts streams.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, WebSocket
from loguru import logger
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from telephony.twilio_media import handle_media_stream
from voice_agent.settings import Settings


def public_url_for(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the configured public URL if any, else the one we were called at."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{base}{request.url.path}{query}"
    return str(request.url)


def media_stream_url(request: Request, settings: Settings) -> str:
    base = settings.public_url or str(request.base_url)
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/twilio/media"


async def verified_form(request: Request, settings: Settings) -> dict[str, str] | None:
    """The webhook's form fields if its signature is valid, else None (and a log line)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    signature = request.headers.get("X-Twilio-Signature")
    call_sid = form.get("CallSid")
    if not settings.twilio_auth_token:
        logger.warning(f"twilio webhook {request.url.path} refused: no auth token configured")
        return None
    if not signature:
        logger.warning(f"twilio webhook {request.url.path} without signature (call {call_sid})")
        return None
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(public_url_for(request, settings), form, signature):
        logger.warning(f"twilio webhook {request.url.path} with a bad signature (call {call_sid})")
        return None
    return form


def twilio_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/twilio", tags=["twilio"])

    @router.post("/voice")
    async def voice(request: Request) -> Response:
        form = await verified_form(request, settings)
        if form is None:
            return Response("invalid signature", status_code=403)
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
        await handle_media_stream(websocket, engines=app.state.engines, store=app.state.store)

    return router
