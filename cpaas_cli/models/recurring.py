"""Fee rules and their runs, keyed by a generic subject so any object (a
sender ID above all) can carry recurring or one-time fees."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

RULE_KINDS = ("setup", "usage")
EVERY = ("month", "week")
RUN_STATUSES = ("charged", "retrying", "failed")


class FeeRule(Timestamped, table=True):
    __tablename__ = "fee_rule"
    __table_args__ = (
        sa.Index("ix_fee_rule_subject", "agreement_id", "subject_kind", "subject_ref"),
        sa.CheckConstraint("kind IN ('setup', 'usage')", name="kind"),
        sa.CheckConstraint("every IS NULL OR every IN ('month', 'week')", name="every"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="agreement.id")
    subject_kind: str = Field(max_length=32)  # e.g. "sender_id"
    subject_ref: str = Field(max_length=200)  # e.g. the sender ID's id
    kind: str = Field(max_length=8)
    every: str | None = Field(default=None, max_length=8)
    start_day: int = 1
    days_before: int = 0
    retry_hours: int = 1
    max_retries: int = 0
    amount: int = Field(sa_type=sa.BigInteger)  # 0 when priced from the tree
    # Priced from the agreement's pay-as-you-go tree at each attempt when set
    # (e.g. sender_id_usage_fee), with the MNO (MCCMNC) to price for.
    resource: str | None = Field(default=None, max_length=64)
    mno: str | None = Field(default=None, max_length=8)
    tz: str = Field(default="UTC", max_length=64)
    effective_from: datetime = utc_field()
    effective_till: datetime | None = utc_field(nullable=True)
    description: str | None = None


class FeeRun(Timestamped, table=True):
    """One fee period of a rule: charged, waiting for a retry, or given up."""

    __tablename__ = "fee_run"
    __table_args__ = (
        sa.UniqueConstraint("rule_id", "period_start"),
        sa.CheckConstraint("status IN ('charged', 'retrying', 'failed')", name="status"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    rule_id: int = Field(foreign_key="fee_rule.id", index=True)
    period_start: datetime = utc_field()
    status: str = Field(max_length=10)
    attempts: int = 0
    last_attempt_at: datetime | None = utc_field(nullable=True)
    next_attempt_at: datetime | None = utc_field(nullable=True)
    charge_id: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    last_error: str | None = Field(default=None, max_length=300)
