"""Payment confirmation history (``payment_state``) for balances at a past time

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cpaas_cli.db.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("since", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("confirm_before", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payment.id"], name=op.f("fk_payment_state_payment_id_payment"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_state")),
    )
    op.create_index("ix_payment_state_payment_id_since", "payment_state", ["payment_id", "since"], unique=False)
    # Payments registered before: their present state, since their payment date.
    op.execute(
        "INSERT INTO payment_state (payment_id, since, confirmed, confirm_before) "
        "SELECT id, paid_at, confirmed, confirm_before FROM payment ORDER BY id"
    )


def downgrade() -> None:
    op.drop_index("ix_payment_state_payment_id_since", table_name="payment_state")
    op.drop_table("payment_state")
