"""Request bodies read with a bound: a 100 MB body is refused after its first bytes, not read whole.

Webhooks and WebRTC offers are a few kilobytes; ``max_request_bytes`` (64 KiB) leaves room. A
``Content-Length`` over the bound is refused before anything is read; a body that streams past it
without one is refused as soon as it does.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or HTTP 413 once it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_long = int(declared) > limit
        except ValueError:
            raise HTTPException(400, "bad Content-Length") from None
        if too_long:
            raise HTTPException(413, f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
    return bytes(body)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, or HTTP 400 saying what is wrong with it (never a 500)."""
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPException(400, f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body
