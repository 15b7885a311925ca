"""An ASGI app served by uvicorn on 127.0.0.1, a free port, inside the running event loop.

Imports nothing from ``voice_agent``. Used by the latency benchmark
(``voice_agent.bench.latency.in_process_server``) and the tests (``tests/conftest.py::serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

HOST = "127.0.0.1"
UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024  # uvicorn's own default


class ServerStartError(RuntimeError):
    """uvicorn stopped before it was listening (its log says why)."""


@contextlib.asynccontextmanager
async def serving_in_process(
    app: Any, *, ws_max_size: int = UVICORN_WS_MAX_SIZE, name: str | None = None
) -> AsyncIterator[int]:
    """Serve ``app`` on ``HOST`` at a port the system picks; yields the port, stops on exit.

    ``name`` names the server's asyncio task. Raises ServerStartError when uvicorn gives up
    before it listens.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=0, log_level="warning", ws_max_size=ws_max_size)
    )
    task = asyncio.create_task(server.serve(), name=name)
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        if task.done():
            cause = None if task.cancelled() else task.exception()
            raise ServerStartError(
                "the in-process server did not start (see the log above)"
            ) from cause
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await task
