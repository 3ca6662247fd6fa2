"""Rerate tasks and their done-unit markers.

A task covers [time_from, time_till) of one company (optionally some of its
agreements and channels). It is processed in units of (agreement, billing
period); each unit is committed with one ``rerate_unit`` row, so a rerun
after a crash skips the units already done and the task counters are the sum
of the unit rows.

Two groups of counters (RR-04): the EDRs' (``EDR_COUNTERS``, with the task's
``estimated``) and the reseller CDRs' (``CDR_COUNTERS``). A client agreement's
unit counts its EDRs in the first group and the reseller CDRs it created for
EDRs it turned rated (``rerate/created.py``) in the second; a reselling
agreement's unit (``rerate/levels.py``) counts its reseller CDRs in the second
only. In each group processed = (created +) updated + unchanged + failed.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field

EDR_COUNTERS = ("processed", "updated", "unchanged", "failed")
CDR_COUNTERS = ("cdr_processed", "cdr_created", "cdr_updated", "cdr_unchanged", "cdr_failed")
TASK_STATUSES = ("draft", "scheduled", "running", "completed", "failed", "canceled")


class RerateTask(Timestamped, table=True):
    __tablename__ = "rerate_task"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'running', 'completed', 'failed', 'canceled')", name="status"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="draft", max_length=10, index=True)
    company_id: int = Field(foreign_key="company.id")
    agreement_ids: list = Field(default_factory=list, sa_type=sa.JSON)
    channels: list = Field(default_factory=list, sa_type=sa.JSON)
    time_from: datetime = utc_field()
    time_till: datetime = utc_field()
    scheduled_for: datetime | None = utc_field(nullable=True)
    recalculate_sessions: bool = False
    estimated: int = Field(default=0, sa_type=sa.BigInteger)
    processed: int = Field(default=0, sa_type=sa.BigInteger)
    updated: int = Field(default=0, sa_type=sa.BigInteger)
    unchanged: int = Field(default=0, sa_type=sa.BigInteger)
    failed: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_processed: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_created: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_updated: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_unchanged: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_failed: int = Field(default=0, sa_type=sa.BigInteger)
    created_by: str | None = Field(default=None, max_length=100)
    run_by: str | None = Field(default=None, max_length=100)
    started_at: datetime | None = utc_field(nullable=True)
    finished_at: datetime | None = utc_field(nullable=True)
    error: str | None = None
    report: dict = Field(default_factory=dict, sa_type=sa.JSON)


class RerateUnit(SQLModel, table=True):
    """One (agreement, billing period) of a task, written in the unit's own transaction."""

    __tablename__ = "rerate_unit"
    __table_args__ = (sa.UniqueConstraint("task_id", "agreement_id", "period_start"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="rerate_task.id")
    agreement_id: int = Field(foreign_key="agreement.id")
    period_start: datetime = utc_field()
    processed: int = Field(default=0, sa_type=sa.BigInteger)
    updated: int = Field(default=0, sa_type=sa.BigInteger)
    unchanged: int = Field(default=0, sa_type=sa.BigInteger)
    failed: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_processed: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_created: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_updated: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_unchanged: int = Field(default=0, sa_type=sa.BigInteger)
    cdr_failed: int = Field(default=0, sa_type=sa.BigInteger)
    old_cost: int = Field(default=0, sa_type=sa.BigInteger)
    new_cost: int = Field(default=0, sa_type=sa.BigInteger)
    done_at: datetime = utc_field(default_now=True)
