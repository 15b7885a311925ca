"""Schema migrations on real SQLite and PostgreSQL databases: the migrated schema is the models'
schema, databases from before migrations keep their data, and bad databases fail clearly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from voice_agent import migrations
from voice_agent.records import TurnRecord
from voice_agent.storage import Base, CallStore
from voice_agent.tickets.records import NewTicket, TicketRecords


def schema_differences(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def schema_0001() -> sa.MetaData:
    """The tables as ``Base.metadata.create_all`` made them at commit 1abeceb (before Alembic)."""
    md = sa.MetaData()
    sa.Table(
        "calls",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("transport", sa.String(32), nullable=False),
        sa.Column("caller", sa.String(64)),
        sa.Column("external_id", sa.String(64), index=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("end_reason", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("models", sa.JSON, nullable=False),
    )
    stages = (
        "speech_start speech_end stt_done turn_end llm_first_token first_sentence "
        "tts_first_audio first_audio_out bot_done reply_heard"
    ).split()
    sa.Table(
        "turns",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "call_id", sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_text", sa.Text, nullable=False),
        sa.Column("bot_text", sa.Text, nullable=False),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("citations", sa.JSON, nullable=False),
        *(sa.Column(stage, sa.Float) for stage in stages),
    )
    sa.Table(
        "tickets",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(16), unique=True, index=True),
        sa.Column("call_id", sa.ForeignKey("calls.id"), index=True),
        sa.Column("caller", sa.String(64)),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(4), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignment", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    return md


def fill_0001(engine: sa.Engine, md: sa.MetaData) -> None:
    """One finished call with two turns and a ticket, written the way the 1abeceb store did."""
    calls, turns, tickets = md.tables["calls"], md.tables["turns"], md.tables["tickets"]
    started = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            calls.insert(),
            dict(
                id="old-call",
                transport="twilio",
                caller="+15551230000",
                external_id="CA123",
                started_at=started,
                ended_at=started.replace(minute=34),
                status="completed",
                models={"llm": "qwen2.5-coder-1.5b"},
            ),
        )
        for index, (user, bot, interrupted) in enumerate(
            [("", "Hello, IT helpdesk.", False), ("my vpn is down", "Let's check.", True)]
        ):
            conn.execute(
                turns.insert(),
                dict(
                    call_id="old-call",
                    index=index,
                    kind="greeting" if index == 0 else "reply",
                    user_text=user,
                    bot_text=bot,
                    interrupted=interrupted,
                    citations=[{"path": "vpn.md", "title": "VPN"}] if index else [],
                    speech_end=100.0 if index else None,
                    first_audio_out=101.5 if index else None,
                ),
            )
        conn.execute(
            tickets.insert(),
            dict(
                number="INC0000001",
                call_id="old-call",
                caller="+15551230000",
                category="network",
                priority="P2",
                summary="VPN down since this morning",
                status="new",
                created_at=started,
            ),
        )


def test_upgrade_head_leaves_no_difference_from_the_models(any_database_url):
    store = CallStore(any_database_url)
    assert migrations.current(store.engine) == migrations.head() == "0005"
    assert schema_differences(store.engine) == []
    # opening it again is a no-op
    CallStore(any_database_url).engine.dispose()
    assert migrations.current(store.engine) == "0005"
    store.engine.dispose()


def test_downgrade_to_0001_and_back_keeps_calls_and_turns(any_database_url):
    store = CallStore(any_database_url)
    call_id = store.start_call("webrtc", caller="browser")
    understood = {"act": "problem", "confidence": 0.8, "by": "model", "heard_logprob": -0.4}
    store.add_turn(
        call_id,
        TurnRecord(
            index=0, user_text="printer jam", bot_text="Open tray 2.", understood=understood
        ),
    )
    assert store.get_call(call_id)["turns"][0]["understood"] == understood
    migrations.downgrade(store.engine, "0001")
    assert migrations.current(store.engine) == "0001"
    differences = {
        d[0] if isinstance(d, tuple) else d[0][0] for d in schema_differences(store.engine)
    }
    assert {"add_table", "add_column"} <= differences  # users and the 0002 columns are gone
    with store.engine.connect() as conn:  # SQLite rebuilt calls: the turns must not cascade away
        assert conn.execute(sa.text("SELECT user_text FROM turns")).scalars().all() == [
            "printer jam"
        ]
    migrations.upgrade(store.engine)
    assert schema_differences(store.engine) == []
    assert store.get_call(call_id)["turns"][0]["bot_text"] == "Open tray 2."
    store.engine.dispose()


def test_a_database_from_before_migrations_is_adopted_and_keeps_its_data(any_database_url):
    engine = sa.create_engine(any_database_url)
    md = schema_0001()
    md.create_all(engine)
    fill_0001(engine, md)
    with engine.connect() as conn:
        assert migrations.legacy_revision(conn) == "0001"
    engine.dispose()

    store = CallStore(any_database_url)
    assert migrations.current(store.engine) == migrations.head()
    assert schema_differences(store.engine) == []
    call = store.get_call("old-call")
    assert call["status"] == "completed" and call["caller"] == "+15551230000"
    assert call["models"] == {"llm": "qwen2.5-coder-1.5b"}
    assert call["started_at"].startswith("2025-03-04T09:30")
    greeting, reply = call["turns"]
    assert greeting["bot_text"] == "Hello, IT helpdesk." and not greeting["interrupted"]
    assert reply["user_text"] == "my vpn is down" and reply["interrupted"] is True
    assert reply["citations"] == [{"path": "vpn.md", "title": "VPN"}]
    assert reply["latency"]["voice_to_voice_secs"] == 1.5
    (ticket,) = store.tickets_for_call("old-call")
    assert ticket["number"] == "INC0000001" and ticket["priority"] == "P2"
    # the new columns work on old rows, and numbering continues after the old ticket
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET outcome = 'ticket', category = 'network' WHERE id = :id"),
            {"id": "old-call"},
        )
        assert conn.execute(sa.text("SELECT description FROM tickets")).scalar_one() == ""
    assert (
        TicketRecords(store).insert(NewTicket(summary="second", call_id="old-call")).number
        == "INC0000002"
    )
    store.engine.dispose()


def test_a_database_made_by_the_store_just_before_migrations_is_stamped_at_0002(
    any_database_url,
):
    engine = sa.create_engine(any_database_url)
    Base.metadata.create_all(engine)  # what CallStore did on start-up until now
    with engine.connect() as conn:
        assert migrations.legacy_revision(conn) == "0002"
    engine.dispose()
    store = CallStore(any_database_url)
    assert migrations.current(store.engine) == migrations.head()
    assert schema_differences(store.engine) == []
    store.engine.dispose()


def test_columns_added_by_the_old_additive_upgrade_are_not_added_twice(tmp_path):
    """The store used to ALTER TABLE ADD missing columns (no indexes, no users table)."""
    url = f"sqlite:///{tmp_path / 'half.db'}"
    engine = sa.create_engine(url)
    md = schema_0001()
    md.create_all(engine)
    fill_0001(engine, md)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE calls ADD COLUMN category VARCHAR(32)"))
        conn.execute(sa.text("ALTER TABLE turns ADD COLUMN triage_done FLOAT"))
    engine.dispose()
    store = CallStore(url)
    assert migrations.current(store.engine) == migrations.head()
    assert schema_differences(store.engine) == []
    assert [t["index"] for t in store.get_call("old-call")["turns"]] == [0, 1]


def test_a_database_older_than_0001_is_refused_with_what_it_lacks(tmp_path):
    url = f"sqlite:///{tmp_path / 'ancient.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE calls (id VARCHAR(36) PRIMARY KEY, transport TEXT)"))
    engine.dispose()
    with pytest.raises(migrations.SchemaError, match=r"predates .*calls\.caller.*tickets"):
        CallStore(url)


def test_a_database_from_a_newer_release_is_refused(any_database_url):
    store = CallStore(any_database_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(migrations.SchemaError, match="at revision 0099.*newer voice-agent"):
        CallStore(any_database_url)
    store.engine.dispose()


def test_processes_starting_together_migrate_once(postgres_url):
    """Two servers starting at once on an empty PostgreSQL database (the advisory lock)."""
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            CallStore(postgres_url).engine.dispose()
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = sa.create_engine(postgres_url)
    assert migrations.current(engine) == migrations.head()
    engine.dispose()


def test_missing_postgres_binaries_fail_and_say_how_to_install_them(monkeypatch):
    import postgres

    monkeypatch.setattr(postgres, "BIN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(pytest.fail.Exception, match=r"run `\./run\.sh test`"):
        postgres.server_binaries()
