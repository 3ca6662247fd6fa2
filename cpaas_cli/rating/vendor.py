"""Vendor cost: what a message costs us at the vendor connection it went through.

Pure like the engine beside it: no database, no I/O (the vendor plan of a
connection is loaded by ``charging/vendor.py``). A vendor plan is a rate plan
(service of type ``vendor``) with the same scopes and rate tree as a sale plan,
walked with the same lookup (``rating/lookup.py``: destination, MCC/MNC with
the country row as fallback, sender type, ``others``) and the same query the
client's charge is looked up with (``charging/events.py``).

The rules (issue 29, item 3):

* the cost is the leaf's price × quantity (its quantity rule: messages or
  segments), exact in micro-units of the plan's currency; ``free`` costs 0;
* unknown (None, never zero) when the connection has no vendor plan, no scope
  of it covers the message's time, the tree gives no price (no rate, blocked,
  not included, unusable), or the leaf is a scale: vendor volume tiers need
  counters per connection, which are not kept yet, and a guessed step would be
  a wrong number;
* a message that never reached the vendor (final, without a submit) costs 0
  there: nothing was handed over;
* the leaf's billing rule is not applied: a vendor is taken to bill what was
  submitted to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cpaas_cli.rating import lookup as lk

# (cost micro-units or None, currency, vendor plan id): the three EDR columns.
Cost = tuple[int | None, str | None, int | None]
UNKNOWN: Cost = (None, None, None)


@dataclass(slots=True)
class VendorPlan:
    """One connection's vendor plan: its scopes' snapshots (from, till, snapshot)."""

    service_id: int
    currency: str | None
    scopes: tuple[tuple[datetime, datetime | None, lk.Snapshot], ...]
    # (scope index, id(query)) → (query, answer): the query dicts of a run are shared
    # (charging/events.query_of), so the memo is probed by identity, as the engine's.
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def scope_at(self, at: datetime) -> int | None:
        for i, (start, till, _snap) in enumerate(self.scopes):
            if start <= at and (till is None or at < till):
                return i
        return None


_MEMO_MAX = 50_000


def leaf(plan: VendorPlan, i: int, q: dict[str, Any]) -> tuple[int, bool] | None:
    """(unit price, per segment) of the query in scope ``i``; None: no usable price."""
    memo = plan._memo
    hit = memo.get((i, id(q)))
    if hit is not None and hit[0] is q:
        return hit[1]
    res = lk.resolve(plan.scopes[i][2], q)
    got: tuple[int, bool] | None = None
    if res.status == lk.FREE:
        got = (0, False)
    elif res.status == lk.RATE and res.price_type == "flat" and res.price is not None:
        got = (res.price, res.quantity_rule == "segments")
    if len(memo) < _MEMO_MAX:
        memo[(i, id(q))] = (q, got)
    return got


def cost(plan: VendorPlan | None, at: datetime, q: dict[str, Any], segments: int, sent: bool) -> Cost:
    """The vendor cost of one message (see the module docstring). ``at``: the
    message's event time (chooses the scope, as for the client's charge);
    ``sent``: whether it reached the vendor (False: final and never submitted)."""
    if plan is None:
        return UNKNOWN
    i = plan.scope_at(at)
    if i is None:
        return UNKNOWN
    if not sent:
        return (0, plan.currency, plan.service_id)
    got = leaf(plan, i, q)
    if got is None:
        return UNKNOWN
    price, per_segment = got
    return (price * segments if per_segment else price, plan.currency, plan.service_id)


def one_scope(plan: VendorPlan, lo: datetime, hi: datetime) -> int | None:
    """The scope current at every instant of [lo, hi], when one is (the first scope
    that overlaps the window covers all of it); None otherwise."""
    for j, (start, till, _snap) in enumerate(plan.scopes):
        if start <= hi and (till is None or lo < till):
            return j if start <= lo and (till is None or hi < till) else None
    return None


def amounts(
    plan: VendorPlan, i: int, queries: Sequence[dict[str, Any]], segments: Sequence[int], sent: Sequence[bool]
) -> list[int | None]:
    """``cost(...)[0]`` for many messages of one plan priced in its scope ``i``
    (``one_scope``): what `edr ingest` and the dispatch claim compute per chunk.
    Each distinct query dict is looked up once (the list holds the dicts, so
    their ids stay theirs while this runs)."""
    leaves: dict[int, tuple[int, bool] | None] = {}
    out: list[int | None] = []
    add = out.append
    for q, seg, s in zip(queries, segments, sent, strict=True):
        if not s:
            add(0)
            continue
        k = id(q)
        got = leaves.get(k, _MISSING)
        if got is _MISSING:
            got = leaves[k] = leaf(plan, i, q)
        add(None if got is None else got[0] * seg if got[1] else got[0])
    return out


_MISSING: Any = object()


__all__ = ["UNKNOWN", "Cost", "VendorPlan", "amounts", "cost", "leaf", "one_scope"]
