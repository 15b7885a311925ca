"""Call records in a real database (SQLAlchemy 2; a SQLite file by default, or PostgreSQL:
``postgresql+psycopg://user:password@host/db``).

Opening a store upgrades its schema to this release's (Alembic, :mod:`voice_agent.migrations`).
What callers said passes PII redaction (:mod:`voice_agent.redaction`) before it is written.

A call row is written when the call starts, each turn as soon as it ends, and the call row again
when the call ends: a crash mid-call loses at most the turn in progress.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    or_,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from voice_agent import migrations, redaction
from voice_agent.clock import as_utc, iso_utc, utcnow
from voice_agent.data_dir import private_sqlite_file
from voice_agent.records import STAGES, CallStatus, EndReason, TurnRecord

if TYPE_CHECKING:
    from voice_agent.settings import Settings


# a call whose server stopped mid-call (see CallStore.close_interrupted_calls)


# how a call that was in progress may end (interrupted is only set at a restart)
CALL_ENDINGS = (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.ABANDONED)


class Base(DeclarativeBase):
    pass


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    transport: Mapped[str] = mapped_column(String(32))
    caller: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # in_progress | completed | failed | abandoned | interrupted (its server stopped mid-call)
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.IN_PROGRESS, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    models: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the server instance that took the call (Settings.resolved_instance_name); NULL before 0004
    instance: Mapped[str | None] = mapped_column(String(128), index=True)
    # what the call was about and how it ended (filled in as the conversation learns it)
    caller_name: Mapped[str | None] = mapped_column(String(128))
    callback_number: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(32), index=True)
    priority: Mapped[str | None] = mapped_column(String(4), index=True)
    triage: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # category, priority, confidence, source
    outcome: Mapped[str | None] = mapped_column(
        String(16), index=True
    )  # resolved|status|ticket|callback|transferred|abandoned
    turns: Mapped[list[Turn]] = relationship(
        back_populates="call", order_by="Turn.index", cascade="all, delete-orphan"
    )


class Turn(Base):
    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    user_text: Mapped[str] = mapped_column(Text, default="")
    bot_text: Mapped[str] = mapped_column(Text, default="")
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # the dialogue act the caller's words were read as, and the recogniser's confidence
    understood: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # One column per named stage: seconds since the epoch (float), None if the stage never ran.
    speech_start: Mapped[float | None] = mapped_column(Float)
    speech_end: Mapped[float | None] = mapped_column(Float)
    stt_done: Mapped[float | None] = mapped_column(Float)
    turn_end: Mapped[float | None] = mapped_column(Float)
    triage_done: Mapped[float | None] = mapped_column(Float)
    lookup_done: Mapped[float | None] = mapped_column(Float)
    llm_first_token: Mapped[float | None] = mapped_column(Float)
    first_sentence: Mapped[float | None] = mapped_column(Float)
    tts_first_audio: Mapped[float | None] = mapped_column(Float)
    first_audio_out: Mapped[float | None] = mapped_column(Float)
    answer_audio_out: Mapped[float | None] = mapped_column(Float)
    bot_done: Mapped[float | None] = mapped_column(Float)
    reply_heard: Mapped[float | None] = mapped_column(Float)
    answer_held: Mapped[float | None] = mapped_column(Float)
    call: Mapped[Call] = relationship(back_populates="turns")


class Ticket(Base):
    """A helpdesk ticket a human can pick up (numbers like INC0001234)."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str | None] = mapped_column(String(16), unique=True, index=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), index=True)
    caller: Mapped[str | None] = mapped_column(String(64))  # the caller's phone number / id
    caller_name: Mapped[str | None] = mapped_column(String(128))
    callback_number: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32), default="other")
    priority: Mapped[str] = mapped_column(String(4), default="P3")
    summary: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(
        String(16), default="new"
    )  # new|in_progress|resolved|closed
    assignment: Mapped[str | None] = mapped_column(String(64))  # assignment group
    reason: Mapped[str | None] = mapped_column(String(64))
    # the same ticket in an external ITSM system (ServiceNow), when one is configured
    external_system: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(64))
    external_number: Mapped[str | None] = mapped_column(String(32))
    sync_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)


class User(Base):
    """A console account (supervisors review calls; admins also manage users and settings)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # supervisor | admin
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # bumped on password change / disable: sessions signed with an older value stop working
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# TurnRecord fields stored as columns of the same name (stages get a column each)
_TURN_FIELDS = [f.name for f in fields(TurnRecord) if f.name != "stages"]
_REDACTED_TURN_FIELDS = ("user_text", "bot_text")


DEFAULT: Any = object()  # sentinel: "every kind of PII" for CallStore(redact_kinds=...)


class CallStore:
    """Synchronous repository; callers on the event loop use ``asyncio.to_thread``.

    What callers said (turn texts, ticket summaries) passes through :meth:`redact` before it
    is stored; code writing other free text from callers calls it too. ``redact_kinds`` picks
    the kinds of PII removed (default: all of :data:`voice_agent.redaction.KINDS`; ``None`` or
    empty: none). The caller's number and name are kept: a call-back needs them.
    """

    def __init__(
        self, database_url: str, *, redact_kinds: Collection[str] | None = DEFAULT
    ) -> None:
        kinds = redaction.KINDS if redact_kinds is DEFAULT else tuple(redact_kinds or ())
        redaction.redact("", kinds)  # unknown kinds fail here, not at the first turn
        self.redact_kinds: tuple[str, ...] = kinds
        if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
            private_sqlite_file(Path(database_url.removeprefix("sqlite:///")))
        self.engine: Engine = create_engine(database_url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        migrations.upgrade(self.engine)  # the schema of this release, before the first write
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallStore:
        """The store the settings describe: their database, redaction as configured."""
        kinds = settings.redact_kinds if settings.redact_pii else None
        return cls(settings.resolved_database_url, redact_kinds=kinds)

    # The server instance whose calls this store starts (recorded in ``calls.instance``); the
    # server sets it at start-up (:meth:`close_interrupted_calls`). None: calls started outside
    # a server (simulations, benchmarks).
    instance: str | None = None

    def redact(self, text: str) -> str:
        """``text`` with the configured kinds of PII replaced by tags (``[email]``, ...)."""
        return redaction.redact(text, self.redact_kinds) if text else text

    def start_call(
        self,
        transport: str,
        *,
        caller: str | None = None,
        external_id: str | None = None,
        models: dict[str, Any] | None = None,
    ) -> str:
        call_id = str(uuid.uuid4())
        with self._session.begin() as s:
            s.add(
                Call(
                    id=call_id,
                    transport=transport,
                    caller=caller,
                    external_id=external_id,
                    models=models or {},
                    instance=self.instance,
                )
            )
        return call_id

    def add_turn(self, call_id: str, turn: TurnRecord) -> None:
        with self._session.begin() as s:
            s.add(
                Turn(
                    call_id=call_id,
                    **{
                        name: getattr(turn, name)
                        for name in _TURN_FIELDS
                        if name not in _REDACTED_TURN_FIELDS
                    },
                    **{stage: turn.stages.get(stage) for stage in STAGES},
                    user_text=self.redact(turn.user_text),
                    bot_text=self.redact(turn.bot_text),
                )
            )

    def end_call(
        self, call_id: str, *, status: str, end_reason: str | None = None, error: str | None = None
    ) -> None:
        with self._session.begin() as s:
            call = s.get(Call, call_id)
            if call is None:
                raise KeyError(call_id)
            call.status = status
            call.end_reason = end_reason
            call.error = error
            call.ended_at = utcnow()

    def update_by_external_id(self, external_id: str, *, status: str, end_reason: str) -> bool:
        """A carrier's status report (e.g. Twilio's status callback) for a call it knows."""
        with self._session.begin() as s:
            call = s.scalars(select(Call).where(Call.external_id == external_id)).first()
            if call is None:
                return False
            # only a live call takes the carrier's word: an interrupted one (its server stopped
            # mid-call) stays interrupted, the more telling status
            if call.status == CallStatus.IN_PROGRESS and status in CALL_ENDINGS:
                call.status = status
                call.ended_at = call.ended_at or utcnow()
            call.end_reason = call.end_reason or end_reason
            return True

    def close_interrupted_calls(self, instance: str) -> int:
        """Close the calls ``instance`` left in progress when it last stopped without ending
        them (killed, crashed, the host lost power); returns how many. The server runs this at
        start-up, before it takes calls, so none of them is live.

        They get status ``interrupted``, end reason ``server_restart`` and, as ``ended_at``, the
        last moment known of them: their latest stored turn's last stage, or their start if no
        turn was stored (not the restart time, which may be hours later and would count the
        downtime as call time). Their turns, triage and tickets are kept.

        Only ``instance``'s calls are touched: on PostgreSQL several instances may share the
        database, and the others' calls are live. Calls stored before calls recorded their
        instance (migration 0004: ``instance`` NULL) are closed too on SQLite, a file one server
        uses, but left alone on PostgreSQL, where which instance took them is unknown (close
        them by hand, e.g. ``UPDATE calls SET status = 'interrupted' ...``).
        """
        mine = Call.instance == instance
        if self.engine.dialect.name == "sqlite":
            mine = or_(mine, Call.instance.is_(None))
        with self._session.begin() as s:
            calls = s.scalars(
                select(Call).where(Call.status == CallStatus.IN_PROGRESS, mine).with_for_update()
            ).all()
            for call in calls:
                call.status = CallStatus.INTERRUPTED
                call.end_reason = call.end_reason or EndReason.SERVER_RESTART
                call.ended_at = _last_known_moment(s, call)
        if calls:
            logger.warning(
                f"{len(calls)} call(s) left in progress when {instance} last stopped closed as "
                f"{CallStatus.INTERRUPTED}: {', '.join(c.id for c in calls)}"
            )
        else:
            logger.info(f"no calls left in progress by {instance}")
        return len(calls)

    def tickets_for_call(self, call_id: str) -> list[dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(select(Ticket).where(Ticket.call_id == call_id)).all()
            return [
                {
                    "number": t.number,
                    "caller": t.caller,
                    "caller_name": t.caller_name,
                    "callback_number": t.callback_number,
                    "category": t.category,
                    "priority": t.priority,
                    "summary": t.summary,
                    "status": t.status,
                    "assignment": t.assignment,
                    "reason": t.reason,
                    "external_number": t.external_number,
                }
                for t in rows
            ]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        with self._session() as s:
            call = s.get(Call, call_id)
            return None if call is None else call_to_dict(call)

    def get_call_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        with self._session() as s:
            call = s.scalars(
                select(Call).where(Call.external_id == external_id).order_by(Call.started_at.desc())
            ).first()
            return None if call is None else call_to_dict(call)

    def list_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(select(Call).order_by(Call.started_at.desc()).limit(limit)).all()
            return [call_to_dict(c, with_turns=False) for c in rows]

    # what the conversation learns about a call as it goes (triage, caller, outcome)
    CALL_FIELDS = frozenset(
        {"caller_name", "callback_number", "category", "priority", "triage", "outcome"}
    )

    def update_call(self, call_id: str, **values: Any) -> None:
        unknown = set(values) - self.CALL_FIELDS
        if unknown:
            raise ValueError(f"not an updatable call field: {', '.join(sorted(unknown))}")
        with self._session.begin() as s:
            call = s.get(Call, call_id)
            if call is None:
                raise KeyError(call_id)
            for name, value in values.items():
                if value is not None:
                    setattr(call, name, value)


def _last_known_moment(s: Session, call: Call) -> datetime:
    """When ``call`` was last known to be going: its latest turn's last stage, or its start."""
    started = as_utc(call.started_at) or utcnow()
    turn = s.scalars(
        select(Turn).where(Turn.call_id == call.id).order_by(Turn.index.desc()).limit(1)
    ).first()
    moments = [getattr(turn, st) for st in STAGES] if turn is not None else []
    latest = max((m for m in moments if m is not None), default=None)
    if latest is None:
        return started
    return min(max(started, datetime.fromtimestamp(latest, UTC)), utcnow())


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def call_to_dict(call: Call, with_turns: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "transport": call.transport,
        "caller": call.caller,
        "external_id": call.external_id,
        "started_at": iso_utc(call.started_at),
        "ended_at": iso_utc(call.ended_at),
        "status": call.status,
        "end_reason": call.end_reason,
        "error": call.error,
        "models": call.models,
        "instance": call.instance,
        "caller_name": call.caller_name,
        "callback_number": call.callback_number,
        "category": call.category,
        "priority": call.priority,
        "triage": call.triage,
        "outcome": call.outcome,
    }
    if with_turns:
        out["turns"] = [
            TurnRecord(
                **{name: getattr(t, name) for name in _TURN_FIELDS},
                stages={st: getattr(t, st) for st in STAGES if getattr(t, st) is not None},
            ).to_dict()
            for t in call.turns
        ]
    return out
