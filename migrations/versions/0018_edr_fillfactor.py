"""PostgreSQL: EDR heap pages filled to half on insert (fillfactor 50).

An EDR row is updated in place later: its status and times when a receipt
comes, its price columns when it is re-rated. None of those columns is in an
index, so PostgreSQL can make such an update HOT (the new row version in the
same page, no new entry in any of the table's indexes) — but only when the
page has room for it. With full pages every update writes one entry into
each index; on a 10M-EDR table that index upkeep was four fifths of the
rerate's UPDATE time. Half-full pages leave room for one new version of every
row, and a later update of the page prunes the dead ones first.

The price is a heap twice as large. Rows stored before this migration keep
their full pages until the table is rewritten (``VACUUM FULL edr`` or
pg_repack, in a maintenance window); the migration does not rewrite the
table, so it takes no long lock. SQLite has no such setting: nothing there.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

EDR_FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE edr SET (fillfactor = {EDR_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE edr RESET (fillfactor)")
