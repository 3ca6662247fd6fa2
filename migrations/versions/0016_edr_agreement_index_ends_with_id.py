"""The agreement index of edr ends with id: (agreement_id, event_at, id).

Rerate reads an agreement's EDRs in (event_at, id) order in keyset chunks.
With id in the index, PostgreSQL takes each chunk straight from the index
whatever its statistics say; without it, a plan made on stale statistics
sorted every remaining row of the period for each chunk. SQLite already
ordered equal keys by rowid (= id); the rebuilt index is the same there.

On a large PostgreSQL edr table the rebuild locks the table for writes while
it runs; a busy installation may instead create the new index CONCURRENTLY by
hand under another name, drop the old one and rename, then stamp this revision.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 21:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_edr_agreement_event_at", table_name="edr")
    op.create_index("ix_edr_agreement_event_at", "edr", ["agreement_id", "event_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_edr_agreement_event_at", table_name="edr")
    op.create_index("ix_edr_agreement_event_at", "edr", ["agreement_id", "event_at"])
