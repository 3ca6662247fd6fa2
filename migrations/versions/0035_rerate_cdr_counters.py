"""rerate: the reseller CDRs' counters apart from the EDRs' (RR-04), on tasks and unit markers

A reselling agreement's units used to add their reseller CDRs to the task's EDR
counters. The markers of such units (an agreement with reseller CDRs and no EDR
of its own) move their counters to the CDR columns, and the completed tasks
that had one get their EDR counters summed again.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-12 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

EDR = ("processed", "updated", "unchanged", "failed")
CDR = ("cdr_processed", "cdr_created", "cdr_updated", "cdr_unchanged", "cdr_failed")
LEVEL_UNIT = (
    "EXISTS (SELECT 1 FROM edr_level l WHERE l.agreement_id = rerate_unit.agreement_id)"
    " AND NOT EXISTS (SELECT 1 FROM edr e WHERE e.agreement_id = rerate_unit.agreement_id)"
)


def _sum(column: str) -> str:
    return f"(SELECT COALESCE(SUM(u.{column}), 0) FROM rerate_unit u WHERE u.task_id = rerate_task.id)"


def upgrade() -> None:
    for table in ("rerate_task", "rerate_unit"):
        with op.batch_alter_table(table, schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            for c in CDR:
                batch_op.add_column(sa.Column(c, sa.BigInteger(), server_default="0", nullable=False))
    moved = ", ".join(f"cdr_{c} = {c}" for c in EDR) + ", " + ", ".join(f"{c} = 0" for c in EDR)
    op.execute(f"UPDATE rerate_unit SET {moved} WHERE {LEVEL_UNIT}")
    summed = ", ".join(f"{c} = {_sum(c)}" for c in EDR + CDR)
    op.execute(
        f"UPDATE rerate_task SET {summed} WHERE status = 'completed' AND EXISTS "
        "(SELECT 1 FROM rerate_unit u WHERE u.task_id = rerate_task.id AND u.cdr_processed > 0)"
    )


def downgrade() -> None:
    # the reseller CDRs back into the EDR counters, as before (the created ones were not counted then)
    folded = (
        "processed = processed + cdr_processed - cdr_created, updated = updated + cdr_updated, "
        "unchanged = unchanged + cdr_unchanged, failed = failed + cdr_failed"
    )
    op.execute(f"UPDATE rerate_unit SET {folded}")
    op.execute(f"UPDATE rerate_task SET {folded}")
    for table in ("rerate_unit", "rerate_task"):
        with op.batch_alter_table(table, schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            for c in reversed(CDR):
                batch_op.drop_column(c)
