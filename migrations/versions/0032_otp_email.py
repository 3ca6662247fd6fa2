"""otp e-mail: the e-mail channel of 2FA integrations (a subject; a request's address in
``number``, widened to 254, and its channel) and a test send's own status URL (issue 28)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-12 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("otp_integration", sa.Column("subject", _STR(length=200), nullable=True))
    # keep the id's AUTOINCREMENT of 0030 through SQLite's rebuild
    with op.batch_alter_table("otp_request", schema=None, table_kwargs={"sqlite_autoincrement": True}) as b:
        b.alter_column("number", existing_type=_STR(length=15), type_=_STR(length=254), existing_nullable=False)
        b.add_column(sa.Column("channel", _STR(length=8), server_default="sms", nullable=False))
        b.add_column(sa.Column("callback_url", _STR(length=2000), nullable=True))


def downgrade() -> None:
    # e-mail requests do not fit a 15-character number: they go, with their integrations
    op.execute("DELETE FROM otp_request WHERE channel <> 'sms'")
    op.execute("DELETE FROM otp_integration WHERE channel <> 'sms'")
    with op.batch_alter_table("otp_request", schema=None, table_kwargs={"sqlite_autoincrement": True}) as b:
        b.drop_column("callback_url")
        b.drop_column("channel")
        b.alter_column("number", existing_type=_STR(length=254), type_=_STR(length=15), existing_nullable=False)
    op.drop_column("otp_integration", "subject")
