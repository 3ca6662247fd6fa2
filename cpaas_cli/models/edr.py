"""The EDR table: one row per message attempt.

Scale path (PostgreSQL, tens of millions of rows): the table is written
append-mostly and queried by (company, time) and (agreement, time). When it
grows past what one heap serves well, convert it to a table partitioned by
RANGE (event_at) with one partition per calendar month (the primary key becomes
(id, event_at) and the external-id uniqueness moves to a small
``edr_external_id`` side table or is kept per partition), create next month's
partition ahead from a scheduled job, and detach/archive old months. Every
query here already filters on ``event_at``, so partition pruning applies.

On PostgreSQL the table's pages are half filled on insert (fillfactor 50,
migration 0018), so that the updates an EDR gets later (receipt status and
times, re-rated prices: no indexed column) stay HOT, in the row's own page.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import utc_field
from cpaas_cli.db.types import BigIntPK

RATING_STATES = ("unrated", "rated", "rejected")
STATUSES = ("prepared", "billed", "submitted", "delivered", "undelivered", "failed", "seen")
FINAL_STATUSES = ("delivered", "undelivered", "failed", "seen")
DIRECTIONS = ("mt", "mo")
# Why an EDR was rejected (or why a rated EDR costs nothing, in rating_note).
REJECT_REASONS = ("no_rate", "blocked", "unusable", "insufficient_credit", "no_agreement", "no_period", "invalid")


_UNRATED = sa.text("rating_state = 'unrated'")
_HAS_VENDOR_ID = sa.text("vendor_message_id IS NOT NULL")


class Edr(SQLModel, table=True):
    __tablename__ = "edr"
    __table_args__ = (
        sa.UniqueConstraint("external_id"),
        sa.Index("ix_edr_company_event_at", "company_id", "event_at"),
        # id last: an agreement's EDRs in (event_at, id) order straight from the index (rerate reads
        # them so, in keyset chunks; PostgreSQL, unlike SQLite, keeps no rowid order among equal keys).
        sa.Index("ix_edr_agreement_event_at", "agreement_id", "event_at", "id"),
        # Partial indexes hold only the rows their queries look for: the unrated EDRs that
        # `edr rate` takes in (event_at, id) order, and the EDRs that have a vendor message id
        # (receipts matched after a restart). A rated EDR, or one ingested without a vendor id,
        # costs them nothing on insert, and nothing on each rerate UPDATE (on PostgreSQL such an
        # UPDATE writes a new entry into every index whose predicate the new row satisfies).
        sa.Index("ix_edr_unrated_event_at", "event_at", "id", sqlite_where=_UNRATED, postgresql_where=_UNRATED),
        # Exports and reports over every company select a time window and read it in time order.
        sa.Index("ix_edr_event_at", "event_at"),
        sa.Index(
            "ix_edr_vendor_message_id",
            "vendor_message_id",
            sqlite_where=_HAS_VENDOR_ID,
            postgresql_where=_HAS_VENDOR_ID,
        ),  # fmt: skip
        sa.CheckConstraint("rating_state IN ('unrated', 'rated', 'rejected')", name="rating_state"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    external_id: str | None = Field(default=None, max_length=100)
    vendor_message_id: str | None = Field(default=None, max_length=100)
    company_id: int = Field(foreign_key="company.id")
    agreement_id: int | None = Field(default=None, foreign_key="agreement.id")
    campaign_id: int | None = None
    sender: str | None = Field(default=None, max_length=32)
    channel: str = Field(default="sms", max_length=16)
    direction: str = Field(default="mt", max_length=2)
    source: str | None = Field(default=None, max_length=32)
    destination: str | None = Field(default=None, max_length=32)
    mcc: str | None = Field(default=None, max_length=3)
    mnc: str | None = Field(default=None, max_length=3)
    country: str | None = Field(default=None, max_length=2)
    network: str | None = Field(default=None, max_length=120)
    encoding: str | None = Field(default=None, max_length=8)
    segments: int = 1
    # Parts of a long message the SMSC refused while the others went (dispatch): ``segments``
    # then counts the parts sent (what is billed). None: nothing refused, or not dispatched here.
    segments_refused: int | None = None
    status: str = Field(default="prepared", max_length=12)
    event_at: datetime = utc_field()
    prepared_at: datetime | None = utc_field(nullable=True)
    billed_at: datetime | None = utc_field(nullable=True)
    submitted_at: datetime | None = utc_field(nullable=True)
    delivered_at: datetime | None = utc_field(nullable=True)
    undelivered_at: datetime | None = utc_field(nullable=True)
    failed_at: datetime | None = utc_field(nullable=True)
    seen_at: datetime | None = utc_field(nullable=True)
    vendor_error: str | None = Field(default=None, max_length=32)
    rating_state: str = Field(default="unrated", max_length=10)
    rating_reason: str | None = Field(default=None, max_length=32)
    rating_note: str | None = Field(default=None, max_length=300)
    rate_path: str | None = Field(default=None, max_length=300)
    service_id: int | None = None
    billing_rule: str | None = Field(default=None, max_length=16)
    unit_price: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    quantity: int | None = None
    cost: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    currency: str | None = Field(default=None, max_length=3)
    pack_enabled_id: int | None = None
    pack_units: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    rated_at: datetime | None = utc_field(nullable=True)
    ingested_at: datetime = utc_field(default_now=True)
    api_key_id: int | None = None  # sent through the HTTP API with this key
    label: str | None = Field(default=None, max_length=100)  # groups API messages (SPEC EDR-01)
    # The vendor connection the message went through (dispatch; `edr ingest` from a file's
    # connection column or --connection), and what it cost us there: micro-units of
    # vendor_currency from the connection's vendor plan (vendor_service_id). NULL cost =
    # unknown (no plan, or no vendor price for the destination): never read as zero.
    connection_id: int | None = None
    vendor_cost: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    vendor_currency: str | None = Field(default=None, max_length=3)
    vendor_service_id: int | None = None


class EdrLevel(SQLModel, table=True):
    """A reseller CDR (RAT-10): what one EDR cost one reseller level of its chain.

    Level 0 is the EDR itself (the client agreement's columns); level 1 is the
    reselling agreement of the client agreement's seller, level 2 the one above,
    up to the system owner. Written in the same transaction as the EDR's own
    rating, for every level or none; rerate rewrites them per level.
    """

    __tablename__ = "edr_level"
    __table_args__ = (
        sa.UniqueConstraint("edr_id", "level"),
        sa.Index("ix_edr_level_agreement", "agreement_id", "event_at", "edr_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    edr_id: int = Field(sa_type=sa.BigInteger)
    level: int
    agreement_id: int = Field(foreign_key="agreement.id")
    event_at: datetime = utc_field()
    rate_path: str | None = Field(default=None, max_length=300)
    service_id: int | None = None
    billing_rule: str | None = Field(default=None, max_length=16)
    unit_price: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    quantity: int | None = None
    cost: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    currency: str | None = Field(default=None, max_length=3)
    pack_enabled_id: int | None = None
    pack_units: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    rated_at: datetime | None = utc_field(nullable=True)


EXPORT_STATES = ("waiting", "ready", "sent", "failed", "canceled")


class EdrExportTask(SQLModel, table=True):
    """An EDR export to be produced in the background by `cpaas serve`.

    ``params`` holds the filters (times as ISO text), ``fields``, ``format``,
    ``tz`` and ``gzip``; ``file`` is where the finished file was stored.
    ``started_at`` marks a worker's claim while the task is still waiting.
    """

    __tablename__ = "edr_export_task"
    __table_args__ = (
        sa.Index("ix_edr_export_task_state", "state"),
        sa.CheckConstraint("state IN ('waiting', 'ready', 'sent', 'failed', 'canceled')", name="state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(default="waiting", max_length=10)
    params: dict = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    emails: list = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    created_by: str | None = Field(default=None, max_length=120)
    created_at: datetime = utc_field(default_now=True)
    started_at: datetime | None = utc_field(nullable=True)
    finished_at: datetime | None = utc_field(nullable=True)
    file: str | None = Field(default=None, max_length=500)
    rows: int | None = None
    size_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    note: str | None = Field(default=None, max_length=500)
