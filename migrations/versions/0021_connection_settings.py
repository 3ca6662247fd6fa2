"""dispatch: per-connection SMPP settings (TON/NPI, GSM-7 data coding,
concatenation, enquire_link and response timers, back-off after a refused bind,
separate transmitter + receiver binds)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_ton", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("source_npi", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("dest_ton", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("dest_npi", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(
            sa.Column("gsm7_coding", sqlmodel.sql.sqltypes.AutoString(length=12), server_default="gsm7", nullable=False)
        )
        batch_op.add_column(
            sa.Column("concat", sqlmodel.sql.sqltypes.AutoString(length=8), server_default="udh8", nullable=False)
        )
        batch_op.add_column(sa.Column("enquire_link", sa.Float(), server_default="30", nullable=False))
        batch_op.add_column(sa.Column("response_timeout", sa.Float(), server_default="10", nullable=False))
        batch_op.add_column(sa.Column("bind_retry_after", sa.Float(), server_default="300", nullable=False))
        batch_op.create_check_constraint("gsm7_coding", "gsm7_coding IN ('gsm7', 'gsm7-packed', 'latin1', 'ia5')")
        batch_op.create_check_constraint("concat", "concat IN ('udh8', 'udh16', 'sar')")
        batch_op.alter_column(
            "bind_mode",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=4),
            type_=sqlmodel.sql.sqltypes.AutoString(length=8),
            existing_nullable=False,
        )
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_bind_mode"), type_="check")
        batch_op.create_check_constraint("bind_mode", "bind_mode IN ('trx', 'tx', 'tx+rx')")
        batch_op.create_check_constraint("timers", "enquire_link > 0 AND response_timeout > 0 AND bind_retry_after > 0")


def downgrade() -> None:
    op.execute("UPDATE vendor_connection SET bind_mode = 'trx' WHERE bind_mode = 'tx+rx'")
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_bind_mode"), type_="check")
        batch_op.create_check_constraint("bind_mode", "bind_mode IN ('trx', 'tx')")
        batch_op.alter_column(
            "bind_mode",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=8),
            type_=sqlmodel.sql.sqltypes.AutoString(length=4),
            existing_nullable=False,
        )
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_timers"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_concat"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_gsm7_coding"), type_="check")
        for name in (
            "bind_retry_after",
            "response_timeout",
            "enquire_link",
            "concat",
            "gsm7_coding",
            "dest_npi",
            "dest_ton",
            "source_npi",
            "source_ton",
        ):
            batch_op.drop_column(name)
