"""Triage and outcome per call, three more turn stages, full tickets with ITSM sync, console users.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

A database from before migrations may already hold some of these columns: the store used to add
missing columns by itself (``add_missing_columns``) and created new tables on start-up. Such a
database is stamped at 0001 and this revision adds only what it lacks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voice_agent.migrations.helpers import (
    add_column_if_missing,
    create_index_if_missing,
    has_table,
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Functions, not constants: a Column joins the table it is added to, so each run needs new ones.
def _call_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("callback_number", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.String(length=4), nullable=True),
        sa.Column("triage", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
    )


CALL_INDEXES = ("category", "priority", "outcome")
TURN_STAGES = ("triage_done", "lookup_done", "answer_audio_out")


def _ticket_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("callback_number", sa.String(length=32), nullable=True),
        # existing tickets get an empty description (the model's default for new ones)
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("external_system", sa.String(length=32), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("external_number", sa.String(length=32), nullable=True),
        sa.Column("sync_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )


def upgrade() -> None:
    for column in _call_columns():
        add_column_if_missing("calls", column)
    for name in CALL_INDEXES:
        create_index_if_missing(op.f(f"ix_calls_{name}"), "calls", [name])
    for stage in TURN_STAGES:
        add_column_if_missing("turns", sa.Column(stage, sa.Float(), nullable=True))
    for column in _ticket_columns():
        add_column_if_missing("tickets", column)

    if not has_table("users"):
        op.create_table(
            "users",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("password_hash", sa.String(length=255), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False),
            sa.Column("session_version", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    create_index_if_missing(op.f("ix_users_username"), "users", ["username"], unique=True)


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("tickets") as batch:
        for column in reversed(_ticket_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("turns") as batch:
        for stage in reversed(TURN_STAGES):
            batch.drop_column(stage)
    with op.batch_alter_table("calls") as batch:
        for name in CALL_INDEXES:
            batch.drop_index(op.f(f"ix_calls_{name}"))
        for column in reversed(_call_columns()):
            batch.drop_column(column.name)
