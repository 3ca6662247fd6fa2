"""Fewer index entries per EDR and per charge row (bulk ingest and rerate).

- edr: the index for `edr rate` holds the unrated EDRs only, in the order it
  reads them (event_at, id), instead of (rating_state, agreement_id) over all;
  the vendor message id index holds only EDRs that have one.
- charge: the unique key (kind, edr_id, revision) becomes (edr_id, kind,
  revision), which also serves the lookups by edr_id, so ix_charge_edr_id
  goes; the one-purchase-per-pack key holds only pack purchases.

SQLite rebuilds the charge table (batch mode) for the constraint change.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UNRATED = sa.text("rating_state = 'unrated'")
HAS_VENDOR_ID = sa.text("vendor_message_id IS NOT NULL")
IS_PURCHASE = sa.text("enabled_service_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_edr_rating_state_agreement", table_name="edr")
    op.create_index(
        "ix_edr_unrated_event_at", "edr", ["event_at", "id"], sqlite_where=UNRATED, postgresql_where=UNRATED
    )
    op.drop_index("ix_edr_vendor_message_id", table_name="edr")
    op.create_index(
        "ix_edr_vendor_message_id",
        "edr",
        ["vendor_message_id"],
        sqlite_where=HAS_VENDOR_ID,
        postgresql_where=HAS_VENDOR_ID,
    )
    with op.batch_alter_table("charge") as batch_op:
        batch_op.drop_constraint("uq_charge_kind_edr_id_revision", type_="unique")
        batch_op.drop_constraint("uq_charge_enabled_service_id", type_="unique")
        batch_op.drop_index("ix_charge_edr_id")
        batch_op.create_unique_constraint("uq_charge_edr_id_kind_revision", ["edr_id", "kind", "revision"])
    op.create_index(
        "uq_charge_enabled_service_id",
        "charge",
        ["enabled_service_id"],
        unique=True,
        sqlite_where=IS_PURCHASE,
        postgresql_where=IS_PURCHASE,
    )


def downgrade() -> None:
    op.drop_index("uq_charge_enabled_service_id", table_name="charge")
    with op.batch_alter_table("charge") as batch_op:
        batch_op.drop_constraint("uq_charge_edr_id_kind_revision", type_="unique")
        batch_op.create_index("ix_charge_edr_id", ["edr_id"], unique=False)
        batch_op.create_unique_constraint("uq_charge_enabled_service_id", ["enabled_service_id"])
        batch_op.create_unique_constraint("uq_charge_kind_edr_id_revision", ["kind", "edr_id", "revision"])
    op.drop_index("ix_edr_vendor_message_id", table_name="edr")
    op.create_index("ix_edr_vendor_message_id", "edr", ["vendor_message_id"])
    op.drop_index("ix_edr_unrated_event_at", table_name="edr")
    op.create_index("ix_edr_rating_state_agreement", "edr", ["rating_state", "agreement_id"])
