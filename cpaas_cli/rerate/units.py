"""Rerate units: which billing period re-rates an EDR. Pure: no database.

A task is processed as units of (agreement, whole billing period). Scale
counters are per period (AMB-11), so a unit re-rates every eligible EDR of
its period from empty counters.

Straddlers. An EDR prepared in one period but charged in a later one (its
billing trigger, submission or delivery, falls after the boundary) belongs
to the unit of its charge period (:func:`owner`): that unit takes it first
(event order) and counts it in its tiers, the unit of its event period skips
it, and a task whose window holds such an EDR also takes the unit that owns
it. Only an EDR prepared more than ``STRADDLE_LAG`` before its charge period
stays with its event period, rated against the later period's stored counter
(which that unit does not rewrite).

The spans below say where the database needs to look for the EDRs a unit
may take from, or give to, its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from cpaas_cli.billing.periods import Period, VersionTerms, period_containing, periods
from cpaas_cli.rating import engine as en

# How long before a period an EDR may be prepared and still belong to it by
# its charge (a message submitted or delivered after the boundary): SMS
# validity periods, hence delivery receipts, stay within a few days.
STRADDLE_LAG = timedelta(days=7)


def owner(plan: en.Plan, ev: en.Event) -> datetime | None:
    """Start of the billing period whose rerate unit re-rates this EDR.

    That is the period of its charge (the engine's ``period_start``, from the
    billing trigger) when it falls after the period of its event time and the
    event is at most ``STRADDLE_LAG`` before it; otherwise the event's own
    period. Decided on an empty state (pure, the same in every unit), so the
    two units at a boundary always agree on who takes a straddling EDR."""
    own = plan.period_of(ev.at)
    d = en.rate(ev, plan, en.State())
    p = d.period_start if d.state == en.RATED else None
    if p is not None and (own is None or p > own) and ev.at >= p - STRADDLE_LAG:
        return p
    return own


def window_periods(
    terms: Sequence[VersionTerms], time_from: datetime, time_till: datetime
) -> list[tuple[Period, datetime, datetime]]:
    """The whole billing periods that overlap [time_from, time_till), in order,
    each once, with the part of the window inside it: (period, lo, hi)."""
    out = []
    seen: set[datetime] = set()
    for clipped in periods(terms, time_from, time_till):
        p = period_containing(terms, clipped.start)
        if p is None or p.start in seen:
            continue
        seen.add(p.start)
        out.append((p, max(p.start, time_from), min(p.end, time_till)))
    return out


def leaving_span(p: Period, lo: datetime | None = None, hi: datetime | None = None) -> tuple[datetime, datetime]:
    """Event times in ``p`` (within [lo, hi) when given) of EDRs a later unit may
    own: prepared less than ``STRADDLE_LAG`` before the period's end."""
    lo = p.start if lo is None else lo
    hi = p.end if hi is None else hi
    return max(lo, p.end - STRADDLE_LAG), hi


def arriving_span(p: Period) -> tuple[datetime, datetime]:
    """Event times before ``p`` of EDRs this unit may own (charged in ``p``)."""
    return p.start - STRADDLE_LAG, p.start


def later_owners(plan: en.Plan, events: Iterable[en.Event], end: datetime) -> set[datetime]:
    """Starts of the periods from ``end`` on that own some of these events."""
    starts = {owner(plan, ev) for ev in events}
    return {s for s in starts if s is not None and s >= end}
