"""otp: 2FA integrations and their requests (SPEC OTP-01..06); the callback
outbox carries OTP results too (``kind``, the integration, the stored body),
so its ``api_key_id`` may be empty

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-08 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

_UTC = cpaas_cli.db.types.UTCDateTime(timezone=True)
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "otp_integration",
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", _STR(length=110), nullable=False),
        sa.Column("mode", _STR(length=10), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("template", _STR(length=1000), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("code_type", _STR(length=12), nullable=False),
        sa.Column("validity_s", sa.Integer(), nullable=False),
        sa.Column("channel", _STR(length=8), nullable=False),
        sa.Column("callback_url", _STR(length=2000), nullable=True),
        sa.Column("callback_secret", _STR(), nullable=True),
        sa.Column("key_id", _STR(length=32), nullable=False),
        sa.Column("secret_hash", _STR(length=64), nullable=False),
        sa.Column("state", _STR(length=8), nullable=False),
        sa.Column("max_checks", sa.Integer(), nullable=False),
        sa.Column("max_sends", sa.Integer(), nullable=False),
        sa.Column("send_window_s", sa.Integer(), nullable=False),
        sa.CheckConstraint("code_type IN ('numeric', 'alphanumeric')", name=op.f("ck_otp_integration_code_type")),
        sa.CheckConstraint("mode IN ('platform', 'client')", name=op.f("ck_otp_integration_mode")),
        sa.CheckConstraint("state IN ('draft', 'active', 'blocked')", name=op.f("ck_otp_integration_state")),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_otp_integration_company_id_company")),
        sa.ForeignKeyConstraint(["sender_id"], ["sender_id.id"], name=op.f("fk_otp_integration_sender_id_sender_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_integration")),
        sa.UniqueConstraint("company_id", "name", name="uq_otp_integration_company_name"),
        sa.UniqueConstraint("key_id", name=op.f("uq_otp_integration_key_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_otp_integration_company_id"), "otp_integration", ["company_id"])
    op.create_table(
        "otp_request",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("request_id", _STR(length=32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("number", _STR(length=15), nullable=False),
        sa.Column("country", _STR(length=2), nullable=True),
        sa.Column("mode", _STR(length=10), nullable=False),
        sa.Column("code_hash", _STR(length=64), nullable=True),
        sa.Column("state", _STR(length=10), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("queue_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_status", _STR(length=12), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.Column("sent_at", _UTC, nullable=True),
        sa.Column("verified_at", _UTC, nullable=True),
        sa.Column("closed_at", _UTC, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'verified', 'expired', 'cancelled', 'locked', 'failed')",
            name=op.f("ck_otp_request_state"),
        ),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_otp_request_company_id_company")),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["otp_integration.id"],
            name=op.f("fk_otp_request_integration_id_otp_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_request")),
        sa.UniqueConstraint("request_id", name=op.f("uq_otp_request_request_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_otp_request_created", "otp_request", ["integration_id", "created_at"])
    op.create_index("ix_otp_request_number", "otp_request", ["integration_id", "number", "created_at"])
    op.create_index(op.f("ix_otp_request_queue_id"), "otp_request", ["queue_id"])
    with op.batch_alter_table("callback_outbox", schema=None) as b:
        b.add_column(sa.Column("kind", _STR(length=8), server_default="message", nullable=False))
        b.add_column(sa.Column("otp_integration_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        b.alter_column("api_key_id", existing_type=sa.Integer(), nullable=True)
        b.create_index(op.f("ix_callback_outbox_otp_integration_id"), ["otp_integration_id"])
        b.create_foreign_key(
            op.f("fk_callback_outbox_otp_integration_id_otp_integration"),
            "otp_integration",
            ["otp_integration_id"],
            ["id"],
            ondelete="CASCADE",
        )
        b.create_check_constraint(op.f("ck_callback_outbox_kind"), "kind IN ('message', 'otp')")


def downgrade() -> None:
    op.execute("DELETE FROM callback_outbox WHERE kind <> 'message'")
    with op.batch_alter_table("callback_outbox", schema=None) as b:
        b.drop_constraint(op.f("ck_callback_outbox_kind"), type_="check")
        b.drop_constraint(op.f("fk_callback_outbox_otp_integration_id_otp_integration"), type_="foreignkey")
        b.drop_index(op.f("ix_callback_outbox_otp_integration_id"))
        b.alter_column("api_key_id", existing_type=sa.Integer(), nullable=False)
        b.drop_column("payload")
        b.drop_column("otp_integration_id")
        b.drop_column("kind")
    op.drop_index(op.f("ix_otp_request_queue_id"), table_name="otp_request")
    op.drop_index("ix_otp_request_number", table_name="otp_request")
    op.drop_index("ix_otp_request_created", table_name="otp_request")
    op.drop_table("otp_request")
    op.drop_index(op.f("ix_otp_integration_company_id"), table_name="otp_integration")
    op.drop_table("otp_integration")
