"""Charge kind ``refund``: the charge of a message the SMSC refused is given back

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None

WITH = "kind IN ('edr', 'scale_adjustment', 'pack_purchase', 'fee', 'rerate', 'refund')"
WITHOUT = "kind IN ('edr', 'scale_adjustment', 'pack_purchase', 'fee', 'rerate')"


def upgrade() -> None:
    with op.batch_alter_table("charge", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_charge_kind"), type_="check")
        batch_op.create_check_constraint("kind", WITH)


def downgrade() -> None:
    op.execute("DELETE FROM charge WHERE kind = 'refund'")
    with op.batch_alter_table("charge", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_charge_kind"), type_="check")
        batch_op.create_check_constraint("kind", WITHOUT)
