"""Which server instance took each call, so a restarted server can close the calls it left open.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``calls.instance``: the name of the server instance that took the call
(``Settings.resolved_instance_name``, by default ``hostname:port``). At start-up a server closes
the calls its own instance left ``in_progress`` (killed or crashed mid-call) as ``interrupted``
(``CallStore.close_interrupted_calls``), without touching the live calls of other instances
sharing the database. Calls stored before this revision have none (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voice_agent.migrations.helpers import add_column_if_missing, create_index_if_missing

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (a database the store created from the models before migrations may have both already)
    add_column_if_missing("calls", sa.Column("instance", sa.String(length=128), nullable=True))
    create_index_if_missing(op.f("ix_calls_instance"), "calls", ["instance"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calls_instance"), table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("instance")
