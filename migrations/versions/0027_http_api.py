"""HTTP API: the API key and label of a message sent through the API (queue row
and EDR, SPEC EDR-01), and the idempotency records of ``POST /v1/messages``

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cpaas_cli.db.types

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_API = sa.text("api_key_id IS NOT NULL")


def upgrade() -> None:
    for table in ("outbound_message", "edr"):
        op.add_column(table, sa.Column("api_key_id", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("label", sa.String(length=100), nullable=True))
    op.create_index(
        "ix_outbound_message_api_key",
        "outbound_message",
        ["api_key_id", "id"],
        sqlite_where=_API,
        postgresql_where=_API,
    )
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotency")),
        sa.UniqueConstraint("api_key_id", "key", name=op.f("uq_api_idempotency_api_key_id_key")),
    )
    op.create_index("ix_api_idempotency_created_at", "api_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_idempotency_created_at", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_index("ix_outbound_message_api_key", table_name="outbound_message")
    for table in ("edr", "outbound_message"):
        # keep the id's AUTOINCREMENT of 0026 through SQLite's rebuild
        with op.batch_alter_table(table, schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            batch_op.drop_column("label")
            batch_op.drop_column("api_key_id")
