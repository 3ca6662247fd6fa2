"""Rerate of a reseller level (RAT-10, RR-04): the reseller CDRs of a reselling agreement.

A reselling agreement carries no EDRs of its own: what it is charged are
the reseller CDRs (``edr_level``) of its clients' messages. A task that
covers such an agreement re-rates, per (agreement, billing period) unit,
every reseller CDR of the period at the agreement's prices in force now,
from empty counters, exactly as ``loop.py`` re-rates a client's EDRs: the
message's event is rebuilt from its EDR, the pure engine prices it, a
``rerate`` ledger row of new − old is appended where the money moved, the
CDR takes the new price, counters of the period and pack usage are
rewritten. Other levels are not touched: a client unit re-rates the client's
EDRs only, a level unit its own CDRs only.

A reseller CDR belongs to the period its charge fell in (its owner, as
``units.owner`` decides for EDRs): the unit takes the CDRs of events up to
``STRADDLE_LAG`` before the period whose charge falls in it, and leaves
those of its own events whose charge falls later.

A price the level no longer has (the engine rejects the event now) makes the
CDR cost 0 and counts as failed: the message was sent and charged to the
client; the reseller's price list must say what it costs the reseller.

Decided here: an agreement that has both EDRs of its own and reseller CDRs
in a period (a reseller that sent traffic itself) is not re-rated for that
period by the level unit; the EDR unit does its EDRs and the report says
so (TEN-11 keeps resellers from sending campaigns).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.billing.periods import Period, VersionTerms
from cpaas_cli.charging import levels
from cpaas_cli.charging.events import event_of
from cpaas_cli.charging.plans import Plans
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import PackUsage, ScaleCounter
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.rerate import RerateTask
from cpaas_cli.rating import engine as en
from cpaas_cli.rerate import units as un

LEVEL = levels.LEVEL
EDR = Edr.__table__
CHG = ledger.CHG
SCALE_COUNTERS = ScaleCounter.__table__
PCK = PackUsage.__table__
IN_CHUNK = 5_000  # ids per IN (...) list
EVENT_COLUMNS = (
    "event_at", "submitted_at", "delivered_at", "seen_at", "status", "channel", "direction", "mcc", "mnc",
    "country", "network", "sender", "segments",
)  # fmt: skip


def _agreement_ids(session: Session, task: RerateTask) -> list[int]:
    if task.agreement_ids:
        return list(task.agreement_ids)
    q = sa.select(Agreement.id).where(Agreement.company_id == task.company_id).order_by(Agreement.id)
    return list(session.execute(q).scalars())


def units(session: Session, task: RerateTask) -> list[tuple[int, Period, int]]:
    """(reselling agreement id, whole billing period, reseller CDRs in it): the
    periods that overlap the task's window and hold a CDR of the window."""
    out = []
    for ag_id in _agreement_ids(session, task):
        ag = session.get(Agreement, ag_id)
        terms = [VersionTerms.of(v) for v in agreements.versions(session, ag)]
        if not terms:
            continue
        for p, lo, hi in un.window_periods(terms, task.time_from, task.time_till):
            where = [LEVEL.c.agreement_id == ag_id, LEVEL.c.event_at >= lo, LEVEL.c.event_at < hi]
            q = sa.select(sa.func.count()).select_from(LEVEL).where(*where)
            if task.channels:
                q = q.join(EDR, EDR.c.id == LEVEL.c.edr_id).where(EDR.c.channel.in_(task.channels))
            n = int(session.execute(q).scalar() or 0)
            if n:
                out.append((ag_id, p, n))
    return out


def _rows(session: Session, task: RerateTask, ag_id: int, p: Period) -> list[dict[str, Any]]:
    """The CDRs the unit may own (events from STRADDLE_LAG before the period), event order."""
    lo, _ = un.arriving_span(p)
    q = (
        sa.select(LEVEL, *[EDR.c[c].label(f"e_{c}") for c in EVENT_COLUMNS])
        .join(EDR, EDR.c.id == LEVEL.c.edr_id)
        .where(LEVEL.c.agreement_id == ag_id, LEVEL.c.event_at >= lo, LEVEL.c.event_at < p.end)
        .order_by(LEVEL.c.event_at, LEVEL.c.edr_id)
    )
    if task.channels:
        q = q.where(EDR.c.channel.in_(task.channels))
    return [dict(m) for m in session.execute(q).mappings()]


def _old_costs(session: Session, ag_id: int, edr_ids: list[int]) -> dict[int, int]:
    """EDR id → Σ of the agreement's ledger rows for it (every kind: charge, adjustment, refund, rerate)."""
    out: dict[int, int] = {}
    for i in range(0, len(edr_ids), IN_CHUNK):
        part = edr_ids[i : i + IN_CHUNK]
        q = (
            sa.select(CHG.c.edr_id, sa.func.sum(CHG.c.amount))
            .where(CHG.c.agreement_id == ag_id, CHG.c.edr_id.in_(part))
            .group_by(CHG.c.edr_id)
        )
        out.update((e, int(t or 0)) for e, t in session.execute(q))
    return out


def has_own_edrs(session: Session, ag_id: int, p: Period) -> bool:
    q = sa.select(EDR.c.id).where(EDR.c.agreement_id == ag_id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end)
    return session.execute(q.limit(1)).first() is not None


def rerate_level_unit(
    session: Session,
    task: RerateTask,
    ag: Agreement,
    p: Period,
    plans: Plans,
    dest: dict[tuple[str, str], list[int]],
    *,
    write: bool,
) -> dict[str, int]:
    """Re-rate the reseller CDRs one reselling agreement owns in one period (see the
    module docstring); writes when ``write``, no commit. ``dest`` gets the figures
    per (country, network): [old, new, CDRs, cost changed]."""
    figures = dict.fromkeys(("processed", "updated", "unchanged", "failed", "old_cost", "new_cost"), 0)
    plan = plans.get(ag.id)
    if write:
        ledger.lock(session, [ag.id])
        ledger.ensure_rows(session, [ag.id])
    rows = [] if plan is None else _rows(session, task, ag.id, p)
    events, mine = [], []
    for r in rows:
        ev = event_of({"id": r["edr_id"], **{c: r[f"e_{c}"] for c in EVENT_COLUMNS}})
        if un.owner(plan, ev) == p.start:  # type: ignore[arg-type]
            events.append(ev)
            mine.append(r)
    old = _old_costs(session, ag.id, [r["edr_id"] for r in mine])
    st = en.State()
    pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
    if pack_ids:  # stored usage less what these CDRs took: the state before the period's first
        stored = dict(
            session.execute(
                sa.select(PCK.c.enabled_service_id, PCK.c.used).where(PCK.c.enabled_service_id.in_(pack_ids))
            ).all()
        )
        took: dict[int, int] = defaultdict(int)
        for r in mine:
            if r["pack_enabled_id"] in pack_ids:
                took[r["pack_enabled_id"]] += int(r["pack_units"] or 0)
        st.pack_used = {i: int(stored.get(i) or 0) - took[i] for i in pack_ids}
    for node, grp, start, qty in session.execute(
        sa.select(
            SCALE_COUNTERS.c.node_key, SCALE_COUNTERS.c.group_value, SCALE_COUNTERS.c.period_start,
            SCALE_COUNTERS.c.quantity,
        ).where(SCALE_COUNTERS.c.agreement_id == ag.id, SCALE_COUNTERS.c.period_start > p.start)
    ):  # fmt: skip
        st.counters[(node, grp, start)] = qty
    now = clock.now()
    updates: list[dict[str, Any]] = []
    charges: list[dict[str, Any]] = []
    delta = 0
    for r, ev in zip(mine, events, strict=True):
        d = en.rate(ev, plan, st)  # type: ignore[arg-type]
        if d.state == en.PENDING:
            continue  # the level's event has not come (a later receipt rates it)
        en.apply(st, d)
        rated = d.state == en.RATED
        new_values = {
            "rate_path": ((d.path or "")[:300] or None) if rated else r["rate_path"],
            "service_id": d.service_id if rated else r["service_id"],
            "billing_rule": d.billing_rule if rated else r["billing_rule"],
            "unit_price": d.unit_price if rated else None,
            "quantity": d.quantity if rated else 0,
            "cost": d.amount if rated else 0,
            "pack_enabled_id": d.pack_id if rated else None,
            "pack_units": (d.pack_units or None) if rated else None,
        }
        amt, adj = en.money_charge(d)
        new = amt + adj
        was = old.get(r["edr_id"], 0)
        figures["processed"] += 1
        figures["old_cost"] += was
        figures["new_cost"] += new
        acc = dest.setdefault((r["e_country"] or "", r["e_network"] or ""), [0, 0, 0, 0])
        acc[0] += was
        acc[1] += new
        acc[2] += 1
        changed = new != was or any(r[k] != v for k, v in new_values.items())
        if new != was:
            acc[3] += 1
        if not rated:
            figures["failed"] += 1
        elif changed:
            figures["updated"] += 1
        else:
            figures["unchanged"] += 1
        if not changed or not write:
            continue
        updates.append({"b_id": r["id"], **{f"b_{k}": v for k, v in new_values.items()}, "b_rated_at": now})
        if new != was:
            charges.append(
                {
                    "agreement_id": ag.id,
                    "kind": "rerate",
                    "edr_id": r["edr_id"],
                    "revision": task.id,
                    "amount": new - was,
                    "currency": ag.currency,
                    "at": d.charge_at or r["e_submitted_at"] or r["event_at"],
                    "period_start": d.period_start or p.start,
                    "details": {"task": task.id, "old": was, "new": new, "level": r["level"]},
                    "created_at": now,
                }
            )
            delta += new - was
    if write and plan is not None:
        _write(session, ag.id, p, st, pack_ids, updates, charges, delta)
    return figures


def _write(
    session: Session,
    ag_id: int,
    p: Period,
    st: en.State,
    pack_ids: list[int],
    updates: list[dict[str, Any]],
    charges: list[dict[str, Any]],
    delta: int,
) -> None:
    if updates:
        cols = [k[2:] for k in updates[0] if k != "b_id"]
        session.execute(
            sa.update(LEVEL)
            .where(LEVEL.c.id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(f"b_{c}") for c in cols}),
            updates,
        )
    if charges:
        session.execute(sa.insert(CHG), charges)
    if delta:
        session.execute(
            sa.update(ledger.BAL).where(ledger.BAL.c.agreement_id == ag_id).values(spent=ledger.BAL.c.spent + delta)
        )
    session.execute(
        sa.delete(SCALE_COUNTERS).where(
            SCALE_COUNTERS.c.agreement_id == ag_id, SCALE_COUNTERS.c.period_start == p.start
        )
    )
    fresh = [
        {"agreement_id": ag_id, "node_key": k[0], "group_value": k[1], "period_start": k[2], "quantity": q}
        for k, q in st.counters.items()
        if k[2] == p.start and q
    ]
    if fresh:
        session.execute(sa.insert(SCALE_COUNTERS), fresh)
    for pid in pack_ids:
        used = st.pack_used.get(pid, 0)
        if session.execute(sa.update(PCK).where(PCK.c.enabled_service_id == pid).values(used=used)).rowcount == 0:
            session.execute(sa.insert(PCK).values(enabled_service_id=pid, used=used))
