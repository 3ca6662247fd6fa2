"""Agreements (one balance each) and their versions (terms over time)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from cpaas_cli.db.base import Timestamped, utc_field

DIRECTIONS = ("CLIENT", "VENDOR")
BILLING_PERIODS = ("daily", "weekly", "monthly", "quarterly")
EMAIL_KINDS = ("invoice", "account", "rate_change", "service", "payment_alert")


class Agreement(Timestamped, table=True):
    __tablename__ = "agreement"
    __table_args__ = (
        sa.UniqueConstraint("seller_company_id", "code"),
        sa.CheckConstraint("direction IN ('CLIENT', 'VENDOR')", name="direction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64)
    seller_company_id: int = Field(foreign_key="company.id", index=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    direction: str = Field(default="CLIENT", max_length=8)
    legal_entity_id: int = Field(foreign_key="legal_entity.id")
    own_legal_entity_id: int = Field(foreign_key="legal_entity.id")
    bank_account_id: int | None = Field(default=None, foreign_key="bank_account.id")
    own_bank_account_id: int | None = Field(default=None, foreign_key="bank_account.id")
    agreement_date: date
    currency: str = Field(max_length=3)
    effective_from: datetime = utc_field()
    effective_from_tz: str = Field(default="UTC", max_length=64)
    effective_till: datetime | None = utc_field(nullable=True)
    effective_till_tz: str = Field(default="UTC", max_length=64)
    closed_at: datetime | None = utc_field(nullable=True)
    description: str | None = None


class AgreementVersion(Timestamped, table=True):
    __tablename__ = "agreement_version"
    __table_args__ = (
        sa.CheckConstraint("billing_period IN ('daily', 'weekly', 'monthly', 'quarterly')", name="billing_period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    code: str | None = Field(default=None, max_length=64)
    effective_from: datetime = utc_field()
    effective_till: datetime | None = utc_field(nullable=True)
    tz: str = Field(default="UTC", max_length=64)
    # None means unlimited credit.
    credit_limit: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    billing_period: str = Field(default="monthly", max_length=16)
    billing_day: int | None = None
    split_by_month: bool = False
    billing_tz: str = Field(default="UTC", max_length=64)
    days_for_payment: int = 30
    emails: dict = Field(default_factory=dict, sa_type=sa.JSON)
    # Percent × 1,000,000 (20 % = 20_000_000): exact for up to six decimals.
    tax_rate: int = Field(default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})


class ResellingAgreement(Timestamped, table=True):
    """TEN-06: an agreement under which a reseller buys what it resells, attached
    to the reseller's legal entity for a period. A client agreement whose seller
    legal entity is ``legal_entity_id`` is charged one level up on ``agreement_id``
    (RAT-10). The periods of one legal entity do not overlap."""

    __tablename__ = "reselling_agreement"
    __table_args__ = (sa.Index("ix_reselling_agreement_le_from", "legal_entity_id", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    legal_entity_id: int = Field(foreign_key="legal_entity.id")
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    effective_from: datetime = utc_field()
    effective_till: datetime | None = utc_field(nullable=True)
