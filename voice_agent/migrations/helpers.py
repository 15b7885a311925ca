"""Schema look-ups for migrations that must also fit databases from before Alembic.

Before migrations the store created missing tables and added missing columns on its own, so such
a database may already hold part of what a revision adds. These helpers let that revision add
only what is absent; new revisions (on databases Alembic created) do not need them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def has_table(table: str) -> bool:
    return _inspector().has_table(table)


def has_column(table: str, column: str) -> bool:
    return any(c["name"] == column for c in _inspector().get_columns(table))


def add_column_if_missing(table: str, column: sa.Column) -> None:
    if not has_column(table, column.name):
        op.add_column(table, column)


def create_index_if_missing(
    name: str, table: str, columns: list[str], unique: bool = False
) -> None:
    if not any(ix["name"] == name for ix in _inspector().get_indexes(table)):
        op.create_index(name, table, columns, unique=unique)
