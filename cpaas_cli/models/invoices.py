"""Invoice tables.

How an invoice relates to its charges (the invariant the tests check exactly):

* ``invoice_charge`` links each charge to at most one live invoice (the
  primary key is the charge id). ``charges_total`` = Σ amount of the linked
  charges, exact to the micro-unit; ``charge_count`` = how many.
* Lines group the linked charges (``invoices/lines.py``: one usage line per
  service × destination × unit price with scale adjustments, rerates and
  refunds folded in; one line per pack or fee description).
  ``Σ line.exact = charges_total``; ``line.count`` is messages billed,
  ``line.volume`` the units billed, ``line.unit_price`` the price shown.
* The invoice rounds once (SPEC AMB-25): ``net`` = ``charges_total`` rounded
  half-up to the currency's minor units, ``rounding = net − charges_total``,
  ``tax`` = net × tax_rate rounded half-up, ``total = net + tax``. Lines
  carry ``max(line_decimals, minor units)`` decimals (``line.net``,
  ``line.tax``, ``line.total = net + tax``); with as many decimals as the
  currency, they are allocated by largest remainder and add up to the
  invoice's net and tax exactly. ``line_decimals`` NULL: built before this
  rule (each line rounded to minor units, tax per line).

``tax_rate`` is a percentage × 1,000,000 (20 % = 20,000,000), so any rate
with up to six decimals is stored exactly.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field

INVOICE_STATUSES = ("draft", "confirmed", "void")


class Invoice(Timestamped, table=True):
    __tablename__ = "invoice"
    __table_args__ = (
        # A voided invoice's period can be invoiced again: the next one gets generation + 1.
        sa.UniqueConstraint("agreement_id", "period_start", "generation"),
        sa.UniqueConstraint("own_legal_entity_id", "number"),
        sa.CheckConstraint("status IN ('draft', 'confirmed', 'void')", name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    version_id: int | None = Field(default=None, foreign_key="agreement_version.id")
    own_legal_entity_id: int = Field(foreign_key="legal_entity.id")
    legal_entity_id: int = Field(foreign_key="legal_entity.id")
    generation: int = 0
    status: str = Field(default="draft", max_length=10)
    number: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    reference: str | None = Field(default=None, max_length=40)
    period_start: datetime = utc_field()
    period_end: datetime = utc_field()
    billing_tz: str = Field(default="UTC", max_length=64)
    local_start_date: date
    local_end_date: date
    currency: str = Field(max_length=3)
    tax_rate: int = Field(default=0, sa_type=sa.BigInteger)
    line_decimals: int | None = None  # [invoice] line_decimals when the lines were built
    days_for_payment: int = 30
    issue_date: date
    due_date: date
    charge_count: int = Field(default=0, sa_type=sa.BigInteger)
    charges_total: int = Field(default=0, sa_type=sa.BigInteger)
    net: int = Field(default=0, sa_type=sa.BigInteger)
    rounding: int = Field(default=0, sa_type=sa.BigInteger)
    tax: int = Field(default=0, sa_type=sa.BigInteger)
    total: int = Field(default=0, sa_type=sa.BigInteger)
    calculated_at: datetime | None = utc_field(nullable=True)
    confirmed_at: datetime | None = utc_field(nullable=True)
    voided_at: datetime | None = utc_field(nullable=True)
    sent_at: datetime | None = utc_field(nullable=True)
    sent_to: list = Field(default_factory=list, sa_type=sa.JSON)
    comment: str | None = None


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_line"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    position: int
    kind: str = Field(max_length=20)  # usage (rated charges folded), pack_purchase or fee
    correction: bool = False  # charges of earlier, already confirmed periods
    service_id: int | None = None
    resource: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=2)
    network: str | None = Field(default=None, max_length=120)
    description: str = Field(max_length=300)
    count: int = Field(default=0, sa_type=sa.BigInteger)
    volume: int = Field(default=0, sa_type=sa.BigInteger)
    unit_price: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    exact: int = Field(default=0, sa_type=sa.BigInteger)
    net: int = Field(default=0, sa_type=sa.BigInteger)
    rounding: int = Field(default=0, sa_type=sa.BigInteger)
    tax: int = Field(default=0, sa_type=sa.BigInteger)
    total: int = Field(default=0, sa_type=sa.BigInteger)


class InvoiceCharge(SQLModel, table=True):
    """Which invoice covers a charge (one live invoice at most)."""

    __tablename__ = "invoice_charge"

    charge_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("charge.id"), primary_key=True))
    invoice_id: int = Field(foreign_key="invoice.id", index=True)


class InvoiceCounter(SQLModel, table=True):
    """The last invoice number given per own legal entity (gapless, bumped at confirm)."""

    __tablename__ = "invoice_counter"

    legal_entity_id: int = Field(foreign_key="legal_entity.id", primary_key=True)
    last_number: int = Field(default=0, sa_type=sa.BigInteger)
