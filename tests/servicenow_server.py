"""A local ServiceNow instance for tests: the published Table API contract for ``incident``.

What a real instance does and the adapter relies on: Basic auth (401 ``User Not
Authenticated``), ``{"result": ...}`` bodies with every value a string, generated 32-hex
``sys_id`` and ``INC`` numbers, ``sysparm_query`` (``field=value`` joined by ``^``),
``sysparm_limit`` / ``sysparm_offset`` / ``sysparm_fields``, 201 + ``Location`` on create, 404
``No Record found``, the out-of-the-box data policy that refuses to resolve or close without
a resolution code and notes, and the ``{"error": {"message", "detail"}, "status": "failure"}``
error shape. Knobs make it fail like a real one: down (503), rate limited (429 with
``Retry-After``), or slow.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

# ServiceNow's default priority lookup: (impact, urgency) -> priority 1 Critical .. 5 Planning
PRIORITY_LOOKUP = {
    (1, 1): 1, (1, 2): 2, (2, 1): 2, (1, 3): 3, (2, 2): 3, (3, 1): 3, (2, 3): 4, (3, 2): 4,
    (3, 3): 5,
}  # fmt: skip
JOURNAL_FIELDS = ("work_notes", "comments")


def failure(status: int, message: str, detail: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class FakeServiceNow:
    """The instance's state and failure knobs (tests change them between requests)."""

    username: str = "voice.agent"
    password: str = "s3cret-pass"
    next_number: int = 10001
    incidents: dict[str, dict[str, str]] = field(default_factory=dict)  # sys_id -> record
    journal: list[dict[str, str]] = field(default_factory=list)  # work notes and comments
    requests: list[dict[str, Any]] = field(default_factory=list)  # method, path, headers, body
    down: bool = False  # every request gets 503
    rate_limit: list[float] = field(default_factory=list)  # next requests: 429, Retry-After secs
    delay_secs: float = 0.0  # answer this late (the change still happens, like a real timeout)

    def by_number(self, number: str) -> dict[str, str] | None:
        return next((r for r in self.incidents.values() if r["number"] == number), None)


def create_app(fake: FakeServiceNow | None = None) -> FastAPI:
    fake = fake or FakeServiceNow()
    app = FastAPI()
    app.state.fake = fake

    @app.middleware("http")
    async def instance_behaviour(request: Request, call_next):
        raw = await request.body()
        fake.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": raw.decode("utf-8", "replace"),
            }
        )
        if fake.delay_secs:
            await asyncio.sleep(fake.delay_secs)
        if fake.down:
            return failure(503, "Service Unavailable", "The instance is unavailable")
        if fake.rate_limit:
            wait = fake.rate_limit.pop(0)
            return failure(
                429,
                "Too Many Requests",
                "Rate limit rule 'incident api' exceeded for this user",
                headers={"Retry-After": f"{wait:g}"},
            )
        if not _authorized(request, fake):
            return failure(
                401,
                "User Not Authenticated",
                "Required to provide Auth information",
                headers={"WWW-Authenticate": 'Basic realm="Service-now"'},
            )
        return await call_next(request)

    @app.post("/api/now/table/incident")
    async def create(request: Request):
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        now = _now()
        sys_id = uuid.uuid4().hex
        record = {
            "sys_id": sys_id,
            "number": f"INC{fake.next_number:07d}",
            "state": "1",
            "impact": "3",
            "urgency": "3",
            "short_description": "",
            "description": "",
            "category": "inquiry",
            "subcategory": "",
            "contact_type": "",
            "assignment_group": "",
            "correlation_id": "",
            "correlation_display": "",
            "caller_id": "",
            "close_code": "",
            "close_notes": "",
            "hold_reason": "",
            "active": "true",
            "sys_created_on": now,
            "sys_updated_on": now,
            "work_notes": "",
            "comments": "",
        }
        fake.next_number += 1
        _apply(fake, record, body)
        record["priority"] = _priority(record)
        fake.incidents[sys_id] = record
        location = f"{request.base_url}api/now/table/incident/{sys_id}"
        return JSONResponse(
            {"result": _fields(record, request)}, status_code=201, headers={"Location": location}
        )

    @app.get("/api/now/table/incident")
    async def query(request: Request):
        params = request.query_params
        try:
            limit = int(params.get("sysparm_limit", "10000"))
            offset = int(params.get("sysparm_offset", "0"))
        except ValueError:
            return failure(400, "Invalid parameter", "sysparm_limit/sysparm_offset: not a number")
        rows = [r for r in fake.incidents.values() if _matches(r, params.get("sysparm_query", ""))]
        rows = rows[offset : offset + limit]
        return {"result": [_fields(r, request) for r in rows]}

    @app.get("/api/now/table/incident/{sys_id}")
    async def read(sys_id: str, request: Request):
        record = fake.incidents.get(sys_id)
        if record is None:
            return _no_record()
        return {"result": _fields(record, request)}

    @app.patch("/api/now/table/incident/{sys_id}")
    @app.put("/api/now/table/incident/{sys_id}")
    async def update(sys_id: str, request: Request):
        record = fake.incidents.get(sys_id)
        if record is None:
            return _no_record()
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        after = dict(record)
        _apply(fake, after, body, journal=False)
        if after["state"] in ("6", "7") and not (after["close_code"] and after["close_notes"]):
            return failure(
                403,
                "Operation Failed",
                "Data Policy Exception: \n\tThe following fields are mandatory: "
                "Resolution code, Resolution notes",
            )
        _apply(fake, record, body)
        record["priority"] = _priority(record)
        record["active"] = "false" if record["state"] in ("6", "7", "8") else "true"
        record["sys_updated_on"] = _now()
        return {"result": _fields(record, request)}

    return app


def _authorized(request: Request, fake: FakeServiceNow) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except ValueError:
        return False
    return (user, password) == (fake.username, fake.password)


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return failure(400, "Exception while reading request", "The payload is not valid JSON.")
    if not isinstance(body, dict):
        return failure(400, "Exception while reading request", "Expected a JSON object.")
    return body


def _apply(
    fake: FakeServiceNow, record: dict[str, str], body: dict[str, Any], *, journal: bool = True
) -> None:
    """Set the fields the body names; unknown fields are ignored, as an instance does."""
    for name, value in body.items():
        if name in ("sys_id", "number", "sys_created_on", "sys_updated_on"):
            continue  # read-only on a real instance
        text = "" if value is None else str(value)
        if name in JOURNAL_FIELDS:
            if journal and text:
                fake.journal.append({"sys_id": record["sys_id"], "field": name, "value": text})
            continue  # journal fields read back empty through the Table API
        if name in record:
            record[name] = text


def _priority(record: dict[str, str]) -> str:
    try:
        return str(PRIORITY_LOOKUP[(int(record["impact"]), int(record["urgency"]))])
    except (KeyError, ValueError):
        return "5"


def _matches(record: dict[str, str], query: str) -> bool:
    for term in filter(None, query.split("^")):
        if term.startswith("ORDERBY"):
            continue
        name, op, value = term.partition("=")
        if not op or record.get(name, "") != value:
            return False
    return True


def _fields(record: dict[str, str], request: Request) -> dict[str, str]:
    wanted = request.query_params.get("sysparm_fields")
    if not wanted:
        return dict(record)
    return {name: record.get(name, "") for name in wanted.split(",") if name}


def _no_record() -> JSONResponse:
    return failure(
        404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
