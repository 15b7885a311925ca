"""What the console reads: filtered, sorted, searched call lists, one call in detail, live calls.

Everything goes through the SQLAlchemy models of ``voice_agent.storage`` and plain SQL that
SQLite and PostgreSQL both run (search is an escaped ``ILIKE``; call duration is the one
dialect-specific expression). Text is shown as stored: the store has already redacted PII.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import exists, extract, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from voice_agent.clock import as_utc, iso_utc, utcnow
from voice_agent.console.charts import chart_span, waterfall
from voice_agent.records import LATENCIES, STAGES, CallStatus, Outcome
from voice_agent.storage import Call, Ticket, Turn

OUTCOMES = tuple(Outcome)  # for the filter, in the order the console lists them
SORTS = {"started": "Started", "duration": "Duration", "v2v": "Voice to voice"}
PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_EXPORT_ROWS = 50_000
MAX_QUERY_CHARS = 200
LIVE_TURNS = 4  # latest turns shown per call in progress


class QueryError(ValueError):
    """A bad filter value; the message names the parameter."""


@dataclass(frozen=True)
class CallFilter:
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    category: str | None = None
    priority: str | None = None
    outcome: str | None = None
    transport: str | None = None
    status: str | None = None
    q: str | None = None  # words searched in both sides of the transcript
    sort: str = "started"
    order: str = "desc"
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> CallFilter:
        """From query parameters (empty values mean "any"); raises :class:`QueryError`."""

        def text(name: str, max_len: int = 64) -> str | None:
            value = (params.get(name) or "").strip()
            if len(value) > max_len:
                raise QueryError(f"{name}: at most {max_len} characters")
            return value or None

        def day(name: str) -> date | None:
            value = text(name)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError as e:
                raise QueryError(f"{name}: expected a date like 2025-01-31, got {value!r}") from e

        def number(name: str, default: int, low: int, high: int) -> int:
            value = text(name)
            if value is None:
                return default
            try:
                n = int(value)
            except ValueError as e:
                raise QueryError(f"{name}: expected a whole number, got {value!r}") from e
            if not low <= n <= high:
                raise QueryError(f"{name}: must be within {low}..{high}")
            return n

        outcome = text("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise QueryError(f"outcome: one of {', '.join(OUTCOMES)}")
        sort = text("sort") or "started"
        if sort not in SORTS:
            raise QueryError(f"sort: one of {', '.join(SORTS)}")
        order = text("order") or "desc"
        if order not in ("asc", "desc"):
            raise QueryError("order: asc or desc")
        f = cls(
            date_from=day("from"),
            date_to=day("to"),
            category=text("category"),
            priority=text("priority"),
            outcome=outcome,
            transport=text("transport"),
            status=text("status"),
            q=text("q", MAX_QUERY_CHARS),
            sort=sort,
            order=order,
            page=number("page", 1, 1, 1_000_000),
            per_page=number("per_page", PER_PAGE, 1, MAX_PER_PAGE),
        )
        if f.date_from and f.date_to and f.date_from > f.date_to:
            raise QueryError("from: must not be after to")
        return f

    def params(self, **changes: Any) -> dict[str, str]:
        """The filter as query parameters (defaults left out), with ``changes`` applied."""
        f = replace(self, **changes)
        out = {
            "from": f.date_from.isoformat() if f.date_from else "",
            "to": f.date_to.isoformat() if f.date_to else "",
            "category": f.category or "",
            "priority": f.priority or "",
            "outcome": f.outcome or "",
            "transport": f.transport or "",
            "status": f.status or "",
            "q": f.q or "",
            "sort": "" if f.sort == "started" else f.sort,
            "order": "" if f.order == "desc" else f.order,
            "page": "" if f.page == 1 else str(f.page),
            "per_page": "" if f.per_page == PER_PAGE else str(f.per_page),
        }
        return {k: v for k, v in out.items() if v}

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    @property
    def active(self) -> bool:
        return bool(self.params(sort="started", order="desc", page=1, per_page=PER_PAGE))


def _like_pattern(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _duration_expr(engine: Engine) -> ColumnElement:
    """Seconds between start and end of a call, in SQL the database runs."""
    if engine.dialect.name == "sqlite":
        return (func.julianday(Call.ended_at) - func.julianday(Call.started_at)) * 86400.0
    return extract("epoch", Call.ended_at - Call.started_at)


def _v2v_subquery():
    """Mean voice-to-voice (speech end to first reply audio) of each call's answered turns."""
    return (
        select(
            Turn.call_id.label("call_id"),
            func.avg(Turn.first_audio_out - Turn.speech_end).label("v2v"),
            func.count(Turn.id).label("answered"),
        )
        .where(Turn.speech_end.is_not(None), Turn.first_audio_out.is_not(None))
        .group_by(Turn.call_id)
        .subquery()
    )


def _conditions(f: CallFilter) -> list[ColumnElement]:
    cond: list[ColumnElement] = []
    if f.date_from:
        cond.append(Call.started_at >= datetime.combine(f.date_from, time.min, UTC))
    if f.date_to:
        cond.append(
            Call.started_at < datetime.combine(f.date_to + timedelta(days=1), time.min, UTC)
        )
    for column, value in (
        (Call.category, f.category),
        (Call.priority, f.priority),
        (Call.outcome, f.outcome),
        (Call.transport, f.transport),
        (Call.status, f.status),
    ):
        if value is not None:
            cond.append(column == value)
    if f.q:
        pattern = _like_pattern(f.q)
        cond.append(
            exists().where(
                Turn.call_id == Call.id,
                or_(
                    Turn.user_text.ilike(pattern, escape="\\"),
                    Turn.bot_text.ilike(pattern, escape="\\"),
                ),
            )
        )
    return cond


def snippet(text: str, words: str, width: int = 70) -> list[tuple[str, bool]]:
    """The part of ``text`` around the first match of ``words``: [(piece, is_match), ...]."""
    at = text.lower().find(words.lower())
    if at < 0:
        return []
    start, end = max(0, at - width), min(len(text), at + len(words) + width)
    pieces = [
        ("…" if start else "") + text[start:at],
        text[at : at + len(words)],
        text[at + len(words) : end] + ("…" if end < len(text) else ""),
    ]
    return [(pieces[0], False), (pieces[1], True), (pieces[2], False)]


@dataclass
class CallPage:
    rows: list[dict[str, Any]]
    total: int
    filter: CallFilter
    options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filter.per_page))

    @property
    def first(self) -> int:
        return 0 if not self.total else (self.filter.page - 1) * self.filter.per_page + 1

    @property
    def last(self) -> int:
        return min(self.total, self.filter.page * self.filter.per_page)


class ConsoleQueries:
    """Read-only queries for the console; synchronous (routes use ``asyncio.to_thread``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, s: Session, f: CallFilter, *, limit: int | None, offset: int = 0):
        duration = _duration_expr(self.engine).label("duration")
        v2v = _v2v_subquery()
        tickets = (
            select(Ticket.call_id, func.min(Ticket.number).label("ticket"))
            .where(Ticket.call_id.is_not(None))
            .group_by(Ticket.call_id)
            .subquery()
        )
        turns = (
            select(Turn.call_id, func.count(Turn.id).label("turns"))
            .group_by(Turn.call_id)
            .subquery()
        )
        stmt = (
            select(Call, duration, v2v.c.v2v, tickets.c.ticket, turns.c.turns)
            .outerjoin(v2v, v2v.c.call_id == Call.id)
            .outerjoin(tickets, tickets.c.call_id == Call.id)
            .outerjoin(turns, turns.c.call_id == Call.id)
            .where(*_conditions(f))
        )
        key = {"started": Call.started_at, "duration": duration, "v2v": v2v.c.v2v}[f.sort]
        key = key.asc() if f.order == "asc" else key.desc()
        stmt = stmt.order_by(key.nulls_last(), Call.started_at.desc(), Call.id)
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        return s.execute(stmt).all()

    @staticmethod
    def _row(call: Call, duration, v2v, ticket, turns) -> dict[str, Any]:
        return {
            "id": call.id,
            "started_at": iso_utc(call.started_at),
            "ended_at": iso_utc(call.ended_at),
            "duration_secs": round(float(duration), 1) if duration is not None else None,
            "transport": call.transport,
            "caller": call.caller,
            "caller_name": call.caller_name,
            "status": call.status,
            "end_reason": call.end_reason,
            "outcome": call.outcome,
            "category": call.category,
            "priority": call.priority,
            "voice_to_voice_secs": round(float(v2v), 3) if v2v is not None else None,
            "ticket": ticket,
            "turns": int(turns or 0),
        }

    def list_calls(self, f: CallFilter) -> CallPage:
        with Session(self.engine) as s:
            total = s.scalar(select(func.count()).select_from(Call).where(*_conditions(f)))
            rows = [
                self._row(*r)
                for r in self._rows(s, f, limit=f.per_page, offset=(f.page - 1) * f.per_page)
            ]
            if f.q and rows:
                self._add_snippets(s, rows, f.q)
            return CallPage(rows=rows, total=int(total or 0), filter=f)

    def _add_snippets(self, s: Session, rows: list[dict[str, Any]], words: str) -> None:
        pattern = _like_pattern(words)
        hits = s.execute(
            select(Turn.call_id, Turn.user_text, Turn.bot_text)
            .where(
                Turn.call_id.in_([r["id"] for r in rows]),
                or_(
                    Turn.user_text.ilike(pattern, escape="\\"),
                    Turn.bot_text.ilike(pattern, escape="\\"),
                ),
            )
            .order_by(Turn.call_id, Turn.index)
        ).all()
        first: dict[str, tuple[str, list[tuple[str, bool]]]] = {}
        for call_id, user_text, bot_text in hits:
            if call_id in first:
                continue
            for who, text in (("Caller", user_text or ""), ("Agent", bot_text or "")):
                pieces = snippet(text, words)
                if pieces:
                    first[call_id] = (who, pieces)
                    break
        for row in rows:
            if row["id"] in first:
                who, pieces = first[row["id"]]
                row["match"] = {"speaker": who, "pieces": pieces}

    def export_rows(self, f: CallFilter) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [self._row(*r) for r in self._rows(s, f, limit=MAX_EXPORT_ROWS)]

    def filter_options(self) -> dict[str, list[str]]:
        """Values seen in the data, for the filter drop-downs."""
        with Session(self.engine) as s:

            def distinct(column) -> list[str]:
                return sorted(v for v in s.scalars(select(column).distinct()) if v)

            return {
                "category": distinct(Call.category),
                "priority": distinct(Call.priority),
                "transport": distinct(Call.transport),
                "status": distinct(Call.status),
            }

    # -- one call --------------------------------------------------------------------------
    def call_detail(self, call_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as s:
            call = s.get(Call, call_id, options=[selectinload(Call.turns)])
            if call is None:
                return None
            tickets = s.scalars(
                select(Ticket).where(Ticket.call_id == call_id).order_by(Ticket.id)
            ).all()
            started = as_utc(call.started_at)
            ended = as_utc(call.ended_at)
            t0 = started.timestamp() if started else None
            turns = [turn_view(t, t0) for t in call.turns]
            answered = [t["voice_to_voice_secs"] for t in turns if t["voice_to_voice_secs"]]
            return {
                "id": call.id,
                "transport": call.transport,
                "caller": call.caller,
                "caller_name": call.caller_name,
                "callback_number": call.callback_number,
                "external_id": call.external_id,
                "started_at": iso_utc(call.started_at),
                "ended_at": iso_utc(call.ended_at),
                "duration_secs": (
                    round((ended - started).total_seconds(), 1) if started and ended else None
                ),
                "status": call.status,
                "end_reason": call.end_reason,
                "error": call.error,
                "outcome": call.outcome,
                "category": call.category,
                "priority": call.priority,
                "triage": call.triage or None,
                "models": call.models or {},
                "tickets": [ticket_view(t) for t in tickets],
                "turns": turns,
                "voice_to_voice_median_secs": _median(answered),
                "chart_secs": chart_span(turns),
            }

    # -- calls in progress ------------------------------------------------------------------
    def live_calls(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()
        with Session(self.engine) as s:
            calls = s.scalars(
                select(Call)
                .where(Call.status == CallStatus.IN_PROGRESS)
                .order_by(Call.started_at.desc())
            ).all()
            out = []
            for call in calls:
                latest = s.scalars(
                    select(Turn)
                    .where(Turn.call_id == call.id)
                    .order_by(Turn.index.desc())
                    .limit(LIVE_TURNS)
                ).all()
                started = as_utc(call.started_at)
                t0 = started.timestamp() if started else None
                out.append(
                    {
                        "id": call.id,
                        "transport": call.transport,
                        "caller": call.caller,
                        "caller_name": call.caller_name,
                        "started_at": iso_utc(call.started_at),
                        "elapsed_secs": (
                            round((now - started).total_seconds()) if started else None
                        ),
                        "category": call.category,
                        "priority": call.priority,
                        "turns": [turn_view(t, t0, chart=False) for t in reversed(latest)],
                    }
                )
            return out


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    data = sorted(values)
    mid = len(data) // 2
    return round(data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2, 3)


def ticket_view(t: Ticket) -> dict[str, Any]:
    return {
        "number": t.number,
        "status": t.status,
        "category": t.category,
        "priority": t.priority,
        "summary": t.summary,
        "assignment": t.assignment,
        "reason": t.reason,
        "caller_name": t.caller_name,
        "callback_number": t.callback_number,
        "external_number": t.external_number,
        "sync_error": t.sync_error,
        "created_at": iso_utc(t.created_at),
    }


def turn_view(t: Turn, call_start: float | None, *, chart: bool = True) -> dict[str, Any]:
    stages = {s: getattr(t, s) for s in STAGES if getattr(t, s) is not None}

    def rel(stage: str) -> float | None:
        if stage not in stages or call_start is None:
            return None
        return round(stages[stage] - call_start, 1)

    latency = {
        name: round(stages[b] - stages[a], 3)
        for name, (a, b) in LATENCIES.items()
        if a in stages and b in stages
    }
    view = {
        "index": t.index,
        "kind": t.kind,
        "user_text": t.user_text or "",
        "bot_text": t.bot_text or "",
        "interrupted": bool(t.interrupted),
        "error_code": t.error_code,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "citations": list(t.citations or []),
        "understood": dict(t.understood) if t.understood else None,
        "caller_at": rel("speech_start") if "speech_start" in stages else rel("stt_done"),
        "agent_at": rel("first_audio_out") if "first_audio_out" in stages else rel("bot_done"),
        "interrupted_at": rel("bot_done") if t.interrupted else None,
        "voice_to_voice_secs": latency.get("voice_to_voice_secs"),
        "latency": latency,
    }
    if chart:
        view["stages"] = stages
        view["waterfall"] = waterfall(stages)
    return view


# -- export -------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "duration_secs",
    "transport",
    "caller",
    "caller_name",
    "status",
    "end_reason",
    "outcome",
    "category",
    "priority",
    "voice_to_voice_secs",
    "ticket",
    "turns",
)


FORMULA_START = frozenset("=+-@")


def _insignificant(ch: str) -> bool:
    """Whitespace and control or format characters (a spreadsheet skips or keeps them)."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _csv_cell(value: Any) -> Any:
    """Spreadsheets run cells that start with = + - @ as formulas: defuse them with a ``'``.

    Looked at as a spreadsheet may: NFKC-normalised (full-width ``＝`` is ``=``), past leading
    whitespace and control characters (`` =1+1``, ``\\n=2+2``); a cell starting with a tab, CR
    or LF is quoted in any case.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value[:1] in ("\t", "\r", "\n"):
        return "'" + value
    first = next((ch for ch in unicodedata.normalize("NFKC", value) if not _insignificant(ch)), "")
    return "'" + value if first in FORMULA_START else value


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in EXPORT_COLUMNS])
    return out.getvalue()


def to_json(rows: list[dict[str, Any]], f: CallFilter) -> str:
    filters = f.params(page=1, per_page=PER_PAGE)
    return json.dumps(
        {
            "filters": filters,
            "count": len(rows),
            "calls": [{c: r.get(c) for c in EXPORT_COLUMNS} for r in rows],
        },
        indent=1,
    )
