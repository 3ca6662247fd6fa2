"""campaigns: sender ids, templates, campaigns, recipients, outbound queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Also adds company.moderation (pre-moderation of campaigns).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op
from sqlalchemy.dialects import postgresql

import cpaas_cli.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_id",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.CheckConstraint(
            "channel IN ('sms', 'viber', 'whatsapp', 'rcs', 'wechat', 'email', 'telegram', 'push', 'tts', 'voice')",
            name=op.f("ck_sender_id_channel"),
        ),
        sa.CheckConstraint("kind IN ('alphanumeric', 'short_code', 'long_code')", name=op.f("ck_sender_id_kind")),
        sa.CheckConstraint("status IN ('draft', 'active', 'disabled')", name=op.f("ck_sender_id_status")),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name=op.f("fk_sender_id_agreement_id_agreement")),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_sender_id_company_id_company")),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["vendor_connection.id"], name=op.f("fk_sender_id_connection_id_vendor_connection")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_id")),
        sa.UniqueConstraint("company_id", "channel", "sender", name=op.f("uq_sender_id_company_id_channel_sender")),
    )
    with op.batch_alter_table("sender_id", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sender_id_agreement_id"), ["agreement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sender_id_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sender_id_connection_id"), ["connection_id"], unique=False)

    op.create_table(
        "message_template",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_message_template_company_id_company")),
        sa.ForeignKeyConstraint(["sender_id"], ["sender_id.id"], name=op.f("fk_message_template_sender_id_sender_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_template")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_message_template_company_id_name")),
    )
    with op.batch_alter_table("message_template", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_template_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_template_sender_id"), ["sender_id"], unique=False)

    op.create_table(
        "campaign",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("from_template", sa.Boolean(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("personalised", sa.Boolean(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("flash", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("scheduled_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("schedule_tz", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("started_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("excluded_stop_list", sa.Integer(), nullable=False),
        sa.Column("excluded_invalid", sa.Integer(), nullable=False),
        sa.Column("excluded_duplicate", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("estimated_cost", sa.BigInteger(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("moderated_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("moderated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("repeat_of_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'pending_moderation', 'scheduled', 'in_progress', 'paused', 'completed', 'failed', 'canceled')",
            name=op.f("ck_campaign_state"),
        ),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name=op.f("fk_campaign_agreement_id_agreement")),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_campaign_company_id_company")),
        sa.ForeignKeyConstraint(
            ["repeat_of_id"], ["campaign.id"], name=op.f("fk_campaign_repeat_of_id_campaign"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["sender_id"], ["sender_id.id"], name=op.f("fk_campaign_sender_id_sender_id")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["message_template.id"],
            name=op.f("fk_campaign_template_id_message_template"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
    )
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_agreement_id"), ["agreement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_scheduled_at"), ["scheduled_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_sender_id"), ["sender_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_template_id"), ["template_id"], unique=False)

    op.create_table(
        "campaign_recipient",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column(
            "values", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_campaign_recipient_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_recipient")),
    )
    with op.batch_alter_table("campaign_recipient", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_recipient_campaign", ["campaign_id", "id"], unique=False)

    op.create_table(
        "outbound_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("encoding", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("flash", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("claimed_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("vendor_message_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'claimed', 'submitted', 'done', 'failed')", name=op.f("ck_outbound_message_state")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_outbound_message_campaign_id_campaign"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["vendor_connection.id"],
            name=op.f("fk_outbound_message_connection_id_vendor_connection"),
        ),
        sa.ForeignKeyConstraint(["sender_id"], ["sender_id.id"], name=op.f("fk_outbound_message_sender_id_sender_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_message")),
    )
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_message_campaign", ["campaign_id", "state"], unique=False)
        batch_op.create_index("ix_outbound_message_state", ["state", "id"], unique=False)

    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.add_column(sa.Column("moderation", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.drop_column("moderation")

    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_message_state")
        batch_op.drop_index("ix_outbound_message_campaign")

    op.drop_table("outbound_message")
    with op.batch_alter_table("campaign_recipient", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_recipient_campaign")

    op.drop_table("campaign_recipient")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_template_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_state"))
        batch_op.drop_index(batch_op.f("ix_campaign_sender_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_scheduled_at"))
        batch_op.drop_index(batch_op.f("ix_campaign_company_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_agreement_id"))

    op.drop_table("campaign")
    with op.batch_alter_table("message_template", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_template_sender_id"))
        batch_op.drop_index(batch_op.f("ix_message_template_company_id"))

    op.drop_table("message_template")
    with op.batch_alter_table("sender_id", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sender_id_connection_id"))
        batch_op.drop_index(batch_op.f("ix_sender_id_company_id"))
        batch_op.drop_index(batch_op.f("ix_sender_id_agreement_id"))

    op.drop_table("sender_id")
