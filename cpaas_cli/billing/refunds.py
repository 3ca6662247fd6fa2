"""Give back what a message that was never sent was charged.

The dispatch worker rates a message with the ``submitted`` event and commits
its charge *before* the submit_sm goes out (the credit check must hold before
anything is sent). When the SMSC then refuses the submit for good (an error
in submit_sm_resp that is not a throttle or queue-full to retry), the message
was not submitted after all:

* one ``refund`` ledger row per EDR with money on it: amount = −Σ of the EDR's
  earlier rows (its event charge, a back-to-first adjustment it caused, any
  rerate), dated like the EDR's first charge so it falls in the same billing
  period and invoice; the running balance moves back by the same sum;
* the units it took are given back: the scale counter it counted on, and the
  unit or monetary pack it was paid from;
* the EDR loses its ``submitted_at`` (prepared → failed is its real history),
  and its cost and quantity become 0 with a note saying why — what the engine
  gives a final EDR whose trigger never happened, so a later rerate of the
  period finds nothing to change.

Idempotent: an EDR is handled only while it still has a ``submitted_at`` and
no ``refund`` row, and the (kind, edr_id, revision) key allows one refund.
Events rated between the charge and its refund keep the prices they got with
the refused units counted (a rerate of the period re-prices them exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.billing import ledger
from cpaas_cli.billing.models import PackUsage, ScaleCounter
from cpaas_cli.edr.models import Edr
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en

EDR = Edr.__table__
CHG = ledger.CHG
CNT = ScaleCounter.__table__
PCK = PackUsage.__table__
REFUND = "refund"


def refund_unsent(
    session: Session, edr_ids: Sequence[int], plans: Any, *, now: datetime, why: str = "refused by the SMSC"
) -> dict[str, int]:
    """Refund the EDRs in ``edr_ids`` that were charged for a submit that did not
    happen (see the module docstring). ``plans`` is an ``edr.service.Plans``.
    Returns counts; no commit (the caller's transaction)."""
    from cpaas_cli.edr.service import _event  # the same event the Rater built

    out = {"edrs": 0, "refunded": 0, "amount": 0}
    if not edr_ids:
        return out
    rows = [
        dict(m)
        for m in session.execute(
            sa.select(EDR).where(
                EDR.c.id.in_(list(edr_ids)), EDR.c.submitted_at.isnot(None), EDR.c.rating_state == "rated"
            )
        ).mappings()
    ]
    if not rows:
        return out
    ids = [r["id"] for r in rows]
    ledger.lock(session, {r["agreement_id"] for r in rows if r["agreement_id"]})
    done = set(session.execute(sa.select(CHG.c.edr_id).where(CHG.c.edr_id.in_(ids), CHG.c.kind == REFUND)).scalars())
    sums = {
        e: (int(total or 0), at, period)
        for e, total, at, period in session.execute(
            sa.select(CHG.c.edr_id, sa.func.sum(CHG.c.amount), sa.func.min(CHG.c.at), sa.func.min(CHG.c.period_start))
            .where(CHG.c.edr_id.in_(ids), CHG.c.kind != REFUND)
            .group_by(CHG.c.edr_id)
        )
    }
    refunds: list[dict[str, Any]] = []
    for r in rows:
        if r["id"] in done:
            continue
        out["edrs"] += 1
        total, at, period = sums.get(r["id"], (0, None, None))
        if total:
            refunds.append(
                {
                    "agreement_id": r["agreement_id"],
                    "kind": REFUND,
                    "edr_id": r["id"],
                    "amount": -total,
                    "currency": r["currency"],
                    "at": at,
                    "period_start": period,
                    "details": {"reason": f"not sent: {why}", "vendor_error": r["vendor_error"], "refunded": total},
                }
            )
            out["refunded"] += 1
            out["amount"] += total
        _give_back_units(session, r, plans, _event)
        note = f"not charged: {why}" + (f" (refund of {format_micros(total)} {r['currency']})" if total else "")
        session.execute(
            sa.update(EDR)
            .where(EDR.c.id == r["id"])
            .values(submitted_at=None, cost=0, quantity=0, pack_enabled_id=None, pack_units=None, rating_note=note)
        )
    ledger.post(session, refunds, check_credit=False)
    return out


def _give_back_units(session: Session, r: dict[str, Any], plans: Any, event_of: Any) -> None:
    """Undo the scale-counter and pack-usage deltas the EDR's rating applied."""
    ag_id = r["agreement_id"]
    plan = plans.get(ag_id) if ag_id else None
    if plan is None:
        return
    by_id = {e.enabled_id: e for e in plan.entries}
    pack = by_id.get(r["pack_enabled_id"]) if r["pack_enabled_id"] is not None else None
    if pack is not None and r["pack_units"]:
        session.execute(
            sa.update(PCK)
            .where(PCK.c.enabled_service_id == pack.enabled_id)
            .values(used=sa.case((PCK.c.used >= r["pack_units"], PCK.c.used - r["pack_units"]), else_=0))
        )
        if pack.service_type != "monetary-pack":
            return  # a unit pack took the event: no scale counter moved
    if not r["quantity"]:
        return
    # The counter key is where the pay-as-you-go tree priced the event: rate it
    # again with every pack full (so no pack takes it) to find that node.
    full = en.State(pack_used={e.enabled_id: (e.size or 0) + 1 for e in plan.entries if e.kind == en.PACK})
    d = en.rate(event_of(r), plan, full)
    if d.state != en.RATED or d.counter_key is None:
        return
    node, group, period = d.counter_key
    session.execute(
        sa.update(CNT)
        .where(
            CNT.c.agreement_id == ag_id,
            CNT.c.node_key == node,
            CNT.c.group_value == group,
            CNT.c.period_start == period,
        )
        .values(quantity=sa.case((CNT.c.quantity >= r["quantity"], CNT.c.quantity - r["quantity"]), else_=0))
    )
