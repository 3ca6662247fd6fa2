"""reports: export tasks, saved reports (and an index on edr.event_at for time-window scans)

Revision ID: 0007
Revises: 0012
Create Date: 2026-11-22 05:06:36.011127
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types


revision = "0007"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edr_export_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("emails", sa.JSON(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("file", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint(
            "state IN ('waiting', 'ready', 'sent', 'failed', 'canceled')", name=op.f("ck_edr_export_task_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edr_export_task")),
    )
    with op.batch_alter_table("edr_export_task", schema=None) as batch_op:
        batch_op.create_index("ix_edr_export_task_state", ["state"], unique=False)

    op.create_table(
        "saved_report",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("client_visible", sa.Boolean(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.CheckConstraint("category IN ('traffic', 'finance', 'audit')", name=op.f("ck_saved_report_category")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_report")),
        sa.UniqueConstraint("name", name=op.f("uq_saved_report_name")),
    )
    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.create_index("ix_edr_event_at", ["event_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("edr", schema=None) as batch_op:
        batch_op.drop_index("ix_edr_event_at")

    op.drop_table("saved_report")
    with op.batch_alter_table("edr_export_task", schema=None) as batch_op:
        batch_op.drop_index("ix_edr_export_task_state")

    op.drop_table("edr_export_task")
