"""callbacks: each API key's callback URL and signing secret (a Fernet token),
and the durable outbox of callback events (SPEC CMP-25); the token buckets of
the request limits shared across processes (SPEC CMP-26)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")
_DEAD = sa.text("state = 'dead'")


def upgrade() -> None:
    op.create_table(
        "api_key_callback",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_key.id"], name=op.f("fk_api_key_callback_api_key_id_api_key"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_api_key_callback")),
    )
    op.create_table(
        "callback_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("edr_id", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("dnis", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("event_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name=op.f("ck_callback_outbox_state")),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_key.id"], name=op.f("fk_callback_outbox_api_key_id_api_key"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_outbox")),
    )
    op.create_index(op.f("ix_callback_outbox_api_key_id"), "callback_outbox", ["api_key_id"])
    op.create_index(
        "ix_callback_outbox_pending",
        "callback_outbox",
        ["next_at", "id"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index(
        "ix_callback_outbox_message_pending",
        "callback_outbox",
        ["transaction_id", "id"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index("ix_callback_outbox_dead", "callback_outbox", ["id"], sqlite_where=_DEAD, postgresql_where=_DEAD)
    op.create_table(
        "rate_bucket",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("micro_tokens", sa.BigInteger(), nullable=False),
        sa.Column("at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_bucket")),
    )


def downgrade() -> None:
    op.drop_table("rate_bucket")
    op.drop_index("ix_callback_outbox_dead", table_name="callback_outbox")
    op.drop_index("ix_callback_outbox_message_pending", table_name="callback_outbox")
    op.drop_index("ix_callback_outbox_pending", table_name="callback_outbox")
    op.drop_index(op.f("ix_callback_outbox_api_key_id"), table_name="callback_outbox")
    op.drop_table("callback_outbox")
    op.drop_table("api_key_callback")
