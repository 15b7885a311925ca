"""What each caller turn was understood to do, and how sure the recogniser was.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``turns.understood``: ``{"act", "confidence", "by", "heard_logprob"}`` - the dialogue act the
conversation read from the caller's words (``voice_agent.flows.understanding``) and Whisper's mean
token log-probability for them, so a supervisor can see where a call went wrong because a word was
misheard. Older turns have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from voice_agent.migrations.helpers import add_column_if_missing

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_column_if_missing("turns", sa.Column("understood", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("understood")
