"""Inbound messages (MO, unmatched receipts) and the EDR vendor-message-id index for receipts

Revision ID: 0010
Revises: 0011
Create Date: 2026-11-22 05:41:12.596512
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types


revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("data_coding", sa.Integer(), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("received_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('mo', 'receipt')", name=op.f("ck_inbound_message_kind")),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_inbound_message_company_id_company")),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["vendor_connection.id"], name=op.f("fk_inbound_message_connection_id_vendor_connection")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_message")),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_message_company_id"), ["company_id"], unique=False)
        batch_op.create_index("ix_inbound_message_received_at", ["received_at"], unique=False)

    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.create_index("ix_edr_vendor_message_id", ["vendor_message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.drop_index("ix_edr_vendor_message_id")

    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_message_received_at")
        batch_op.drop_index(batch_op.f("ix_inbound_message_company_id"))

    op.drop_table("inbound_message")
