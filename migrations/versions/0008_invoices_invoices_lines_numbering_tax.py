"""invoices: invoices, lines, numbering, tax

Also the fee-rule bookkeeping (fee_rule, fee_run) for recurring and one-time
fees, and agreement_version.tax_rate (percent × 1,000,000, default 0).

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-22 05:07:09.809355
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types


revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_counter",
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"], ["legal_entity.id"], name=op.f("fk_invoice_counter_legal_entity_id_legal_entity")
        ),
        sa.PrimaryKeyConstraint("legal_entity_id", name=op.f("pk_invoice_counter")),
    )
    op.create_table(
        "fee_rule",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("every", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("start_day", sa.Integer(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("retry_hours", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("tz", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("effective_from", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("effective_till", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.CheckConstraint("every IS NULL OR every IN ('month', 'week')", name=op.f("ck_fee_rule_every")),
        sa.CheckConstraint("kind IN ('setup', 'usage')", name=op.f("ck_fee_rule_kind")),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name=op.f("fk_fee_rule_agreement_id_agreement")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_rule")),
    )
    with op.batch_alter_table("fee_rule", schema=None) as batch_op:
        batch_op.create_index("ix_fee_rule_subject", ["agreement_id", "subject_kind", "subject_ref"], unique=False)

    op.create_table(
        "fee_run",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("period_start", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("charge_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.CheckConstraint("status IN ('charged', 'retrying', 'failed')", name=op.f("ck_fee_run_status")),
        sa.ForeignKeyConstraint(["rule_id"], ["fee_rule.id"], name=op.f("fk_fee_run_rule_id_fee_rule")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_run")),
        sa.UniqueConstraint("rule_id", "period_start", name=op.f("uq_fee_run_rule_id_period_start")),
    )
    with op.batch_alter_table("fee_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fee_run_rule_id"), ["rule_id"], unique=False)

    op.create_table(
        "invoice",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("own_legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=True),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("period_start", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("billing_tz", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("local_start_date", sa.Date(), nullable=False),
        sa.Column("local_end_date", sa.Date(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("tax_rate", sa.BigInteger(), nullable=False),
        sa.Column("days_for_payment", sa.Integer(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("charge_count", sa.BigInteger(), nullable=False),
        sa.Column("charges_total", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("rounding", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("calculated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("voided_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_to", sa.JSON(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'confirmed', 'void')", name=op.f("ck_invoice_status")),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name=op.f("fk_invoice_agreement_id_agreement")),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"], ["legal_entity.id"], name=op.f("fk_invoice_legal_entity_id_legal_entity")
        ),
        sa.ForeignKeyConstraint(
            ["own_legal_entity_id"], ["legal_entity.id"], name=op.f("fk_invoice_own_legal_entity_id_legal_entity")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["agreement_version.id"], name=op.f("fk_invoice_version_id_agreement_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
        sa.UniqueConstraint(
            "agreement_id", "period_start", "generation", name=op.f("uq_invoice_agreement_id_period_start_generation")
        ),
        sa.UniqueConstraint("own_legal_entity_id", "number", name=op.f("uq_invoice_own_legal_entity_id_number")),
    )
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_agreement_id"), ["agreement_id"], unique=False)

    op.create_table(
        "invoice_charge",
        sa.Column("charge_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["charge_id"], ["charge.id"], name=op.f("fk_invoice_charge_charge_id_charge")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name=op.f("fk_invoice_charge_invoice_id_invoice")),
        sa.PrimaryKeyConstraint("charge_id", name=op.f("pk_invoice_charge")),
    )
    with op.batch_alter_table("invoice_charge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_charge_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "invoice_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("correction", sa.Boolean(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("network", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("exact", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("rounding", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name=op.f("fk_invoice_line_invoice_id_invoice")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_line")),
    )
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_line_invoice_id"), ["invoice_id"], unique=False)

    with op.batch_alter_table("agreement_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tax_rate", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("agreement_version", schema=None) as batch_op:
        batch_op.drop_column("tax_rate")

    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_line_invoice_id"))

    op.drop_table("invoice_line")
    with op.batch_alter_table("invoice_charge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_charge_invoice_id"))

    op.drop_table("invoice_charge")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_agreement_id"))

    op.drop_table("invoice")
    with op.batch_alter_table("fee_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fee_run_rule_id"))

    op.drop_table("fee_run")
    with op.batch_alter_table("fee_rule", schema=None) as batch_op:
        batch_op.drop_index("ix_fee_rule_subject")

    op.drop_table("fee_rule")
    op.drop_table("invoice_counter")
