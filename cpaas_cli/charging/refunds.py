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

A long message only some of whose parts the SMSC refused was submitted, with
fewer parts (:func:`refund_refused_parts`): its EDR's ``segments`` becomes the
parts sent and ``segments_refused`` the others; when it is billed per segment
and was charged already (billing rule submitted), it is priced again for the
parts sent, in the state it was first priced in (the scale counter where its
units started, from its charge details), and the difference comes back as
one ``refund`` row (exact micro-units), the refused units leave the scale
counter and the pack they were taken from. (With a back-to-first scale the
fewer units can leave the period below a step its charge had crossed; the
row then charges the difference instead, so that the ledger holds the exact
price of what was sent.) Billed per message, nothing comes back (the message
was sent). Not rated yet (billing rule delivered): only the
segments change, and the receipt rates the parts sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.billing import ledger
from cpaas_cli.charging import levels, vendor
from cpaas_cli.charging.events import event_of  # the same event the Rater built
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk
from cpaas_cli.models.billing import PackUsage, ScaleCounter
from cpaas_cli.models.edr import Edr
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en

EDR = Edr.__table__
CHG = ledger.CHG
SCALE_COUNTERS = ScaleCounter.__table__
PCK = PackUsage.__table__
REFUND = "refund"


def refund_unsent(
    session: Session, edr_ids: Sequence[int], plans: Plans, *, now: datetime, why: str = "refused by the SMSC"
) -> dict[str, int]:
    """Refund the EDRs in ``edr_ids`` that were charged for a submit that did not
    happen (see the module docstring).
    Returns counts; no commit (the caller's transaction)."""
    out = {"edrs": 0, "refunded": 0, "amount": 0}
    if not edr_ids:
        return out
    rows, done, sums = _edrs(
        session, EDR.c.id.in_(list(edr_ids)), EDR.c.submitted_at.isnot(None), EDR.c.rating_state == "rated"
    )
    if not rows:
        return out
    refunds: list[dict[str, Any]] = []
    unsent: list[int] = []  # the EDRs handled, and the note of each
    notes: list[str] = []
    ups = _levels(session, [r for r in rows if r["id"] not in done])
    for r in rows:
        if r["id"] in done:
            continue
        out["edrs"] += 1
        total = 0
        for x in (r, *ups.get(r["id"], ())):  # the client level, then each reseller level (RAT-10)
            got, at, period = sums.get((r["id"], x["agreement_id"]), (0, None, None))
            if got:
                refunds.append(
                    {
                        "agreement_id": x["agreement_id"],
                        "kind": REFUND,
                        "edr_id": r["id"],
                        "amount": -got,
                        "currency": x["currency"],
                        "at": at,
                        "period_start": period,
                        "details": {"reason": f"not sent: {why}", "vendor_error": r["vendor_error"], "refunded": got}
                        | ({"level": x["_level"]} if x is not r else {}),
                    }
                )
                out["refunded"] += 1
            if x is r:
                total = got
                out["amount"] += got
            _give_back_units(session, x, plans)
        unsent.append(r["id"])
        notes.append(f"not charged: {why}" + (f" (refund of {format_micros(total)} {r['currency']})" if total else ""))
    n = len(unsent)
    blank, zero = [None] * n, [0] * n
    bulk.writer(session).update_by_id(
        EDR,
        unsent,
        {"submitted_at": blank, "cost": zero, "quantity": zero, "pack_enabled_id": blank, "pack_units": blank,
         "rating_note": notes},
    )  # fmt: skip
    if ups:
        session.execute(
            sa.update(levels.LEVEL)
            .where(levels.LEVEL.c.edr_id.in_(unsent))
            .values(cost=0, quantity=0, pack_enabled_id=None, pack_units=None)
        )
    # Not sent: nothing reached the vendor (a known vendor cost becomes 0; an unknown one stays unknown).
    session.execute(sa.update(EDR).where(EDR.c.id.in_(unsent), EDR.c.vendor_cost.isnot(None)).values(vendor_cost=0))
    ledger.post(session, refunds, check_credit=False)
    return out


def _edrs(session: Session, *where: Any) -> tuple[list[dict[str, Any]], set[int], dict[int, tuple[int, Any, Any]]]:
    """The EDRs ``where`` selects, with their agreements' ledgers locked; of those,
    the ids refunded already and what each was charged (:func:`_charged`)."""
    rows = [dict(m) for m in session.execute(sa.select(EDR).where(*where)).mappings()]
    if not rows:
        return rows, set(), {}
    ids = [r["id"] for r in rows]
    ledger.lock(session, {r["agreement_id"] for r in rows if r["agreement_id"]})
    done = set(session.execute(sa.select(CHG.c.edr_id).where(CHG.c.edr_id.in_(ids), CHG.c.kind == REFUND)).scalars())
    return rows, done, _charged(session, ids)


def _charged(session: Session, ids: list[int]) -> dict[tuple[int, int], tuple[int, Any, Any]]:
    """(EDR id, agreement id) -> (Σ of its ledger rows but refunds, time and period of
    its first row): one entry per level of the EDR's chain."""
    return {
        (e, a): (int(total or 0), at, period)
        for e, a, total, at, period in session.execute(
            sa.select(
                CHG.c.edr_id,
                CHG.c.agreement_id,
                sa.func.sum(CHG.c.amount),
                sa.func.min(CHG.c.at),
                sa.func.min(CHG.c.period_start),
            )
            .where(CHG.c.edr_id.in_(ids), CHG.c.kind != REFUND)
            .group_by(CHG.c.edr_id, CHG.c.agreement_id)
        )
    }


def _levels(session: Session, rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """EDR id -> its reseller levels, each as the EDR row with that level's agreement
    and prices (what the unit give-back and the repricing read); their agreements
    locked after the clients' (the rater's order)."""
    found = levels.of_edrs(session, [r["id"] for r in rows])
    if not found:
        return {}
    ledger.lock(session, {x["agreement_id"] for x in found})
    by_id = {r["id"]: r for r in rows}
    out: dict[int, list[dict[str, Any]]] = {}
    for x in found:
        r = by_id[x["edr_id"]]
        out.setdefault(r["id"], []).append(
            {**r, **{c: x[c] for c in _LEVEL_PRICED}, "_level": x["level"], "_level_id": x["id"]}
        )
    return out


_LEVEL_PRICED = ("agreement_id", "currency", "quantity", "cost", "unit_price", "pack_enabled_id", "pack_units")


def refund_refused_parts(
    session: Session, parts: Mapping[int, tuple[int, int, str]], plans: Plans, *, now: datetime
) -> dict[str, int]:
    """EDR id -> (parts sent, parts refused, why): record the parts sent on the EDR and
    give back what the refused ones were charged (see the module docstring).
    Returns counts; no commit. Idempotent: an EDR with ``segments_refused`` set
    is left alone."""
    out = {"edrs": 0, "refunded": 0, "amount": 0}
    rows, done, sums = _edrs(session, EDR.c.id.in_(list(parts)), EDR.c.segments_refused.is_(None))
    if not rows:
        return out
    ids = [r["id"] for r in rows]
    started: dict[tuple[int, int], int | None] = {}  # where each level's units started on its scale counter
    for e, a, details in session.execute(
        sa.select(CHG.c.edr_id, CHG.c.agreement_id, CHG.c.details).where(CHG.c.edr_id.in_(ids), CHG.c.kind == "edr")
    ):
        scale = details.get("scale") if isinstance(details, dict) else None
        if scale:
            started[(e, a)] = scale.get("before")
    refunds: list[dict[str, Any]] = []
    ups = _levels(session, rows)
    for r in rows:
        sent, refused, why = parts[r["id"]]
        out["edrs"] += 1
        values: dict[str, Any] = {"segments": sent, "segments_refused": refused}
        note = f"{sent} of {sent + refused} parts sent; {why}"
        billed = r["rating_state"] == "rated" and r["submitted_at"] is not None and r["id"] not in done
        if billed and refused:
            for x in ups.get(r["id"], ()):  # each reseller level at its own prices (RAT-10)
                if x["quantity"] == sent + refused:
                    refunds.extend(_level_parts(session, x, sent, refused, why, plans, started, sums))
        if billed and refused and r["quantity"] == sent + refused:
            total, at, period = sums.get((r["id"], r["agreement_id"]), (0, None, None))
            got = _reprice(session, r, sent, plans, started.get((r["id"], r["agreement_id"])), total)
            if got is not None:
                back, changed = got
                values.update(changed)
                if back > 0:
                    note += f"; refund of {format_micros(back)} {r['currency']}"
                elif back < 0:
                    note += (
                        f"; {format_micros(-back)} {r['currency']} more: fewer units, a back-to-first step not reached"
                    )
                if back:
                    refunds.append(
                        {
                            "agreement_id": r["agreement_id"],
                            "kind": REFUND,
                            "edr_id": r["id"],
                            "amount": -back,
                            "currency": r["currency"],
                            "at": at,
                            "period_start": period,
                            "details": {
                                "reason": f"parts not sent: {why}",
                                "parts": sent + refused,
                                "parts_refused": refused,
                                "refunded": back,
                            },
                        }
                    )
                    out["refunded"] += 1
                    out["amount"] += back
        elif billed and r["quantity"] == 1 and sent + refused > 1:
            note += "; billed per message"
        if r["rating_state"] == "rated":
            values["rating_note"] = note[:300]
        if r.get("connection_id") and r.get("vendor_cost") is not None:  # the vendor charges the parts sent
            got_cost = vendor.row_costs(plans.vendor, [{**r, "segments": sent}])
            values.update({c: v[0] for c, v in got_cost.items()})
        session.execute(sa.update(EDR).where(EDR.c.id == r["id"]).values(values))
    ledger.post(session, refunds, check_credit=False)
    return out


def _level_parts(
    session: Session,
    x: dict[str, Any],
    sent: int,
    refused: int,
    why: str,
    plans: Plans,
    started: dict[tuple[int, int], int | None],
    sums: dict[tuple[int, int], tuple[int, Any, Any]],
) -> list[dict[str, Any]]:
    """A reseller level of a message some parts of which were refused: priced again
    for the parts sent, its reseller CDR updated; its refund row (none or one)."""
    key = (x["id"], x["agreement_id"])
    total, at, period = sums.get(key, (0, None, None))
    got = _reprice(session, x, sent, plans, started.get(key), total)
    if got is None:
        return []
    back, changed = got
    session.execute(sa.update(levels.LEVEL).where(levels.LEVEL.c.id == x["_level_id"]).values(changed))
    if not back:
        return []
    details = {"reason": f"parts not sent: {why}", "parts": sent + refused, "parts_refused": refused}
    return [
        {
            "agreement_id": x["agreement_id"],
            "kind": REFUND,
            "edr_id": x["id"],
            "amount": -back,
            "currency": x["currency"],
            "at": at,
            "period_start": period,
            "details": {**details, "refunded": back, "level": x["_level"]},
        }
    ]


def _reprice(
    session: Session, r: dict[str, Any], sent: int, plans: Plans, before: int | None, charged: int
) -> tuple[int, dict[str, Any]] | None:
    """Price the EDR again for ``sent`` segments where its units started; give the
    refused units back to the counter and pack. Returns (money to give back, EDR
    columns), or None when its plan no longer prices it (then nothing changes).
    The money is negative only when a back-to-first step is no longer reached."""
    ag_id = r["agreement_id"]
    plan = plans.get(ag_id) if ag_id else None
    if plan is None:
        return None
    by_id = {e.enabled_id: e for e in plan.entries}
    pack = by_id.get(r["pack_enabled_id"]) if r["pack_enabled_id"] is not None else None
    if pack is not None and pack.service_type != "monetary-pack":  # a unit pack took it: units back
        _pack_back(session, pack.enabled_id, (r["pack_units"] or 0) - sent)
        return 0, {"quantity": sent, "pack_units": sent}
    full = {e.enabled_id: (e.size or 0) + 1 for e in plan.entries if e.kind == en.PACK}
    first = en.rate(event_of(r), plan, en.State(pack_used=dict(full)))
    if first.state != en.RATED:
        return None
    state = en.State(pack_used=dict(full))
    key = first.counter_key
    if key is not None:
        if before is None:  # no charge row (a monetary pack paid): where the counter stands, less these units
            now_at = session.execute(_counter(ag_id, key, sa.select(SCALE_COUNTERS.c.quantity))).scalar() or 0
            before = max(0, now_at - r["quantity"])
        state.counters[key] = before
    d = en.rate(event_of({**r, "segments": sent}), plan, state)
    if d.state != en.RATED:
        return None
    if key is not None:
        _counter_back(session, ag_id, key, r["quantity"] - d.quantity)
    new = d.amount + d.adjustment
    cols = {"quantity": d.quantity, "cost": d.amount, "unit_price": d.unit_price}
    if pack is not None:  # a monetary pack paid the price: the difference goes back to it
        _pack_back(session, pack.enabled_id, (r["pack_units"] or 0) - new)
        return 0, {**cols, "pack_units": new}
    return charged - new, cols


def _counter(ag_id: int, key: tuple, stmt: Any) -> Any:
    node, group, period = key
    return stmt.where(
        SCALE_COUNTERS.c.agreement_id == ag_id,
        SCALE_COUNTERS.c.node_key == node,
        SCALE_COUNTERS.c.group_value == group,
        SCALE_COUNTERS.c.period_start == period,
    )


def _counter_back(session: Session, ag_id: int, key: tuple, units: int) -> None:
    """Take ``units`` off a scale counter (not below 0)."""
    session.execute(
        _counter(ag_id, key, sa.update(SCALE_COUNTERS)).values(
            quantity=sa.case((SCALE_COUNTERS.c.quantity >= units, SCALE_COUNTERS.c.quantity - units), else_=0)
        )
    )


def _pack_back(session: Session, pack_id: int, units: int) -> None:
    if units > 0:
        session.execute(
            sa.update(PCK)
            .where(PCK.c.enabled_service_id == pack_id)
            .values(used=sa.case((PCK.c.used >= units, PCK.c.used - units), else_=0))
        )


def _give_back_units(session: Session, r: dict[str, Any], plans: Plans) -> None:
    """Undo the scale-counter and pack-usage deltas the EDR's rating applied."""
    ag_id = r["agreement_id"]
    plan = plans.get(ag_id) if ag_id else None
    if plan is None:
        return
    by_id = {e.enabled_id: e for e in plan.entries}
    pack = by_id.get(r["pack_enabled_id"]) if r["pack_enabled_id"] is not None else None
    if pack is not None and r["pack_units"]:
        _pack_back(session, pack.enabled_id, r["pack_units"])
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
    _counter_back(session, ag_id, d.counter_key, r["quantity"])
