"""The charge ledger and balances (formula in ``models/billing.py``).

Concurrency: every writer that rates or charges an agreement first calls
:func:`lock` for the agreements it touches, in the same transaction it then
writes in. On PostgreSQL that is ``SELECT … FOR UPDATE`` on the
``agreement_balance`` rows (in id order, so no deadlock); on SQLite a no-op
UPDATE of those rows, which takes the database write lock before anything is
read. Then the counters, pack usage and balance read afterwards are current
until commit. :func:`post` still moves the running balance with one
conditional UPDATE per agreement and refuses the whole batch when the row
count says the credit limit would be passed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.errors import InsufficientCredit
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import AgreementBalance, Charge, Payment, PaymentState

BAL = AgreementBalance.__table__
CHG = Charge.__table__
PAY = Payment.__table__
PST = PaymentState.__table__


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def ensure_rows(session: Session, agreement_ids: Iterable[int]) -> None:
    ids = sorted(set(agreement_ids))
    if not ids:
        return
    ins = (postgresql if _dialect(session) == "postgresql" else sqlite).insert(BAL)
    session.execute(ins.on_conflict_do_nothing(), [{"agreement_id": i, "spent": 0} for i in ids])


def lock(session: Session, agreement_ids: Iterable[int]) -> None:
    """Serialise writers of these agreements' money until the transaction ends."""
    ids = sorted(set(agreement_ids))
    if not ids:
        return
    if _dialect(session) == "postgresql":
        ensure_rows(session, ids)
        session.execute(
            sa.select(BAL.c.agreement_id)
            .where(BAL.c.agreement_id.in_(ids))
            .order_by(BAL.c.agreement_id)
            .with_for_update()
        ).all()
    else:
        # The first write of the transaction takes SQLite's write lock.
        session.execute(sa.update(BAL).where(BAL.c.agreement_id.in_(ids)).values(spent=BAL.c.spent))
        ensure_rows(session, ids)


def spent(session: Session, agreement_id: int) -> int:
    got = session.execute(sa.select(BAL.c.spent).where(BAL.c.agreement_id == agreement_id)).scalar()
    return int(got or 0)


def payments_counted(session: Session, agreement_id: int, at: datetime) -> int:
    """Inbound minus outbound replenishment counted at ``at`` (PAY-03)."""
    sign = sa.case((PAY.c.direction == "outbound", -PAY.c.replenishment), else_=PAY.c.replenishment)
    q = sa.select(sa.func.coalesce(sa.func.sum(sign), 0)).where(
        PAY.c.agreement_id == agreement_id,
        PAY.c.paid_at <= at,
        sa.or_(PAY.c.confirmed.is_(True), PAY.c.confirm_before > at),
    )
    return int(session.execute(q).scalar() or 0)


def payments_counted_then(session: Session, agreement_id: int, at: datetime) -> int:
    """Like :func:`payments_counted`, with each payment's confirmation state as
    it stood at ``at`` (its latest ``payment_state`` row from then or before)."""
    sign = sa.case((PAY.c.direction == "outbound", -PAY.c.replenishment), else_=PAY.c.replenishment)
    latest = (
        sa.select(sa.func.max(PST.c.id))
        .where(PST.c.payment_id == PAY.c.id, PST.c.since <= at)
        .correlate(PAY)
        .scalar_subquery()
    )
    q = (
        sa.select(sa.func.coalesce(sa.func.sum(sign), 0))
        .select_from(PAY.join(PST, PST.c.id == latest))
        .where(
            PAY.c.agreement_id == agreement_id,
            PAY.c.paid_at <= at,
            sa.or_(PST.c.confirmed.is_(True), PST.c.confirm_before > at),
        )
    )
    return int(session.execute(q).scalar() or 0)


def charges_until(session: Session, agreement_id: int, at: datetime) -> int:
    q = sa.select(sa.func.coalesce(sa.func.sum(CHG.c.amount), 0)).where(
        CHG.c.agreement_id == agreement_id, CHG.c.at <= at
    )
    return int(session.execute(q).scalar() or 0)


def credit_limit(session: Session, ag: Agreement, at: datetime) -> int | None:
    v = agreements.version_at(session, ag, at)
    return v.credit_limit if v is not None else None


def headroom(session: Session, ag: Agreement, *, now: datetime | None = None) -> int | None:
    """How much more may be charged now; None = unlimited credit."""
    now = now or clock.now()
    limit = credit_limit(session, ag, now)
    if limit is None:
        return None
    return payments_counted(session, ag.id, now) - spent(session, ag.id) + limit


def balance(session: Session, ag: Agreement, *, at: datetime | None = None) -> dict[str, int | None]:
    """Balance figures in micro-units; ``at`` None = now (running row)."""
    now = clock.now()
    when = at or now
    paid = payments_counted(session, ag.id, when) if at is None else payments_counted_then(session, ag.id, when)
    charged = spent(session, ag.id) if at is None else charges_until(session, ag.id, when)
    limit = credit_limit(session, ag, when)
    bal = paid - charged
    return {
        "payments": paid,
        "charges": charged,
        "balance": bal,
        "credit_limit": limit,
        "available": None if limit is None else bal + limit,
    }


def post(session: Session, charges: Sequence[dict[str, Any]], *, check_credit: bool = True) -> None:
    """Insert charge rows and move each agreement's running balance by their sum.

    With ``check_credit`` the balance may not go below −credit limit: one
    conditional UPDATE per agreement; a refusal raises InsufficientCredit (the
    caller's transaction rolls back, nothing is written).
    """
    if not charges:
        return
    by_ag: dict[int, int] = defaultdict(int)
    for c in charges:
        by_ag[c["agreement_id"]] += c["amount"]
    ensure_rows(session, by_ag)
    now = clock.now()
    for ag_id, amount in sorted(by_ag.items()):
        stmt = sa.update(BAL).where(BAL.c.agreement_id == ag_id).values(spent=BAL.c.spent + amount)
        if check_credit and amount > 0:
            ag = session.get(Agreement, ag_id)
            limit = credit_limit(session, ag, now) if ag is not None else None
            if limit is not None:
                paid = payments_counted(session, ag_id, now)
                stmt = stmt.where(sa.literal(paid + limit - amount, sa.BigInteger) - BAL.c.spent >= 0)
        if session.execute(stmt).rowcount != 1:
            code = ag.code if (ag := session.get(Agreement, ag_id)) is not None else ag_id
            raise InsufficientCredit(f"insufficient credit on agreement {code}: the charge would pass the credit limit")
    session.execute(sa.insert(CHG), [{"details": {}, "created_at": now, **c} for c in charges])


def history(session: Session, ag: Agreement, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Charges and payments of the agreement in time order with a running balance."""
    rows: list[dict[str, Any]] = []
    for c in session.execute(sa.select(CHG).where(CHG.c.agreement_id == ag.id)).mappings():
        rows.append({"at": c["at"], "kind": c["kind"], "ref": c["edr_id"] or c["id"], "amount": -c["amount"], **{}})
        rows[-1]["details"] = c["details"]
    now = clock.now()
    for p in session.execute(sa.select(PAY).where(PAY.c.agreement_id == ag.id)).mappings():
        counts = p["confirmed"] or (p["confirm_before"] is not None and p["confirm_before"] > now)
        amt = p["replenishment"] if p["direction"] == "inbound" else -p["replenishment"]
        rows.append(
            {
                "at": p["paid_at"],
                "kind": f"payment_{p['direction']}",
                "ref": p["id"],
                "amount": amt if counts else 0,
                "details": {"reference": p["reference"], "counted": bool(counts)},
            }
        )
    rows.sort(key=lambda r: (r["at"], r["kind"]))
    running = 0
    for r in rows:
        running += r["amount"]
        r["balance"] = running
    return rows[-limit:] if limit else rows
