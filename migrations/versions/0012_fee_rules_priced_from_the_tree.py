"""Fee rules priced from the tree: fee_rule.resource and fee_rule.mno (sender ID fees).

Revision ID: 0012
Revises: 0008
Create Date: 2026-11-22 05:45:07.002553
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fee_rule", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("mno", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fee_rule", schema=None) as batch_op:
        batch_op.drop_column("mno")
        batch_op.drop_column("resource")
