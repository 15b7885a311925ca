"""The FastAPI server: loads the models once at start-up, then serves calls.

Call records hold callers' words, so no endpoint exposes them without authentication; the
supervisor console (``/console``, accounts and roles) is where they are read. ``/healthz``,
``/readyz`` and ``/metrics`` (Prometheus) are for the service manager, the load balancer and the
scraper: counts and states only, no caller's words.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST

from voice_agent import metrics
from voice_agent.call.admission import CallAdmission
from voice_agent.console.routes import Console, console_router
from voice_agent.engines import Engines
from voice_agent.readiness import Readiness
from voice_agent.settings import Settings
from voice_agent.storage import CallStore
from voice_agent.telephony.twilio_routes import twilio_router
from voice_agent.telephony.webrtc import webrtc_router
from voice_agent.tickets import make_ticket_service
from voice_agent.tickets.service import TicketService


def create_app(settings: Settings, *, engines: Engines | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = CallStore.from_settings(settings)
        # calls this server starts are recorded as its instance's; those it left in progress
        # when it last stopped (killed, crashed) are closed as interrupted before any new call
        app.state.store.instance = settings.resolved_instance_name
        app.state.store.close_interrupted_calls(app.state.store.instance)
        app.state.engines = engines or await asyncio.to_thread(Engines.load, settings)
        logger.info(f"models ready in {app.state.engines.load_secs:.1f}s")
        if settings.resolved_database_url.startswith("postgresql") and (
            settings.console_secret_key is None
        ):
            logger.warning(
                "console_secret_key is not set: this instance signs console sessions with a key "
                "of its own (data_dir), so behind a balancer with other instances on this "
                "database a supervisor is signed out whenever another instance answers. Give "
                "every instance the same VOICE_AGENT_CONSOLE_SECRET_KEY."
            )
        if not settings.twilio_configured:
            logger.warning(
                "Twilio credentials not configured (VOICE_AGENT_TWILIO_ACCOUNT_SID, "
                "VOICE_AGENT_TWILIO_AUTH_TOKEN): media streams on /twilio/media work, but "
                "Twilio webhooks are refused and calls cannot be transferred or hung up."
            )
        # tickets that could not reach the ITSM system earlier are pushed now, in the background
        tickets = make_ticket_service(settings, app.state.store)
        sync = asyncio.create_task(_retry_ticket_sync(tickets))
        yield
        sync.cancel()
        await tickets.aclose()

    # no /docs, /redoc or /openapi.json: the API is the console's and Twilio's, documented in
    # the README; an anonymous map of every endpoint helps only an attacker
    app = FastAPI(
        title="Helpdesk voice agent",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.console = Console(settings)
    app.state.admission = CallAdmission(
        settings.max_concurrent_calls, per_client_per_minute=settings.demo_calls_per_minute
    )
    app.include_router(twilio_router(settings))
    app.include_router(webrtc_router(settings))
    app.include_router(console_router(settings, app.state.console))

    app.state.readiness = Readiness.from_settings(settings, app.state.admission)
    app.state.metrics = metrics.app_registry(app.state.admission)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Alive (a supervisor restarts the process when this fails)."""
        loaded: Engines = app.state.engines
        admission: CallAdmission = app.state.admission
        return {
            "status": "ok",
            "models": loaded.model_names,
            "llm_backend": settings.llm_backend,
            "calls": {"active": admission.active, "max": admission.max_calls},
            "draining": admission.draining,
        }

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready for a call (a balancer sends calls only where this answers 200)."""
        problems = await app.state.readiness.problems()
        return JSONResponse(
            {"ready": not problems, "problems": problems}, status_code=503 if problems else 200
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(app.state.metrics), media_type=CONTENT_TYPE_LATEST)

    return app


async def _retry_ticket_sync(tickets: TicketService) -> None:
    try:
        pushed = await tickets.retry_sync()
        if pushed:
            logger.info(f"{pushed} ticket(s) pushed to the ITSM system after an earlier failure")
    except Exception as e:  # the ITSM system is still down: the next start-up tries again
        logger.warning(f"ticket sync retry failed: {e}")
