"""Receipt matching and MO scope: a connection's default country (national MO
numbers to E.164) and its learned message-id relation; the reason an inbound
message was not applied (an ambiguous receipt, an opt-out no company owns).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        batch_op.add_column(sa.Column("message_id_learned", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.drop_column("message_id_learned")
        batch_op.drop_column("default_country")
