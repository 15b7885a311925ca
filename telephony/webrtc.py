"""The browser demo: WebRTC through pipecat's SmallWebRTC transport (aiortc), same call runner.

``GET /`` serves the page; ``POST /api/offer`` takes the browser's SDP offer and answers it (a new
call starts), ``PATCH /api/offer`` takes trickled ICE candidates. No STUN or TURN by default: on
localhost and a LAN host candidates connect directly; ``ice_servers`` is a setting.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from voice_agent.auto_gain import AutoGainFilter
from voice_agent.call_runner import run_call
from voice_agent.live_events import LiveEvents
from voice_agent.settings import Settings

WEBRTC_OUT_RATE = 48000  # what browsers play natively (Opus); Piper's audio is resampled with soxr


def _page(name: str) -> str:
    return resources.files("voice_agent.web").joinpath(name).read_text(encoding="utf-8")


def webrtc_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    handler = SmallWebRTCRequestHandler(ice_servers=list(settings.ice_servers) or None)
    calls: set[asyncio.Task] = set()

    @router.get("/", response_class=HTMLResponse)
    async def demo_page() -> str:
        return _page("demo.html")

    @router.get("/demo.js")
    async def demo_script() -> Response:
        return Response(_page("demo.js"), media_type="text/javascript")

    @router.get("/api/config")
    async def client_config() -> dict:
        return {"ice_servers": list(settings.ice_servers)}

    @router.post("/api/offer")
    async def offer(request: Request) -> dict:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("sdp") or body.get("type") != "offer":
            raise HTTPException(status_code=400, detail="expected {sdp, type: 'offer'}")
        app = request.app

        async def start_call(connection: SmallWebRTCConnection) -> None:
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

            task = asyncio.create_task(
                run_call(
                    transport,
                    engines=app.state.engines,
                    store=app.state.store,
                    transport_name="webrtc",
                    audio_out_sample_rate=WEBRTC_OUT_RATE,
                    caller=request.client.host if request.client else None,
                    external_id=connection.pc_id,
                    observers=[live],
                    on_turn=live.on_turn,
                ),
                name=connection.pc_id,
            )
            calls.add(task)
            task.add_done_callback(calls.discard)

        try:
            answer = await handler.handle_web_request(
                SmallWebRTCRequest(
                    sdp=body["sdp"], type=body["type"], pc_id=body.get("pc_id"),
                    restart_pc=body.get("restart_pc"),
                ),
                start_call,
            )  # fmt: skip
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(status_code=400, detail=f"could not answer the offer: {e}") from e
        if answer is None:
            raise HTTPException(status_code=500, detail="no SDP answer")
        return answer

    @router.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict:
        body = await request.json()
        try:
            patch = SmallWebRTCPatchRequest(
                pc_id=body["pc_id"],
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
