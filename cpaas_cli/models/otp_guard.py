"""The OTP fraud guard's tables (issue 28, item 4): limits per integration and blocked prefixes.

``otp_guard`` holds one integration's settings; an integration without a row
runs on the defaults of ``otp/guard.py``. A limit of 0 is off.
``min_conversion_bp`` is the conversion threshold in basis points (2000 =
20 %), an integer so that no float is stored.

``otp_guard_block`` is one prefix blocked by the conversion alarm: the figures
that blocked it (sends, verified, conversion), when, how the operator was told
(``notice``: to whom the e-mail went, or why none went), and what it saved
since: ``refused`` sends × ``unit_cost`` (the price the rate tree gave the
first refused number, micro-units of ``currency``) = ``saved``. One open block
per (integration, prefix): ``unblocked_at`` closes it and keeps the row.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field

_OPEN = sa.text("unblocked_at IS NULL")


class OtpGuard(Timestamped, table=True):
    """One integration's fraud-guard settings."""

    __tablename__ = "otp_guard"

    integration_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("otp_integration.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
        )
    )
    per_number_hour: int = 10  # codes to one number per hour (0: off)
    per_prefix_hour: int = 200  # codes to one prefix per hour (0: off)
    per_country_hour: int = 0  # codes to one country per hour (0: off)
    countries: str | None = Field(default=None, max_length=1000)  # allowed ISO codes, comma-separated; None: all
    prefix_digits: int = 6  # national digits after the country code
    min_sends: int = 20  # sends of a prefix in the window before its conversion counts
    min_conversion_bp: int = 2000  # basis points; 0: the alarm is off
    window_s: int = 3600  # the alarm's sliding window
    grace_s: int = 60  # a pending code younger than this is not counted yet


class OtpGuardBlock(SQLModel, table=True):
    """A prefix the conversion alarm blocked (or, unblocked, the record of it)."""

    __tablename__ = "otp_guard_block"
    __table_args__ = (
        sa.Index(
            "uq_otp_guard_block_open",
            "integration_id",
            "prefix",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("otp_integration.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    prefix: str = Field(max_length=15)
    country: str | None = Field(default=None, max_length=2)
    reason: str = Field(max_length=300)
    sends: int
    verified: int
    conversion_bp: int
    window_s: int
    blocked_at: datetime = utc_field()
    notice: str | None = Field(default=None, max_length=500)
    refused: int = 0
    unit_cost: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    currency: str | None = Field(default=None, max_length=3)
    saved: int = Field(default=0, sa_type=sa.BigInteger)
    last_refused_at: datetime | None = utc_field(nullable=True)
    unblocked_at: datetime | None = utc_field(nullable=True)
    unblocked_by: str | None = Field(default=None, max_length=120)
