"""vendor cost: vendor price plans (service type ``vendor``) attached to vendor
connections, and each EDR's connection and vendor cost (issue 29, item 3)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

_TYPES = ("payg", "unit-pack", "monetary-pack", "bundle-initiator", "bundle-pack")
WITH = f"type IN ({', '.join(repr(t) for t in (*_TYPES, 'vendor'))})"
WITHOUT = f"type IN ({', '.join(repr(t) for t in _TYPES)})"


def upgrade() -> None:
    with op.batch_alter_table("service", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_service_type"), type_="check")
        batch_op.create_check_constraint("type", WITH)
    with op.batch_alter_table(
        "vendor_connection", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("vendor_plan_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_vendor_connection_vendor_plan_id_service"), "service", ["vendor_plan_id"], ["id"]
        )
    # Plain ADD COLUMNs (nullable, no default): no rebuild of the EDR table on SQLite,
    # no rewrite on PostgreSQL.
    op.add_column("edr", sa.Column("connection_id", sa.Integer(), nullable=True))
    op.add_column("edr", sa.Column("vendor_cost", sa.BigInteger(), nullable=True))
    op.add_column("edr", sa.Column("vendor_currency", sa.String(length=3), nullable=True))
    op.add_column("edr", sa.Column("vendor_service_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # keep the id's AUTOINCREMENT of 0026 through SQLite's rebuild
    with op.batch_alter_table("edr", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("vendor_service_id")
        batch_op.drop_column("vendor_currency")
        batch_op.drop_column("vendor_cost")
        batch_op.drop_column("connection_id")
    with op.batch_alter_table(
        "vendor_connection", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_vendor_connection_vendor_plan_id_service"), type_="foreignkey")
        batch_op.drop_column("vendor_plan_id")
    vendor = "SELECT id FROM service WHERE type = 'vendor'"
    scopes = f"SELECT id FROM service_scope WHERE service_id IN ({vendor})"
    op.execute(f"DELETE FROM rate_import WHERE service_id IN ({vendor})")
    op.execute(f"DELETE FROM rate_node WHERE scope_id IN ({scopes})")
    op.execute(f"DELETE FROM service_scope WHERE service_id IN ({vendor})")
    op.execute("DELETE FROM service WHERE type = 'vendor'")
    with op.batch_alter_table("service", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_service_type"), type_="check")
        batch_op.create_check_constraint("type", WITHOUT)
