"""Payments (PAY-01..04): registered by hand, confirmed or with a confirm-before date.

States are derived (AMB-10): confirmed; unconfirmed while now < confirm_before;
expired after it. Amounts are Decimal strings in and out. Every add, confirm
and unconfirm appends a ``payment_state`` row, so a balance at a past time
counts each payment as it stood then.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.db import locking
from cpaas_cli.errors import Conflict, NotFound, Problem, require
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import PAYMENT_DIRECTIONS, Payment, PaymentState
from cpaas_cli.money import MoneyError, check_currency, format_micros, to_micros
from cpaas_cli.timeutil import iso


def state(p: Payment, now: datetime | None = None) -> str:
    if p.confirmed:
        return "confirmed"
    now = now or clock.now()
    return "unconfirmed" if p.confirm_before is not None and now < p.confirm_before else "expired"


def exchange_rate(p: Payment) -> str | None:
    """Agreement-currency units per payment-currency unit (replenishment / amount)."""
    if not p.amount:
        return None
    rate = (Decimal(p.replenishment) / Decimal(p.amount)).quantize(Decimal("0.0000000001"))
    text = format(rate, "f").rstrip("0")
    return text + "0" if text.endswith(".") else text


def _money(text: str | None, field: str, problems: list[Problem], *, required: bool = True) -> int | None:
    if text is None or str(text).strip() == "":
        if required:
            problems.append(Problem(field, "required"))
        return None
    try:
        value = to_micros(text)
    except MoneyError as exc:
        problems.append(Problem(field, str(exc)))
        return None
    if value <= 0:
        problems.append(Problem(field, "must be more than zero"))
    return value


def add(
    session: Session,
    *,
    agreement_ref: str,
    reference: str,
    amount: str,
    currency: str | None = None,
    replenishment: str | None = None,
    direction: str = "inbound",
    paid_at: datetime | None = None,
    confirmed: bool = False,
    confirm_before: datetime | None = None,
    exchange_rate_date: date | None = None,
    description: str | None = None,
) -> Payment:
    ag = agreements.get(session, agreement_ref)
    problems: list[Problem] = []
    if direction not in PAYMENT_DIRECTIONS:
        problems.append(Problem("direction", "must be inbound or outbound"))
    if not (reference or "").strip():
        problems.append(Problem("reference", "required"))
    cur = ag.currency
    if currency:
        try:
            cur = check_currency(currency)
        except MoneyError as exc:
            problems.append(Problem("currency", str(exc)))
    amt = _money(amount, "amount", problems)
    rep = _money(replenishment, "replenishment", problems, required=cur != ag.currency)
    if rep is None and cur == ag.currency:
        rep = amt
    if confirmed and confirm_before is not None:
        problems.append(Problem("confirm_before", "only for a payment that is not confirmed"))
    if not confirmed and confirm_before is None:
        problems.append(Problem("confirm_before", "an unconfirmed payment needs a confirm-before time"))
    if exchange_rate_date is not None and cur == ag.currency:
        problems.append(Problem("exchange_rate_date", "only when the payment currency differs from the agreement's"))
    require(problems, "the payment")
    ledger.lock(session, [ag.id])
    row = Payment(
        agreement_id=ag.id,
        direction=direction,
        reference=reference.strip(),
        paid_at=paid_at or clock.now(),
        amount=amt,
        currency=cur,
        replenishment=rep,
        exchange_rate_date=exchange_rate_date,
        confirmed=confirmed,
        confirm_before=None if confirmed else confirm_before,
        description=description,
    )
    session.add(row)
    session.flush()
    _remember(session, row, row.paid_at)
    return row


def _remember(session: Session, p: Payment, since: datetime) -> None:
    """Append the payment's confirmation state to its history (``balance --at``)."""
    session.add(PaymentState(payment_id=p.id, since=since, confirmed=p.confirmed, confirm_before=p.confirm_before))
    session.flush()


def get(session: Session, payment_id: int) -> Payment:
    row = session.get(Payment, payment_id)
    if row is None:
        raise NotFound(f"payment #{payment_id} not found")
    return row


def confirm(session: Session, p: Payment) -> Payment:
    ledger.lock(session, [p.agreement_id])
    locking.lock_row(session, p)  # of two racing confirms, the second sees the first's
    if p.confirmed:
        raise Conflict(f"payment #{p.id} is confirmed already")
    p.confirmed, p.confirm_before = True, None
    session.add(p)
    session.flush()
    _remember(session, p, clock.now())
    return p


def unconfirm(session: Session, p: Payment, *, confirm_before: datetime | None) -> Payment:
    if not p.confirmed:
        raise Conflict(f"payment #{p.id} is not confirmed")
    require([Problem("confirm_before", "required when confirmation is withdrawn")] if confirm_before is None else [])
    ledger.lock(session, [p.agreement_id])
    locking.lock_row(session, p)
    if not p.confirmed:
        raise Conflict(f"payment #{p.id} is not confirmed")
    p.confirmed, p.confirm_before = False, confirm_before
    session.add(p)
    session.flush()
    _remember(session, p, clock.now())
    return p


def delete(session: Session, p: Payment) -> None:
    ledger.lock(session, [p.agreement_id])
    session.execute(sa.delete(PaymentState.__table__).where(PaymentState.__table__.c.payment_id == p.id))
    session.delete(p)
    session.flush()


def list_payments(
    session: Session, *, agreement_ref: str | None = None, state_filter: str | None = None
) -> list[Payment]:
    q = select(Payment).order_by(col(Payment.paid_at), col(Payment.id))
    if agreement_ref:
        q = q.where(Payment.agreement_id == agreements.get(session, agreement_ref).id)
    rows = list(session.exec(q))
    if state_filter:
        now = clock.now()
        rows = [p for p in rows if state(p, now) == state_filter]
    return rows


def payment_dict(session: Session, p: Payment) -> dict[str, Any]:
    ag = session.get(Agreement, p.agreement_id)
    return {
        "id": p.id,
        "agreement": ag.code if ag else None,
        "direction": p.direction,
        "reference": p.reference,
        "paid_at": iso(p.paid_at),
        "amount": format_micros(p.amount),
        "currency": p.currency,
        "replenishment": format_micros(p.replenishment),
        "agreement_currency": ag.currency if ag else None,
        "exchange_rate": exchange_rate(p),
        "exchange_rate_date": p.exchange_rate_date.isoformat() if p.exchange_rate_date else None,
        "confirmed": p.confirmed,
        "confirm_before": iso(p.confirm_before),
        "state": state(p),
        "description": p.description,
    }
