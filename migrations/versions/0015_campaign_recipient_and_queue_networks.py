"""Networks of campaign recipients and queued messages: mcc, mnc, network.

campaign_recipient and outbound_message get the number range's MCC, MNC (when
its carrier is recognised as one network) and carrier name. Existing rows
keep NULL: their estimate is priced per country, and the dispatch worker
looks their network up from the number.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22 07:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("campaign_recipient", "outbound_message")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("mcc", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True))
            batch_op.add_column(sa.Column("mnc", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True))
            batch_op.add_column(sa.Column("network", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("network")
            batch_op.drop_column("mnc")
            batch_op.drop_column("mcc")
