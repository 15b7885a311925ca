"""The server process: uvicorn, with a drain on SIGTERM so that stopping it cuts no call off.

Left to itself, uvicorn answers SIGTERM by closing every connection at once: each call's media
socket, so every caller on the line hears silence. Here the first SIGTERM (or Ctrl-C) starts a
drain instead (:meth:`~voice_agent.call.admission.CallAdmission.drain`): ``/readyz`` turns 503 so
the balancer sends new calls elsewhere, new media sockets are refused before their handshake (a
balancer retries them on another instance), and the calls in progress go on until they end or
``drain_timeout_secs`` passes, when each remaining caller hears that the line is closing. Then
uvicorn stops as usual and the lifespan closes what it opened. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI
from loguru import logger

from voice_agent.call.admission import CallAdmission


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain_timeout_secs: float) -> None:
        super().__init__(config)
        self.drain_timeout_secs = drain_timeout_secs
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self.should_exit:
            super().handle_exit(sig, frame)  # the second signal: stop now
            return
        # a fresh context: the signal lands inside whichever task runs, often a call's, whose
        # context (its call_id in every log line) the drain must not inherit
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain, sig, context=contextvars.Context())

    def _start_drain(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit(sig))

    async def _drain_then_exit(self, sig: int) -> None:
        admission: CallAdmission = self._fastapi_app().state.admission
        name = signal.Signals(sig).name
        logger.info(
            f"{name}: draining: no new calls; waiting up to {self.drain_timeout_secs:.0f} s "
            f"for {admission.active} call(s) in progress (send it again to stop now)"
        )
        try:
            ended = await admission.drain(self.drain_timeout_secs)
        except Exception:  # a drain that fails must still let the server stop
            logger.exception("drain failed; stopping now")
            ended = -1
        if ended > 0:
            logger.warning(f"drained: {ended} call(s) still running were ended with a goodbye")
        elif ended == 0:
            logger.info("drained: no call in progress; stopping")
        super().handle_exit(sig, None)

    def _fastapi_app(self) -> FastAPI:
        app = self.config.app
        if not isinstance(app, FastAPI):
            raise TypeError("DrainingServer serves the voice agent's FastAPI app")
        return app


def serve_until_stopped(
    app: FastAPI, *, host: str, port: int, log_level: str, ws_max_size: int, drain_secs: float
) -> None:
    """Run the app until it is stopped; a SIGTERM drains it first (see the module's doc)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws_max_size=ws_max_size,
        timeout_graceful_shutdown=10,
    )
    DrainingServer(config, drain_timeout_secs=drain_secs).run()
