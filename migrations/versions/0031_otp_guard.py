"""otp guard: per-integration fraud-guard settings and the prefixes its conversion
alarm blocked (issue 28, item 4)

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-09 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

_UTC = cpaas_cli.db.types.UTCDateTime(timezone=True)
_STR = sqlmodel.sql.sqltypes.AutoString
_OPEN = sa.text("unblocked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "otp_guard",
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.Column("integration_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("per_number_hour", sa.Integer(), nullable=False),
        sa.Column("per_prefix_hour", sa.Integer(), nullable=False),
        sa.Column("per_country_hour", sa.Integer(), nullable=False),
        sa.Column("countries", _STR(length=1000), nullable=True),
        sa.Column("prefix_digits", sa.Integer(), nullable=False),
        sa.Column("min_sends", sa.Integer(), nullable=False),
        sa.Column("min_conversion_bp", sa.Integer(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["otp_integration.id"],
            name=op.f("fk_otp_guard_integration_id_otp_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", name=op.f("pk_otp_guard")),
    )
    op.create_table(
        "otp_guard_block",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("prefix", _STR(length=15), nullable=False),
        sa.Column("country", _STR(length=2), nullable=True),
        sa.Column("reason", _STR(length=300), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
        sa.Column("conversion_bp", sa.Integer(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("blocked_at", _UTC, nullable=False),
        sa.Column("notice", _STR(length=500), nullable=True),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.BigInteger(), nullable=True),
        sa.Column("currency", _STR(length=3), nullable=True),
        sa.Column("saved", sa.BigInteger(), nullable=False),
        sa.Column("last_refused_at", _UTC, nullable=True),
        sa.Column("unblocked_at", _UTC, nullable=True),
        sa.Column("unblocked_by", _STR(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["otp_integration.id"],
            name=op.f("fk_otp_guard_block_integration_id_otp_integration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_guard_block")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_otp_guard_block_integration_id"), "otp_guard_block", ["integration_id"])
    op.create_index(
        "uq_otp_guard_block_open",
        "otp_guard_block",
        ["integration_id", "prefix"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_otp_guard_block_open", table_name="otp_guard_block")
    op.drop_index(op.f("ix_otp_guard_block_integration_id"), table_name="otp_guard_block")
    op.drop_table("otp_guard_block")
    op.drop_table("otp_guard")
