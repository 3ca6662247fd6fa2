"""Money tables: the charge ledger, the running balance row, scale counters,
pack usage and payments.

Balance of an agreement at time T (RAT-01, PAY-03)::

    balance(T) = payments_counted(T) - charges(T)
    payments_counted(T) = Σ inbound replenishment − Σ outbound replenishment
        over payments dated ≤ T that are confirmed, or unconfirmed with
        confirm_before > T
    charges(T) = Σ charge.amount with charge.at ≤ T

``agreement_balance.spent`` is the running Σ charge.amount (all times); it is
moved by one conditional UPDATE in the transaction that inserts the charge,
so two writers can never overspend. Payments are not in the running row
because an unconfirmed payment stops counting by the clock alone.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

CHARGE_KINDS = ("edr", "scale_adjustment", "pack_purchase", "fee", "rerate", "refund")
PAYMENT_DIRECTIONS = ("inbound", "outbound")


class Charge(SQLModel, table=True):
    """Append-only: a correction is a new row, never an update.

    A rerate writes one ``rerate`` row per EDR whose money changed: amount =
    new − old (Σ of the EDR's earlier rows), both in ``details``; ``revision``
    = the task id, so Σ amount over an EDR's rows is always its current cost."""

    __tablename__ = "charge"
    __table_args__ = (
        # revision: 0 for the first rating; a rerate row carries its task id. edr_id first:
        # the same index serves the lookups of an EDR's charges. agreement_id: a reseller's
        # client's message is charged once per level of the chain (RAT-10).
        sa.UniqueConstraint("edr_id", "kind", "revision", "agreement_id"),
        # One purchase per enabled pack; partial: the per-EDR rows (NULL here) are not in it.
        sa.Index(
            "uq_charge_enabled_service_id",
            "enabled_service_id",
            unique=True,
            sqlite_where=sa.text("enabled_service_id IS NOT NULL"),
            postgresql_where=sa.text("enabled_service_id IS NOT NULL"),
        ),
        sa.Index("ix_charge_agreement_at", "agreement_id", "at"),
        sa.CheckConstraint(
            "kind IN ('edr', 'scale_adjustment', 'pack_purchase', 'fee', 'rerate', 'refund')", name="kind"
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    agreement_id: int = Field(foreign_key="agreement.id")
    kind: str = Field(max_length=20)
    edr_id: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    revision: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    # Set only on pack purchases (one purchase per enabled pack).
    enabled_service_id: int | None = Field(default=None, foreign_key="enabled_service.id")
    # Micro-units in the agreement currency; positive debits the balance.
    amount: int = Field(sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    at: datetime = utc_field()
    period_start: datetime | None = utc_field(nullable=True)
    details: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = utc_field(default_now=True)


class AgreementBalance(SQLModel, table=True):
    __tablename__ = "agreement_balance"

    agreement_id: int = Field(foreign_key="agreement.id", primary_key=True)
    spent: int = Field(default=0, sa_type=sa.BigInteger)


class ScaleCounter(SQLModel, table=True):
    """Units counted on one scale node in one billing period (AMB-11)."""

    __tablename__ = "scale_counter"
    __table_args__ = (sa.UniqueConstraint("agreement_id", "node_key", "group_value", "period_start"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    agreement_id: int = Field(foreign_key="agreement.id")
    node_key: str = Field(max_length=400)
    group_value: str = Field(default="", max_length=64)
    period_start: datetime = utc_field()
    quantity: int = Field(default=0, sa_type=sa.BigInteger)


class PackUsage(SQLModel, table=True):
    """Units (unit pack) or micro-units (monetary pack) used from an enabled pack."""

    __tablename__ = "pack_usage"

    enabled_service_id: int = Field(foreign_key="enabled_service.id", primary_key=True)
    used: int = Field(default=0, sa_type=sa.BigInteger)


class Payment(Timestamped, table=True):
    __tablename__ = "payment"
    __table_args__ = (sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),)

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    direction: str = Field(default="inbound", max_length=8)
    reference: str = Field(max_length=100)
    paid_at: datetime = utc_field()
    amount: int = Field(sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    # In the agreement currency: what the payment moves on the balance.
    replenishment: int = Field(sa_type=sa.BigInteger)
    exchange_rate_date: date | None = None
    confirmed: bool = False
    confirm_before: datetime | None = utc_field(nullable=True)
    description: str | None = None


class PaymentState(SQLModel, table=True):
    """The confirmation history of a payment: one row per add / confirm /
    unconfirm, so ``balance --at`` counts a payment as it stood then (PAY-03).
    The first row's ``since`` is the payment date."""

    __tablename__ = "payment_state"
    __table_args__ = (sa.Index("ix_payment_state_payment_id_since", "payment_id", "since"),)

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("payment.id", ondelete="CASCADE")))
    since: datetime = utc_field()
    confirmed: bool = False
    confirm_before: datetime | None = utc_field(nullable=True)
