"""Pack purchases (ENS-01, ENS-06): a pack enabled with billing "charge" costs
its price, written off the balance on its effective-from date, once.

Who writes the purchase charge, whichever comes first:

- ``agreement enable … --charge`` when the pack starts now or earlier;
- the ``pack-purchases`` job of ``cpaas serve`` once a later start has come;
- ``invoice run``, before it builds the invoices;
- rating (``edr ingest`` / ``edr rate``), before it rates the agreement's EDRs.

All of them call :func:`charge_due`. It takes the agreements' money lock
(``ledger.lock``) and only then looks for the packs still unpaid, so two
writers never both see one pack as unpaid; the partial unique key on
``charge.enabled_service_id`` (one purchase per enabled pack) refuses a
second row whatever happens. The charge is dated on the pack's
effective-from, its price is the one in force then (``catalog.pack_price``),
and it is not held to the credit limit: the purchase was agreed at enable.

A pack of an archived service is not charged (ENS-10: the client lost it).
A pack whose price can no longer be found is left unpaid and counted as
``unpriced``; it is charged by a later call once a price is in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.billing import ledger
from cpaas_cli.catalog import service as catalog
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.catalog import EnabledService, Service
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

CHG = ledger.CHG


def _unpaid(
    session: Session, now: datetime, agreement_ids: Sequence[int] | None
) -> list[tuple[EnabledService, Service]]:
    """Charged packs whose start has come and that have no purchase charge yet."""
    paid = sa.exists().where(CHG.c.enabled_service_id == EnabledService.id)
    q = (
        select(EnabledService, Service)
        .join(Service, col(Service.id) == col(EnabledService.service_id))
        .where(
            col(EnabledService.charge).is_(True),
            col(Service.type).in_(catalog.SIZED_TYPES),
            col(Service.archived_at).is_(None),
            EnabledService.effective_from <= now,
            ~paid,
        )
        .order_by(col(EnabledService.agreement_id), col(EnabledService.id))
    )
    if agreement_ids is not None:
        q = q.where(col(EnabledService.agreement_id).in_(list(agreement_ids)))
    return list(session.exec(q))


def charge_due(
    session: Session, *, now: datetime | None = None, agreement_ids: Sequence[int] | None = None
) -> dict[str, Any]:
    """Write the purchase charge of every charged pack that has started by
    ``now`` (default the clock) and is still unpaid; ``agreement_ids`` limits
    it to those agreements. No commit. Returns the counts and the charges."""
    now = now or clock.now()
    if agreement_ids is not None and not agreement_ids:
        return {"charged": 0, "unpriced": 0, "charges": []}
    candidates = _unpaid(session, now, agreement_ids)
    if not candidates:
        return {"charged": 0, "unpriced": 0, "charges": []}
    ag_ids = sorted({e.agreement_id for e, _svc in candidates})
    ledger.lock(session, ag_ids)
    rows, unpriced, shown = [], 0, []
    for e, svc in _unpaid(session, now, ag_ids):  # again, under the lock
        ag = session.get(Agreement, e.agreement_id)
        assert ag is not None
        found = catalog.pack_price(session, ag, svc, e.effective_from)
        if found is None:
            unpriced += 1
            continue
        price, price_service = found
        rows.append(
            {
                "agreement_id": ag.id,
                "kind": "pack_purchase",
                "enabled_service_id": e.id,
                "amount": price,
                "currency": ag.currency,
                "at": e.effective_from,
                "details": {"pack": svc.name, "pack_type": svc.type, "price_service_id": price_service.id},
            }
        )
        shown.append(
            {
                "enabled_id": e.id,
                "agreement": ag.code,
                "pack": svc.name,
                "amount": format_micros(price),
                "currency": ag.currency,
                "at": iso(e.effective_from),
            }
        )
    ledger.post(session, rows, check_credit=False)
    return {"charged": len(rows), "unpriced": unpriced, "charges": shown}


def purchase(session: Session, enabled_id: int) -> dict[str, Any] | None:
    """The purchase charge of an enabled pack (amount, currency, at), or None."""
    got = session.execute(
        sa.select(CHG.c.amount, CHG.c.currency, CHG.c.at).where(CHG.c.enabled_service_id == enabled_id)
    ).first()
    if got is None:
        return None
    return {"amount": format_micros(got.amount), "currency": got.currency, "at": iso(got.at)}


def run_job(engine) -> dict[str, Any]:
    """Scheduler job: charge the packs whose start has come."""
    from cpaas_cli.db.engine import session_scope

    with session_scope(engine, actor="scheduler", command="pack purchases") as s:
        res = charge_due(s)
    return {"charged": res["charged"], "unpriced": res["unpriced"]}


def usage_text(session: Session, enabled_id: int, units: int | None, currency: str | None) -> str:
    """What an EDR took from a pack, in words: units of a unit pack, money of a
    monetary pack (its usage is kept in micro-units)."""
    svc = session.exec(
        select(Service)
        .join(EnabledService, col(EnabledService.service_id) == col(Service.id))
        .where(EnabledService.id == enabled_id)
    ).first()
    if svc is not None and svc.type == "monetary-pack":
        return f"{format_micros(units or 0)} {svc.currency or currency or ''}".rstrip() + (
            f" paid from monetary pack #{enabled_id}"
        )
    n = units or 0
    what = f"unit pack #{enabled_id}" if svc is not None and svc.type == "unit-pack" else f"pack #{enabled_id}"
    return f"{n} unit{'s' if n != 1 else ''} taken from {what}"
