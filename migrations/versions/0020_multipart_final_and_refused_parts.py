"""multi-part messages: how they become final, and the parts the SMSC refused

``vendor_connection.multipart_final`` (all | any | last, default all) says
which parts of a long message ask for a delivery receipt and which receipts
make the message final. ``edr.segments_refused`` counts the parts of a long
message that the SMSC refused while the others went out (NULL: none).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "multipart_final", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False, server_default="all"
            )
        )
        batch_op.create_check_constraint(
            op.f("ck_vendor_connection_multipart_final"), "multipart_final IN ('all', 'any', 'last')"
        )
    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments_refused", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.drop_column("segments_refused")
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_vendor_connection_multipart_final"), type_="check")
        batch_op.drop_column("multipart_final")
