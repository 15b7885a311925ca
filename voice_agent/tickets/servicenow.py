"""ServiceNow incidents over the published Table API (``/api/now/table/incident``).

Only the documented contract is used, so any instance with a user that has the ``itil`` role (or
a role with the same rights on ``incident``) works without a scoped app:

* ``POST /api/now/table/incident`` (JSON body) creates a record: 201 ``{"result": {...}}``;
* ``GET /api/now/table/incident?sysparm_query=number=INC...&sysparm_limit=1`` finds one:
  200 ``{"result": [...]}`` (an empty list when there is none);
* ``PATCH /api/now/table/incident/{sys_id}`` updates one: 200 ``{"result": {...}}``;
* Basic auth, ``Accept: application/json``; every value in a result is a string;
* failures are ``{"error": {"message", "detail"}, "status": "failure"}`` with 400, 401, 403
  (also a data policy refusing a change), 404, 429 (with ``Retry-After``) or 5xx.

Our number travels as ``correlation_id`` so a record created by a request that timed out on our
side is found again instead of created twice.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from loguru import logger

from voice_agent.clock import as_utc, utcnow
from voice_agent.tickets.itsm import ExternalIncident, IncidentChanges, ITSMError, NewIncident

TABLE_PATH = "/api/now/table/incident"

# ServiceNow incident.state choices (out-of-the-box values) and our statuses.
STATE_TO_STATUS: dict[str, str] = {
    "1": "new",
    "2": "in_progress",
    "3": "on_hold",
    "6": "resolved",
    "7": "closed",
    "8": "canceled",
}
STATUS_TO_STATE: dict[str, str] = {v: k for k, v in STATE_TO_STATUS.items()}

# Used when no taxonomy file gives impact/urgency per priority.
FALLBACK_PRIORITIES: dict[str, tuple[int, int]] = {
    "P1": (1, 1),
    "P2": (1, 2),
    "P3": (2, 2),
    "P4": (3, 3),
}

# Our triage categories -> the out-of-the-box incident category / subcategory choices.
DEFAULT_CATEGORY_MAP: dict[str, tuple[str, str | None]] = {
    "account_access": ("inquiry", None),
    "email": ("software", "email"),
    "network": ("network", None),
    "printer": ("hardware", None),
    "hardware": ("hardware", None),
    "software": ("software", None),
    "phone": ("inquiry", None),
    "security": ("inquiry", "antivirus"),
    "ticket_status": ("inquiry", None),
    "other": ("inquiry", None),
}

# Resolving or closing needs a resolution code and notes (an out-of-the-box data policy);
# putting on hold needs a reason ("1" = Awaiting Caller).
RESOLUTION_CODE = "Solution provided"
HOLD_REASON_AWAITING_CALLER = "1"

_FIELDS = (
    "sys_id,number,state,impact,urgency,priority,correlation_id,sys_updated_on,"
    "short_description,assignment_group"
)

_STATUS_CODES = {
    400: ("bad_request", False),
    401: ("unauthorized", False),
    403: ("forbidden", False),
    404: ("not_found", False),
    429: ("rate_limited", True),
}


class ServiceNowAdapter:
    """:class:`~voice_agent.tickets.itsm.ITSMAdapter` for one ServiceNow instance.

    ``priorities`` maps our priority names to ServiceNow (impact, urgency), 1 = high;
    ``retry_after_cap_secs`` is the longest ``Retry-After`` waited for before the one retry
    (a caller may be on the line; a longer wait fails now and ``retry_sync`` pushes it later).
    """

    name = "servicenow"

    def __init__(
        self,
        instance_url: str,
        username: str,
        password: str,
        *,
        timeout_secs: float = 5.0,
        priorities: Mapping[str, tuple[int, int]] | None = None,
        category_map: Mapping[str, tuple[str, str | None]] | None = None,
        retry_after_cap_secs: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not instance_url.startswith(("http://", "https://")):
            raise ValueError(
                f"servicenow_instance_url must start with https:// (got {instance_url!r})"
            )
        self.instance_url = instance_url.rstrip("/")
        self.priorities = dict(priorities or FALLBACK_PRIORITIES)
        if not self.priorities:
            raise ValueError("ServiceNowAdapter needs at least one priority mapping")
        self.category_map = dict(category_map or DEFAULT_CATEGORY_MAP)
        self.retry_after_cap_secs = retry_after_cap_secs
        self._client = httpx.AsyncClient(
            base_url=self.instance_url,
            auth=httpx.BasicAuth(username, password),
            headers={"Accept": "application/json"},
            timeout=timeout_secs,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the ITSMAdapter protocol ------------------------------------------------------------
    async def create_incident(self, incident: NewIncident) -> ExternalIncident:
        impact, urgency = self.impact_urgency(incident.priority)
        category, subcategory = self.category_map.get(incident.category, ("inquiry", None))
        body: dict[str, Any] = {
            "short_description": incident.summary[:160] or "Helpdesk call",
            "description": _description(incident),
            "category": category,
            "impact": str(impact),
            "urgency": str(urgency),
            "contact_type": "phone",
            "correlation_id": incident.correlation_id,
            "correlation_display": "helpdesk-voice-agent",
        }
        if subcategory:
            body["subcategory"] = subcategory
        if incident.assignment_group:
            body["assignment_group"] = incident.assignment_group
        result = await self._request("POST", TABLE_PATH, json=body, params=_read_params())
        return self._incident(result)

    async def get_incident(self, number: str) -> ExternalIncident | None:
        return await self._find(f"number={number}")

    async def find_by_correlation_id(self, correlation_id: str) -> ExternalIncident | None:
        return await self._find(f"correlation_id={correlation_id}")

    async def update_incident(self, external_id: str, changes: IncidentChanges) -> ExternalIncident:
        body: dict[str, Any] = {}
        if changes.status is not None:
            if changes.status not in STATUS_TO_STATE:
                raise ValueError(f"unknown status {changes.status!r}")
            body["state"] = STATUS_TO_STATE[changes.status]
            if changes.status in ("resolved", "closed"):
                body["close_code"] = RESOLUTION_CODE
                body["close_notes"] = changes.note or "Resolved through the helpdesk voice agent."
            elif changes.status == "on_hold":
                body["hold_reason"] = HOLD_REASON_AWAITING_CALLER
        if changes.note:
            body["work_notes"] = changes.note
        if changes.priority is not None:
            impact, urgency = self.impact_urgency(changes.priority)
            body.update(impact=str(impact), urgency=str(urgency))
        if changes.assignment_group is not None:
            body["assignment_group"] = changes.assignment_group
        result = await self._request(
            "PATCH", f"{TABLE_PATH}/{external_id}", json=body, params=_read_params()
        )
        return self._incident(result)

    # -- mapping ---------------------------------------------------------------------------
    def impact_urgency(self, priority: str) -> tuple[int, int]:
        if priority in self.priorities:
            return self.priorities[priority]
        logger.warning(f"ServiceNow: no impact/urgency for priority {priority!r}; using 3/3")
        return (3, 3)

    def priority_of(self, impact: str | None, urgency: str | None) -> str | None:
        try:
            levels = (int(impact or ""), int(urgency or ""))
        except ValueError:
            return None
        for name, mapped in self.priorities.items():
            if tuple(mapped) == levels:
                return name
        return None

    def _incident(self, record: Any) -> ExternalIncident:
        if not isinstance(record, dict) or not record.get("sys_id") or not record.get("number"):
            raise ITSMError("bad_response", False, f"ServiceNow returned no incident: {record!r}")
        state = _value(record.get("state"))
        return ExternalIncident(
            system=self.name,
            external_id=_value(record["sys_id"]),
            number=_value(record["number"]),
            status=STATE_TO_STATUS.get(state, "in_progress"),
            state=state,
            priority=self.priority_of(_value(record.get("impact")), _value(record.get("urgency"))),
            summary=_value(record.get("short_description")),
            correlation_id=_value(record.get("correlation_id")) or None,
            updated_at=_value(record.get("sys_updated_on")) or None,
        )

    # -- HTTP ------------------------------------------------------------------------------
    async def _find(self, query: str) -> ExternalIncident | None:
        params = {"sysparm_query": query, "sysparm_limit": "1", **_read_params()}
        result = await self._request("GET", TABLE_PATH, params=params)
        if not isinstance(result, list):
            raise ITSMError("bad_response", False, f"expected a list of records, got {result!r}")
        return self._incident(result[0]) if result else None

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request, and one retry when the instance says when to come back."""
        for attempt in (1, 2):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TimeoutException as e:
                raise ITSMError(
                    "timeout", True, f"ServiceNow did not answer {method} {path} in time"
                ) from e
            except httpx.TransportError as e:
                raise ITSMError(
                    "unreachable", True, f"cannot reach ServiceNow at {self.instance_url}: {e}"
                ) from e
            if response.status_code == 429 or response.status_code >= 500:
                wait = retry_after_secs(response.headers.get("Retry-After"))
                if attempt == 1 and wait is not None and wait <= self.retry_after_cap_secs:
                    logger.info(f"ServiceNow {response.status_code}: retrying in {wait:.1f}s")
                    await asyncio.sleep(wait)
                    continue
            if response.is_error:
                raise _error(response, method, path)
            try:
                body = response.json()
            except ValueError as e:
                raise ITSMError(
                    "bad_response", False, f"ServiceNow {method} {path}: not JSON", status=200
                ) from e
            if not isinstance(body, dict) or "result" not in body:
                raise ITSMError("bad_response", False, f"ServiceNow {method} {path}: no 'result'")
            return body["result"]
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _read_params() -> dict[str, str]:
    return {"sysparm_fields": _FIELDS, "sysparm_exclude_reference_link": "true"}


def _value(field: Any) -> str:
    """A field's value: a plain string, or a reference's ``{"value", "link"}`` object."""
    if isinstance(field, dict):
        field = field.get("value", "")
    return "" if field is None else str(field)


def _description(incident: NewIncident) -> str:
    contact = [
        ("Caller", incident.caller_name),
        ("Callback number", incident.callback_number),
        ("Calling from", incident.caller),
        ("Voice agent ticket", incident.correlation_id),
        ("Call id", incident.call_id),
    ]
    lines = [f"{label}: {value}" for label, value in contact if value]
    text = incident.description.strip() or incident.summary
    return f"{text}\n\n" + "\n".join(lines)


def retry_after_secs(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (it is either a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(when) - (now or utcnow())).total_seconds())


def _error(response: httpx.Response, method: str, path: str) -> ITSMError:
    status = response.status_code
    code, retryable = _STATUS_CODES.get(status, ("http_error", False))
    if status >= 500:
        code, retryable = "unavailable", True
    message, detail = "", ""
    try:
        error = response.json().get("error") or {}
        message, detail = str(error.get("message") or ""), str(error.get("detail") or "")
    except (ValueError, AttributeError):
        message = response.text[:200]
    said = f"{message} ({detail})" if detail else message
    hint = {
        "unauthorized": "; check servicenow_username and servicenow_password",
        "forbidden": "; the ServiceNow user needs the itil role (or rights on incident)",
        "rate_limited": "; ServiceNow is rate limiting this user",
    }.get(code, "")
    return ITSMError(
        code,
        retryable,
        f"ServiceNow {method} {path} -> {status} {said}{hint}".strip(),
        status=status,
    )
