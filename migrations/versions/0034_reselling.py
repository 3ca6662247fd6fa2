"""reselling: service owners and reseller plans, reselling agreements on a
reseller's legal entity, and reseller CDRs (issue 29, items 1 and 2)

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from cpaas_cli.db.types import UTCDateTime

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "service_reseller",
        *_stamps(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_service_reseller_company_id_company")),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_service_reseller_service_id_service")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_reseller")),
        sa.UniqueConstraint("service_id", "company_id", name=op.f("uq_service_reseller_service_id_company_id")),
    )
    op.create_index(op.f("ix_service_reseller_company_id"), "service_reseller", ["company_id"], unique=False)
    op.create_index(op.f("ix_service_reseller_service_id"), "service_reseller", ["service_id"], unique=False)
    op.create_table(
        "edr_level",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("edr_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("event_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("rate_path", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("billing_rule", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("unit_price", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("cost", sa.BigInteger(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("pack_enabled_id", sa.Integer(), nullable=True),
        sa.Column("pack_units", sa.BigInteger(), nullable=True),
        sa.Column("rated_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name=op.f("fk_edr_level_agreement_id_agreement")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edr_level")),
        sa.UniqueConstraint("edr_id", "level", name=op.f("uq_edr_level_edr_id_level")),
    )
    op.create_index("ix_edr_level_agreement", "edr_level", ["agreement_id", "event_at", "edr_id"], unique=False)
    op.create_table(
        "reselling_agreement",
        *_stamps(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", UTCDateTime(timezone=True), nullable=False),
        sa.Column("effective_till", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreement.id"], name=op.f("fk_reselling_agreement_agreement_id_agreement")
        ),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"], ["legal_entity.id"], name=op.f("fk_reselling_agreement_legal_entity_id_legal_entity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reselling_agreement")),
    )
    op.create_index(op.f("ix_reselling_agreement_agreement_id"), "reselling_agreement", ["agreement_id"], unique=False)
    op.create_index(
        "ix_reselling_agreement_le_from", "reselling_agreement", ["legal_entity_id", "effective_from"], unique=False
    )
    with op.batch_alter_table("service", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(sa.Column("owner_company_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reseller_plan", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f("ix_service_owner_company_id"), ["owner_company_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_service_owner_company_id_company"), "company", ["owner_company_id"], ["id"]
        )

    # A message's charges: one row per kind, revision and level (agreement) of its chain.
    with op.batch_alter_table("charge", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint("uq_charge_edr_id_kind_revision", type_="unique")
        batch_op.create_unique_constraint(
            "uq_charge_edr_id_kind_revision_agreement_id", ["edr_id", "kind", "revision", "agreement_id"]
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM charge WHERE edr_id IS NOT NULL AND agreement_id <> "
        "(SELECT e.agreement_id FROM edr e WHERE e.id = charge.edr_id)"
    )
    with op.batch_alter_table("charge", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint("uq_charge_edr_id_kind_revision_agreement_id", type_="unique")
        batch_op.create_unique_constraint("uq_charge_edr_id_kind_revision", ["edr_id", "kind", "revision"])
    with op.batch_alter_table("service", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_service_owner_company_id_company"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_service_owner_company_id"))
        batch_op.drop_column("reseller_plan")
        batch_op.drop_column("owner_company_id")
    op.drop_index("ix_reselling_agreement_le_from", table_name="reselling_agreement")
    op.drop_index(op.f("ix_reselling_agreement_agreement_id"), table_name="reselling_agreement")
    op.drop_table("reselling_agreement")
    op.drop_index("ix_edr_level_agreement", table_name="edr_level")
    op.drop_table("edr_level")
    op.drop_index(op.f("ix_service_reseller_service_id"), table_name="service_reseller")
    op.drop_index(op.f("ix_service_reseller_company_id"), table_name="service_reseller")
    op.drop_table("service_reseller")
