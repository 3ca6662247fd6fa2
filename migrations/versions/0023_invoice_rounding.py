"""Invoices round once (SPEC AMB-25): ``invoice.line_decimals``, ``invoice_line.unit_price``

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on invoices built before: their lines were rounded one by one.
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_decimals", sa.Integer(), nullable=True))
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit_price", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.drop_column("unit_price")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_column("line_decimals")
