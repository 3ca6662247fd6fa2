"""MO callbacks: the partner's MO messages mode (company.mo_messages, SPEC CMP-18)
and the acceptMO flag of an API message's queue row (SPEC CMP-24/25), with a
small partial index the MO matching reads (only the acceptMO rows are in it)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_SQLITE_MO = sa.text("accept_mo = 1")
_PG_MO = sa.text("accept_mo")


def upgrade() -> None:
    op.add_column("company", sa.Column("mo_messages", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("outbound_message", sa.Column("accept_mo", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "ix_outbound_message_accept_mo",
        "outbound_message",
        ["phone", "id"],
        sqlite_where=_SQLITE_MO,
        postgresql_where=_PG_MO,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_message_accept_mo", table_name="outbound_message")
    # keep the ids' AUTOINCREMENT of 0026 through SQLite's rebuilds
    with op.batch_alter_table("outbound_message", schema=None, table_kwargs={"sqlite_autoincrement": True}) as b:
        b.drop_column("accept_mo")
    with op.batch_alter_table("company", schema=None, table_kwargs={"sqlite_autoincrement": True}) as b:
        b.drop_column("mo_messages")
