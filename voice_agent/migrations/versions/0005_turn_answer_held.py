"""When a late answer made the agent tell the caller to hold on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

``turns.answer_held``: the moment the agent said its holding phrase because no answer had played
``answer_hold_secs`` after the caller stopped speaking (``voice_agent.call.answer_watchdog``).
NULL on every other turn, and on turns stored before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voice_agent.migrations.helpers import add_column_if_missing

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (a database the store created from the models before migrations may have it already)
    add_column_if_missing("turns", sa.Column("answer_held", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("answer_held")
