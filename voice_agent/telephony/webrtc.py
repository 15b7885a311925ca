"""The browser demo: WebRTC through pipecat's SmallWebRTC transport (aiortc), same call runner.

``GET /`` serves the page; ``POST /api/offer`` takes the browser's SDP offer and answers it (a new
call starts), ``PATCH /api/offer`` takes trickled ICE candidates. No STUN or TURN by default: on
localhost and a LAN host candidates connect directly; ``ice_servers`` is a setting.

Who may call: users signed in to the console (the same session cookie; offers carry its CSRF
token), or anyone when ``demo_public`` is set. Either way each client address may start
``demo_calls_per_minute`` calls, the server carries at most ``max_concurrent_calls``, and an offer
is checked before any connection is built: at most ``max_request_bytes``, a real SDP offer with an
audio line, ICE credentials and a DTLS fingerprint. ``/api/config`` (which holds TURN credentials,
when there are any) answers only those who may call.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from aiortc.sdp import SessionDescription
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import IceServer, SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from voice_agent.call.admission import CallAdmission, CallRefused, CallSlot
from voice_agent.call.live_events import LiveEvents
from voice_agent.call.runner import run_call
from voice_agent.console.auth import CSRF_HEADER, client_ip
from voice_agent.console.routes import PREFIX as CONSOLE
from voice_agent.console.routes import Console
from voice_agent.request_limits import read_json_object
from voice_agent.settings import Settings
from voice_agent.speech.auto_gain import AutoGainFilter

WEBRTC_OUT_RATE = 48000  # what browsers play natively (Opus); Piper's audio is resampled with soxr


def _page(name: str) -> str:
    return resources.files("voice_agent.web").joinpath(name).read_text(encoding="utf-8")


def offer_problem(sdp: str) -> str | None:
    """What makes ``sdp`` unusable as a browser's audio offer, or None if it looks real."""
    if not sdp.startswith("v=0"):
        return "an SDP offer starts with 'v=0'"
    try:
        description = SessionDescription.parse(sdp)
    except Exception as e:  # aiortc's parser raises whatever the bad line makes it raise
        return f"unreadable SDP: {type(e).__name__}: {e}"
    audio = [m for m in description.media if m.kind == "audio" and m.port]
    if not audio:
        return "no audio line (m=audio) in the offer"
    first = audio[0]
    if not (first.ice and first.ice.usernameFragment and first.ice.password):
        return "no ICE credentials (a=ice-ufrag, a=ice-pwd) for the audio"
    if not (first.dtls and first.dtls.fingerprints):
        return "no DTLS fingerprint (a=fingerprint) for the audio"
    return None


def webrtc_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    ice_servers = [IceServer(urls=url) for url in settings.ice_servers]
    handler = SmallWebRTCRequestHandler(ice_servers=ice_servers or None)
    calls: dict[str, asyncio.Task] = {}  # by peer connection id

    async def may_call(request: Request, *, changes_state: bool) -> None:
        """Signed in to the console (with the session's CSRF token when ``changes_state``),
        unless the demo is public; HTTP 401/403 otherwise."""
        if settings.demo_public:
            return
        console: Console = request.app.state.console
        try:
            await console.user(request)
        except HTTPException:
            raise HTTPException(
                401, f"sign in at {CONSOLE}/login first (or set demo_public)"
            ) from None
        if changes_state:
            await console.csrf(request)

    @router.get("/", response_class=HTMLResponse)
    async def demo_page(request: Request) -> Response:
        try:
            await may_call(request, changes_state=False)
        except HTTPException:
            return RedirectResponse(f"{CONSOLE}/login?next=/", status_code=303)
        return HTMLResponse(_page("demo.html"))

    @router.get("/demo.js")
    async def demo_script() -> Response:
        return Response(_page("demo.js"), media_type="text/javascript")

    @router.get("/api/config")
    async def client_config(request: Request) -> dict:
        await may_call(request, changes_state=False)
        session = getattr(request.state, "console_session", None)
        console: Console = request.app.state.console
        return {
            "ice_servers": list(settings.ice_servers),
            "csrf_header": CSRF_HEADER,
            "csrf_token": console.codec.csrf_token(session) if session else None,
        }

    @router.post("/api/offer")
    async def offer(request: Request) -> dict:
        await may_call(request, changes_state=True)
        body = await read_json_object(request, settings.max_request_bytes)
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp or body.get("type") != "offer":
            raise HTTPException(status_code=400, detail="expected {sdp, type: 'offer'}")
        problem = offer_problem(sdp)
        if problem is not None:
            raise HTTPException(status_code=400, detail=f"not a usable offer: {problem}")
        pc_id = body.get("pc_id")
        if pc_id is not None and not isinstance(pc_id, str):
            raise HTTPException(status_code=400, detail="pc_id must be a string")
        app = request.app
        slot: CallSlot | None = None
        if pc_id not in calls:  # a renegotiation of a live call starts no new one
            admission: CallAdmission = app.state.admission
            try:
                slot = admission.admit("webrtc", client=client_ip(request))
            except CallRefused as e:
                logger.warning(f"webrtc offer from {client_ip(request)} refused: {e.code}")
                status = 429 if e.code == "rate_limited" else 503
                headers = {"Retry-After": str(int(e.retry_after_secs or 30) + 1)}
                raise HTTPException(status, e.reason, headers=headers) from None

        async def start_call(connection: SmallWebRTCConnection) -> None:
            nonlocal slot
            transport = SmallWebRTCTransport(
                webrtc_connection=connection,
                params=TransportParams(
                    audio_in_enabled=True,
                    audio_out_enabled=True,
                    audio_in_filter=AutoGainFilter(
                        noise_floor_dbfs=settings.audio_noise_floor_dbfs
                    ),
                    audio_out_end_silence_secs=0,
                ),
            )
            live = LiveEvents(connection.send_app_message)
            call_slot, slot = slot, None  # the call owns the slot now

            async def call() -> None:
                try:
                    await run_call(
                        transport,
                        engines=app.state.engines,
                        store=app.state.store,
                        transport_name="webrtc",
                        audio_out_sample_rate=WEBRTC_OUT_RATE,
                        caller=client_ip(request),
                        external_id=connection.pc_id,
                        observers=[live],
                        on_turn=live.on_turn,
                        slot=call_slot,
                    )
                finally:
                    if call_slot is not None:
                        call_slot.release()

            task = asyncio.create_task(call(), name=connection.pc_id)
            calls[connection.pc_id] = task
            task.add_done_callback(lambda _t: calls.pop(connection.pc_id, None))

        try:
            answer = await handler.handle_web_request(
                SmallWebRTCRequest(
                    sdp=sdp, type="offer", pc_id=pc_id, restart_pc=bool(body.get("restart_pc")),
                ),
                start_call,
            )  # fmt: skip
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(status_code=400, detail=f"could not answer the offer: {e}") from e
        finally:
            if slot is not None:  # no call was started with it
                slot.release()
        if answer is None:
            raise HTTPException(status_code=500, detail="no SDP answer")
        return answer

    @router.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict:
        await may_call(request, changes_state=True)
        body = await read_json_object(request, settings.max_request_bytes)
        try:
            patch = SmallWebRTCPatchRequest(
                pc_id=str(body["pc_id"]),
                candidates=[
                    IceCandidate(c["candidate"], c["sdp_mid"], c["sdp_mline_index"])
                    for c in body.get("candidates", [])
                ],
            )
        except (KeyError, TypeError) as e:
            raise HTTPException(status_code=400, detail=f"bad ICE patch: {e}") from e
        await handler.handle_patch_request(patch)
        return {"status": "ok"}

    return router
