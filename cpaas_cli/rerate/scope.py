"""Which rerate units a task covers, and what each unit takes from its neighbours.

The rule (pure) is in ``units.py``; this module asks the database where it applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing.periods import Period, VersionTerms, period_containing
from cpaas_cli.charging.plans import Plans
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.rerate import RerateTask
from cpaas_cli.rating import engine as en
from cpaas_cli.rerate import units as un
from cpaas_cli.rerate.rows import EDR, ELIGIBLE, R_ID, TRIGGER_FROM, Raw, event_of


def agreement_ids(session: Session, task: RerateTask) -> list[int]:
    if task.agreement_ids:
        return list(task.agreement_ids)
    q = sa.select(Agreement.id).where(Agreement.company_id == task.company_id).order_by(Agreement.id)
    return list(session.execute(q).scalars())


def _window_where(task: RerateTask, ag_id: int, lo: datetime, hi: datetime) -> list[Any]:
    where = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= lo, EDR.c.event_at < hi, ELIGIBLE]
    if task.channels:
        where.append(EDR.c.channel.in_(task.channels))
    return where


def units(session: Session, task: RerateTask, plans: Plans | None = None) -> list[tuple[int, Period, int]]:
    """(agreement id, whole billing period, EDRs prepared in it) in order.

    A period is a unit when an eligible EDR of the window was prepared in it,
    or when such an EDR is charged in it (a straddler: see ``units.owner``)."""
    plans = plans or Plans(session)
    out = []
    for ag_id in agreement_ids(session, task):
        ag = session.get(Agreement, ag_id)
        terms = [VersionTerms.of(v) for v in agreements.versions(session, ag)]
        if not terms:
            continue
        found: dict[datetime, Period] = {}
        for p, lo, hi in un.window_periods(terms, task.time_from, task.time_till):
            # A period already taken in as a later owner still hands its own
            # window EDRs' straddlers on to the period after it.
            if p.start not in found:
                hit = session.execute(sa.select(EDR.c.id).where(*_window_where(task, ag_id, lo, hi)).limit(1)).first()
                if hit is None:
                    continue
                found[p.start] = p
            for start in _later_owners(session, plans, task, ag_id, *un.leaving_span(p, lo, hi), p.end):
                if start not in found and (q := period_containing(terms, start)) is not None:
                    found[start] = q
        for start in sorted(found):
            p = found[start]
            whole = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
            n = session.execute(sa.select(sa.func.count()).select_from(EDR).where(*whole)).scalar() or 0
            out.append((ag_id, p, int(n)))
    return out


def _later_owners(
    session: Session, plans: Plans, task: RerateTask, ag_id: int, lo: datetime, hi: datetime, end: datetime
) -> set[datetime]:
    """Starts of the later periods that own window EDRs prepared in [lo, hi) (before ``end``)."""
    plan = plans.get(ag_id)
    if plan is None or lo >= hi:
        return set()
    raw = Raw(session)
    e = raw.param(end)
    sql = f" AND e.event_at >= ? AND e.event_at < ? AND {TRIGGER_FROM}"
    params: list[Any] = [ag_id, raw.param(lo), raw.param(hi), e, e, e]
    if task.channels:
        sql += f" AND e.channel IN ({', '.join('?' * len(task.channels))})"
        params += list(task.channels)
    return un.later_owners(plan, (event_of(r, raw.parse) for r in raw.rows(sql, params)), end)


def straddlers(raw: Raw, plan: en.Plan, ag_id: int, p: Period) -> tuple[list[tuple], dict[int, tuple]]:
    """(rows prepared before ``p`` that this unit owns, in event order;
    rows prepared in ``p`` that a later unit owns, by id)."""
    start, end = raw.param(p.start), raw.param(p.end)
    arrive_from, _ = un.arriving_span(p)
    leave_from, _ = un.leaving_span(p)
    inc = raw.rows(
        f" AND e.event_at >= ? AND e.event_at < ? AND {TRIGGER_FROM} ORDER BY e.event_at, e.id",
        (ag_id, raw.param(arrive_from), start, start, start, start),
    )
    out = raw.rows(
        f" AND e.event_at >= ? AND e.event_at < ? AND {TRIGGER_FROM}",
        (ag_id, raw.param(leave_from), end, end, end, end),
    )
    incoming = [r for r in inc if un.owner(plan, event_of(r, raw.parse)) == p.start]
    outgoing = {r[R_ID]: r for r in out if un.owner(plan, event_of(r, raw.parse)) != p.start}
    return incoming, outgoing
