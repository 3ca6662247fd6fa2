"""After a crash: per-connection ``after_crash`` (resend or hold), and the
queue states ``sending`` (recorded before the submit leaves) and ``unknown``
(held after a crash for the operator to release or fail)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

WITH = "state IN ('queued', 'claimed', 'sending', 'submitted', 'unknown', 'done', 'failed')"
WITHOUT = "state IN ('queued', 'claimed', 'submitted', 'done', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_outbound_message_state"), type_="check")
        batch_op.create_check_constraint("state", WITH)
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_crash", sa.String(length=8), nullable=False, server_default="resend"))
        batch_op.create_check_constraint("after_crash", "after_crash IN ('resend', 'hold')")


def downgrade() -> None:
    with op.batch_alter_table("vendor_connection", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_vendor_connection_after_crash"), type_="check")
        batch_op.drop_column("after_crash")
    # A message that may have been sent goes back to the queue (at least once).
    op.execute("UPDATE outbound_message SET state = 'queued', claimed_by = NULL WHERE state IN ('sending', 'unknown')")
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_outbound_message_state"), type_="check")
        batch_op.create_check_constraint("state", WITHOUT)
