"""Schema migrations for the call records (Alembic), run from code at start-up.

``CallStore`` calls :func:`upgrade` when it opens a database, so a new release's schema is in
place before the first call is stored; there is no separate step for operators to forget. The
Alembic configuration is built here, in code (:func:`alembic_config`): no ``alembic.ini`` is
needed at run time, and the scripts live in this package (``versions/``).

Databases created before migrations existed (the tables are there, ``alembic_version`` is not)
are recognised by their columns, stamped at the revision they match (:data:`LEGACY_SCHEMAS`) and
then upgraded like any other.

Adding a migration
------------------
1. Change the models in ``voice_agent/storage.py``.
2. Generate the revision against a database at the current head (the one the settings name,
   e.g. ``VOICE_AGENT_DATABASE_URL=sqlite:///var/dev.db``)::

       voice-agent db upgrade                          # bring that database to head first
       voice-agent db revision -m "tickets: due date"  # autogenerates versions/0003_....py

   The same without the CLI wiring: ``python -m voice_agent.migrations.cli revision -m "..."``.
3. Read the generated script: autogenerate misses renames and server-side defaults, and SQLite
   changes other than added columns must stay inside ``op.batch_alter_table`` (generated that
   way because ``render_as_batch`` is on for SQLite). A NOT NULL column added to a table that
   has rows needs a ``server_default``.
4. ``pytest tests/test_migrations.py``: it checks, on SQLite and on PostgreSQL, that ``upgrade
   head`` leaves no difference from the models (``alembic.autogenerate.compare_metadata``).

Revision ids are sequential four-digit numbers (``0001``, ``0002``, ...).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent
# pg_advisory_xact_lock key: two processes starting together migrate one after the other
_PG_LOCK_KEY = 0x766F6963  # "voic"

# The tables and columns of each revision a pre-migration database can match, newest first.
# Frozen here (not read from the models): they describe history.
_STAGES_0001 = (
    "speech_start speech_end stt_done turn_end llm_first_token first_sentence tts_first_audio "
    "first_audio_out bot_done reply_heard"
)
_SCHEMA_0001 = {
    "calls": "id transport caller external_id started_at ended_at status end_reason error models",
    "turns": "id call_id index kind user_text bot_text interrupted error_code prompt_tokens "
    "completion_tokens citations " + _STAGES_0001,
    "tickets": "id number call_id caller category priority summary status assignment reason "
    "created_at",
}
_SCHEMA_0002 = {
    "calls": _SCHEMA_0001["calls"]
    + " caller_name callback_number category priority triage outcome",
    "turns": _SCHEMA_0001["turns"] + " triage_done lookup_done answer_audio_out",
    "tickets": _SCHEMA_0001["tickets"] + " caller_name callback_number description "
    "external_system external_id external_number sync_error updated_at",
    "users": "id username password_hash role disabled session_version created_at last_login_at",
}
LEGACY_SCHEMAS: dict[str, dict[str, frozenset[str]]] = {
    rev: {table: frozenset(cols.split()) for table, cols in schema.items()}
    for rev, schema in (("0002", _SCHEMA_0002), ("0001", _SCHEMA_0001))
}
# indexes 0002 created that an older store's column-adding upgrade did not
_INDEXES_0002 = {"calls": {"ix_calls_category", "ix_calls_priority", "ix_calls_outcome"}}


class SchemaError(RuntimeError):
    """The database's schema is not one these migrations can bring up to date."""


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration, built in code: the scripts in this package, and either an open
    connection to run on (``connection``) or a database URL (``url``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "60")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision these scripts define."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    """The revision the database is at; None for a database migrations never touched."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``, adopting a database from before migrations first."""
    with _migrating(engine) as conn:
        _upgrade(conn, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (tests, and undoing a bad release by hand)."""
    with _migrating(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


@contextlib.contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for a whole migration, which also keeps other processes out: a
    PostgreSQL advisory lock, or ``BEGIN IMMEDIATE`` on SQLite (it has transactional DDL too).

    SQLite's foreign keys are off meanwhile: batch mode rebuilds a table by dropping it, and
    with them on that drop would cascade to the rows referring to it (calls -> turns). They are
    checked before the commit instead.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn
            return
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        conn.commit()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise SchemaError(f"the migration broke foreign keys: {broken[:5]}")
            conn.commit()
        finally:
            conn.rollback()  # nothing left to undo after a commit
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _upgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config(conn)
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" not in tables and "calls" in tables:
        matched = legacy_revision(conn)
        log.info("database from before migrations matches revision %s: stamping it", matched)
        command.stamp(cfg, matched)
    try:
        command.upgrade(cfg, revision)
    except CommandError as e:
        at = MigrationContext.configure(conn).get_current_revision()
        raise SchemaError(
            f"cannot upgrade the call records database (at revision {at}) to {revision}: {e}."
            " A database written by a newer voice-agent needs that version (or newer)."
        ) from e


def legacy_revision(conn: Connection) -> str:
    """The newest revision a database created before migrations fully matches."""
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    columns = {t: {c["name"] for c in insp.get_columns(t)} for t in tables}
    missing: list[str] = []
    for rev, schema in LEGACY_SCHEMAS.items():
        missing = [
            f"{table}.{col}" if table in tables else table
            for table, cols in schema.items()
            for col in sorted(cols if table in tables else ["*"])
            if table not in tables or col not in columns[table]
        ]
        if rev == "0002" and not missing:
            indexes = {ix["name"] for ix in insp.get_indexes("calls")}
            missing = sorted(_INDEXES_0002["calls"] - indexes)
        if not missing:
            return rev
    raise SchemaError(
        "the call records database predates the oldest migration (0001) and cannot be adopted;"
        f" missing: {', '.join(sorted(set(missing)))}. Move it aside to start a new one."
    )
