"""An OpenAI-compatible model server that answers at once: the latency benchmark's floor.

``voice-agent bench latency --floor`` runs the same calls a second time with the agent's language
model replaced by this server (``llm_backend=openai`` on a loopback port). What is left of the
turn is what no model server can take away: turn-taking, recognition, speech synthesis and the
transport. A GPU deployment can be sized on paper from it: its turn is roughly the floor plus
its model server's time to the first sentence.

It speaks the two routes the agent uses (``GET /v1/models`` for readiness and
``POST /v1/chat/completions``, streamed or not) and always says ``REPLY``; tools in the request
are ignored, so no function is ever called.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MODEL_ID = "instant"
REPLY = "I can help with that. Tell me a little more about what you see on your screen."


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-instant",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _stream() -> Iterator[str]:
    yield _chunk({"role": "assistant", "content": ""})
    words = REPLY.split(" ")
    for i, word in enumerate(words):
        yield _chunk({"content": word if i == 0 else f" {word}"})
    yield _chunk({}, finish="stop")
    yield "data: [DONE]\n\n"


def create_instant_model_app() -> FastAPI:
    app = FastAPI(title="instant model (latency floor)")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            params = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "the body is not JSON"}}, status_code=400)
        if not isinstance(params, dict) or not isinstance(params.get("messages"), list):
            return JSONResponse({"error": {"message": "messages is required"}}, status_code=400)
        if params.get("stream"):
            return StreamingResponse(_stream(), media_type="text/event-stream")
        return {
            "id": "chatcmpl-instant",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
        }

    return app


@contextlib.asynccontextmanager
async def instant_model_server() -> AsyncIterator[str]:
    """The stub on 127.0.0.1 (a free port) in this event loop; yields its ``/v1`` base URL."""
    from voice_agent.loopback_server import HOST, serving_in_process

    async with serving_in_process(create_instant_model_app(), name="instant-model") as port:
        yield f"http://{HOST}:{port}/v1"
