"""catalog: services, scopes, rate tree, enabled services

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("archived_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "type IN ('payg', 'unit-pack', 'monetary-pack', 'bundle-initiator', 'bundle-pack')",
            name=op.f("ck_service_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service")),
        sa.UniqueConstraint("name", name=op.f("uq_service_name")),
    )
    op.create_table(
        "service_scope",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("effective_from", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("effective_till", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_service_scope_service_id_service")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_scope")),
    )
    with op.batch_alter_table("service_scope", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_scope_service_id"), ["service_id"], unique=False)

    op.create_table(
        "rate_import",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("node_path", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("file_name", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_imported", sa.Integer(), nullable=False),
        sa.Column("rows_skipped", sa.Integer(), nullable=False),
        sa.Column("leaves", sa.Integer(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["scope_id"], ["service_scope.id"], name=op.f("fk_rate_import_scope_id_service_scope")),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_rate_import_service_id_service")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_import")),
    )
    with op.batch_alter_table("rate_import", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_import_service_id"), ["service_id"], unique=False)

    op.create_table(
        "rate_node",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("depends_on", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("price_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("scale", sa.JSON(), nullable=True),
        sa.Column("counter_group", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("billing_rule", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("quantity_rule", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.CheckConstraint(
            "price_type IN ('depends', 'flat', 'scale', 'free', 'included', 'not_included', 'blocked')",
            name=op.f("ck_rate_node_price_type"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["rate_node.id"], name=op.f("fk_rate_node_parent_id_rate_node"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["scope_id"], ["service_scope.id"], name=op.f("fk_rate_node_scope_id_service_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_node")),
    )
    with op.batch_alter_table("rate_node", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_node_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index("ix_rate_node_scope_parent", ["scope_id", "parent_id"], unique=False)

    op.create_table(
        "enabled_service",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("effective_till", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("charge", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreement.id"], name=op.f("fk_enabled_service_agreement_id_agreement")
        ),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_enabled_service_service_id_service")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enabled_service")),
    )
    with op.batch_alter_table("enabled_service", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enabled_service_agreement_id"), ["agreement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enabled_service_service_id"), ["service_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("enabled_service", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enabled_service_service_id"))
        batch_op.drop_index(batch_op.f("ix_enabled_service_agreement_id"))

    op.drop_table("enabled_service")
    with op.batch_alter_table("rate_node", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_node_scope_parent")
        batch_op.drop_index(batch_op.f("ix_rate_node_parent_id"))

    op.drop_table("rate_node")
    with op.batch_alter_table("rate_import", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_import_service_id"))

    op.drop_table("rate_import")
    with op.batch_alter_table("service_scope", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_scope_service_id"))

    op.drop_table("service_scope")
    op.drop_table("service")
