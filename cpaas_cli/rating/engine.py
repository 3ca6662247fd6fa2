"""The rating engine: pure, no I/O.

Input: one event, the agreement's :class:`Plan` (its enabled services and
packs with their tree snapshots and validity windows, its billing terms) and a
:class:`State` (scale counters and pack usage as plain dicts). Output: a
:class:`Decision` with the charge and the counter / pack deltas to apply
(:func:`apply` applies them to the in-memory state; the caller persists them).

Order (RAT-03, ENS-04/05): enabled packs first, the earliest associated first;
a pack takes an event only when its tree answers ``included`` and it has
enough left (unit packs count messages or segments across channels, monetary
packs count money at the pay-as-you-go price). Then the pay-as-you-go trees:
``not_included`` moves to the next tree, ``blocked`` rejects, no answer
rejects with ``no_rate``.

Billing rule (RAT-04): ``submitted`` charges once the message was submitted,
``delivered`` once the receipt says delivered; an event whose trigger has not
happened stays pending, and one that ended without it is rated at zero with a
note saying why. Quantity rule (RAT-05): messages or segments.

Scales (RAT-06, AMB-11): counted per (agreement, node, counter group value,
billing period). Tier prices the new units where they fall. Back-to-first
prices the event at the step its total reaches and, when that step's price
differs from the one the earlier units of the period were charged at, returns
an explicit ``adjustment`` re-pricing those earlier units (never a rewrite).
Every amount is rounded once, by ``money.round_event``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from cpaas_cli.money import round_event
from cpaas_cli.rating import lookup as lk
from cpaas_cli.rating.scales import increment as scale_increment
from cpaas_cli.rating.scales import unit_price

RATED = "rated"
REJECTED = "rejected"
PENDING = "pending"

PACK = "pack"
PAYG = "pay-as-you-go"


@dataclass(frozen=True, slots=True)
class Entry:
    """One service enabled on the agreement, with its scopes' snapshots."""

    enabled_id: int
    kind: str  # PACK or PAYG
    service_type: str
    valid_from: datetime
    valid_till: datetime | None
    # (from, till, snapshot) in scope-id order: the first covering one is current.
    scopes: tuple[tuple[datetime, datetime | None, lk.Snapshot], ...]
    size: int | None = None  # pack size: units, or micro-units for a monetary pack

    def snapshot_at(self, at: datetime) -> lk.Snapshot | None:
        if at < self.valid_from or (self.valid_till is not None and at >= self.valid_till):
            return None
        for start, till, snap in self.scopes:
            if start <= at and (till is None or at < till):
                return snap
        return None


@dataclass(slots=True)
class Plan:
    """What rates one agreement: its entries (packs first, in association order,
    then pay-as-you-go) and a pure ``period_of(instant) -> period start``.

    A plan is read-only once built; ``_routes`` memoises what its trees answer
    (see ``_route``) and is filled as events are rated."""

    agreement_id: int
    currency: str
    entries: tuple[Entry, ...]
    period_of: Callable[[datetime], datetime | None]
    _bounds: list[datetime] | None = field(default=None, repr=False, compare=False)
    _routes: dict = field(default_factory=dict, repr=False, compare=False)
    _by_query: dict = field(default_factory=dict, repr=False, compare=False)

    def window(self, at: datetime) -> int:
        """Which stretch of time ``at`` falls in, between the instants where an
        entry or one of its scopes starts or ends: within one stretch every
        entry has the same current snapshot (or none)."""
        bounds = self._bounds
        if bounds is None:
            edges = set()
            for e in self.entries:
                edges.add(e.valid_from)
                if e.valid_till is not None:
                    edges.add(e.valid_till)
                for start, till, _snap in e.scopes:
                    edges.add(start)
                    if till is not None:
                        edges.add(till)
            bounds = self._bounds = sorted(edges)
        return bisect_right(bounds, at)


@dataclass(slots=True)
class Event:
    key: Any
    at: datetime  # when the message was prepared: chooses the services in force
    query: dict[str, Any]
    segments: int = 1
    sender: str | None = None
    submitted_at: datetime | None = None
    delivered_at: datetime | None = None
    final: bool = False  # no further status will arrive


@dataclass(slots=True)
class State:
    """Counters keyed (node_key, group value, period start) and pack usage by enabled id."""

    counters: dict[tuple[str, str, datetime], int] = field(default_factory=dict)
    pack_used: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Decision:
    state: str
    reason: str | None = None
    note: str | None = None
    amount: int = 0  # money charge of this event, micro-units, rounded
    adjustment: int = 0  # back-to-first re-pricing of the period's earlier units
    unit_price: int | None = None
    quantity: int | None = None
    currency: str | None = None
    path: str | None = None
    source: str | None = None
    service_id: int | None = None
    scope_id: int | None = None
    billing_rule: str | None = None
    quantity_rule: str | None = None
    charge_at: datetime | None = None
    period_start: datetime | None = None
    pack_id: int | None = None
    pack_units: int = 0
    counter_key: tuple[str, str, datetime] | None = None
    counter_delta: int = 0
    scale: dict | None = None

    # The fields a positional call gives, in order (see ``_price``).
    _POSITIONAL = ("state", "reason", "note", "amount", "adjustment", "unit_price", "quantity", "currency", "path",
                   "source", "service_id", "scope_id", "billing_rule", "quantity_rule", "charge_at", "period_start",
                   "pack_id", "pack_units")  # fmt: skip

    def explain(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "note": self.note,
            "source": self.source,
            "path": self.path,
            "service_id": self.service_id,
            "scope_id": self.scope_id,
            "billing_rule": self.billing_rule,
            "quantity_rule": self.quantity_rule,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "amount": self.amount,
            "adjustment": self.adjustment,
            "pack_id": self.pack_id,
            "pack_units": self.pack_units,
            "scale": self.scale,
            "counter": None if self.counter_key is None else list(self.counter_key[:2]),
        }


if tuple(f.name for f in fields(Decision))[: len(Decision._POSITIONAL)] != Decision._POSITIONAL:  # pragma: no cover
    raise RuntimeError("Decision's fields moved: update Decision._POSITIONAL and the positional calls")


def path_text(res: lk.Result) -> str:
    return "/".join(p["value"] + ("*" if p["others"] else "") for p in res.path)


_MEMO_MAX = 100_000


def _lookup(snap: lk.Snapshot, q: dict[str, Any], qk: tuple) -> tuple[lk.Result, str]:
    """``lk.resolve`` and the path text, memoised per snapshot on the query items.

    The lookup is pure and a snapshot never changes, so equal queries give
    equal answers; results are shared read-only (nothing here mutates them)."""
    got = snap.memo.get(qk)
    if got is None:
        res = lk.resolve(snap, q)
        got = (res, path_text(res))
        if len(snap.memo) < _MEMO_MAX:
            snap.memo[qk] = got
    return got


_STEPS: dict[int, tuple[dict, str, list[tuple[int | None, int]]]] = {}


def _steps(scale: dict) -> tuple[str, list[tuple[int | None, int]]]:
    """Scale steps as tuples, converted once per scale dict."""
    got = _STEPS.get(id(scale))
    if got is None or got[0] is not scale:
        got = (scale, scale.get("type", "tier"), [(None if u is None else int(u), int(p)) for u, p in scale["steps"]])
        _STEPS[id(scale)] = got
    return got[1], got[2]


def _quantity(event: Event, rule: str | None) -> int:
    return event.segments if rule == "segments" else 1


def _trigger(event: Event, rule: str) -> datetime | None:
    return event.delivered_at if rule == "delivered" else event.submitted_at


def _not_triggered(event: Event, rule: str, res: lk.Result, source: str, currency: str, text: str) -> Decision:
    if not event.final:
        return Decision(PENDING, note=f"waiting for the {rule} event", billing_rule=rule, source=source)
    what = "delivered" if rule == "delivered" else "submitted"
    return Decision(
        RATED,
        note=f"not charged: billed when {what} and the message never was",
        amount=0,
        quantity=0,
        currency=currency,
        path=text,
        source=source,
        service_id=res.service_id,
        scope_id=res.scope_id,
        billing_rule=rule,
        quantity_rule=res.quantity_rule,
    )


def _reject(
    reason: str, note: str | None, res: lk.Result | None = None, source: str | None = None, text: str | None = None
) -> Decision:
    return Decision(
        REJECTED,
        reason=reason,
        note=note,
        path=(text if text is not None else path_text(res)) if res is not None and res.path else None,
        source=source,
        service_id=res.service_id if res is not None else None,
        scope_id=res.scope_id if res is not None else None,
    )


def _price(
    event: Event, plan: Plan, state: State, res: lk.Result, rule: str, at: datetime, period: datetime, text: str
) -> Decision:
    """Price a pay-as-you-go answer (rate or free) for an event whose trigger happened."""
    qr = res.quantity_rule or "messages"
    qty = _quantity(event, qr)
    cur = plan.currency
    # Positional (``_POSITIONAL``): a keyword call costs twice as long, once per event.
    if res.status == lk.FREE:
        return Decision(RATED, None, "free", 0, 0, 0, qty, cur, text, PAYG, res.service_id, res.scope_id, rule, qr,
                        at, period)  # fmt: skip
    if res.price_type != "scale" or not res.scale:
        price = res.price or 0
        amount = round_event(price * qty, cur)
        return Decision(RATED, None, None if amount else "zero price", amount, 0, price, qty, cur, text, PAYG,
                        res.service_id, res.scope_id, rule, qr, at, period)  # fmt: skip
    d = Decision(RATED, None, None, 0, 0, None, qty, cur, text, PAYG, res.service_id, res.scope_id, rule, qr, at,
                 period)  # fmt: skip
    kind, steps = _steps(res.scale)
    group = (event.sender or "") if res.counter_group == "sender_id" else ""
    key = (f"{res.scope_id}:{d.path}", group, period)
    before = state.counters.get(key, 0)
    after = before + qty
    d.counter_key, d.counter_delta = key, qty
    if kind == "back_to_first":
        p_new = unit_price(steps, after)
        d.unit_price = p_new
        d.amount = round_event(qty * p_new, cur)
        if before:
            p_old = unit_price(steps, before)
            if p_old != p_new:
                d.adjustment = round_event(before * (p_new - p_old), cur)
    else:
        inc = scale_increment(kind, steps, before, qty)
        d.unit_price = unit_price(steps, after)
        d.amount = round_event(inc, cur)
    d.scale = {"type": kind, "group": group or None, "before": before, "after": after}
    return d


_BY_QUERY_MAX = 20_000


def _route(plan: Plan, at: datetime, q: dict[str, Any]) -> tuple:
    """What the plan's trees answer for a query at ``at``: (the packs whose tree
    includes it, the pay-as-you-go answer that settles it and its path text,
    the last ``not_included`` answer and its path text, whether any entry has
    a current scope). Pure; memoised on the plan per (stretch of time, query),
    as neither the snapshots current in a stretch nor their answers change.

    The bulk callers (ingest, rerate) share one query dict among the events
    that ask the same and never change it, so the memo is first probed by the
    dict's identity: a pair of integers hashes in a tenth of the time of the
    query's items. Such an entry holds the dict, so its id cannot be reused
    while the entry lives; it is made only for the dict that first asked, so
    a caller building a new dict per event costs one probe more, not a memo
    of dead dicts. Both memos stop growing at their limits."""
    w = plan.window(at)
    by_query = plan._by_query
    hit = by_query.get((w, id(q)))
    if hit is not None and hit[0] is q:
        return hit[1]
    qk = tuple(q.items())
    got = plan._routes.get((w, qk))
    if got is None:
        got = (_resolve_route(plan, at, q, qk), q)
        if len(plan._routes) < _MEMO_MAX:
            plan._routes[(w, qk)] = got
    if got[1] is q and len(by_query) < _BY_QUERY_MAX:
        by_query[(w, id(q))] = (q, got[0])
    return got[0]


def _resolve_route(plan: Plan, at: datetime, q: dict[str, Any], qk: tuple) -> tuple:
    packs: list[tuple[Entry, lk.Result, str]] = []
    payg: lk.Result | None = None
    payg_text = ""
    last: lk.Result | None = None
    last_text = ""
    current = False
    for e in plan.entries:
        snap = e.snapshot_at(at)
        if snap is None:
            continue
        current = True
        res, text = _lookup(snap, q, qk)
        if e.kind == PACK:
            if res.status == lk.INCLUDED:
                packs.append((e, res, text))
            continue
        if res.status == lk.NOT_INCLUDED:
            last, last_text = res, text
            continue
        payg, payg_text = res, text
        break
    return (tuple(packs), payg, payg_text, last, last_text, current)


def rate(event: Event, plan: Plan, state: State) -> Decision:
    """Decide the charge of one event. Pure: ``state`` is read, not changed."""
    at = event.at
    q = event.query
    packs, payg, payg_text, last, last_text, current = _route(plan, at, q)

    # Unit packs, earliest first.
    for e, res, text in packs:
        if e.service_type == "monetary-pack":
            continue
        rule = res.billing_rule or "submitted"
        qr = res.quantity_rule or "messages"
        qty = _quantity(event, qr)
        left = (e.size or 0) - state.pack_used.get(e.enabled_id, 0)
        if left < qty:
            continue
        trig = _trigger(event, rule)
        if trig is None:
            return _not_triggered(event, rule, res, PACK, plan.currency, text)
        period = plan.period_of(trig)
        if period is None:
            return _reject("no_agreement", f"no agreement version in force at {trig.isoformat()}", res, PACK, text)
        return Decision(RATED, None, f"taken from unit pack #{e.enabled_id}", 0, 0, 0, qty, plan.currency, text, PACK,
                        res.service_id, res.scope_id, rule, qr, trig, period, e.enabled_id, qty)  # fmt: skip

    if payg is None:
        if last is not None:
            return _reject("no_rate", "not included in any enabled service", last, text=last_text)
        if not current:
            return _reject("no_rate", "no service with a current scope is enabled on the agreement")
        return _reject("no_rate", "no enabled service prices this event")
    if payg.status == lk.BLOCKED:
        return _reject("blocked", payg.reason, payg, PAYG, payg_text)
    if payg.status == lk.UNUSABLE:
        return _reject("unusable", payg.reason, payg, PAYG, payg_text)
    if payg.status not in (lk.RATE, lk.FREE):
        return _reject("no_rate", payg.reason or f"pay-as-you-go tree answered {payg.status}", payg, PAYG, payg_text)

    rule = payg.billing_rule or "submitted"
    trig = _trigger(event, rule)
    if trig is None:
        return _not_triggered(event, rule, payg, PAYG, plan.currency, payg_text)
    period = plan.period_of(trig)
    if period is None:
        return _reject("no_agreement", f"no agreement version in force at {trig.isoformat()}", payg, PAYG, payg_text)
    d = _price(event, plan, state, payg, rule, trig, period, payg_text)

    # Monetary packs pay the pay-as-you-go price, earliest first.
    cost = d.amount + d.adjustment
    if cost > 0:
        for e, _res, _text in packs:
            if e.service_type != "monetary-pack":
                continue
            left = (e.size or 0) - state.pack_used.get(e.enabled_id, 0)
            if left >= cost:
                d.pack_id, d.pack_units = e.enabled_id, cost
                d.source = PACK
                d.note = f"paid from monetary pack #{e.enabled_id}"
                break
    return d


def money_charge(d: Decision) -> tuple[int, int]:
    """(event amount, adjustment) that move the balance (zero when a pack paid)."""
    if d.state != RATED or d.pack_id is not None:
        return 0, 0
    return d.amount, d.adjustment


def apply(state: State, d: Decision) -> None:
    """Apply a decision's counter and pack deltas to the in-memory state."""
    if d.state != RATED:
        return
    if d.counter_key is not None and d.counter_delta:
        state.counters[d.counter_key] = state.counters.get(d.counter_key, 0) + d.counter_delta
    if d.pack_id is not None and d.pack_units:
        state.pack_used[d.pack_id] = state.pack_used.get(d.pack_id, 0) + d.pack_units


def rate_all(events: Sequence[Event], plan: Plan, state: State) -> list[Decision]:
    """Rate events in order, applying each decision's deltas before the next."""
    out = []
    for ev in events:
        d = rate(ev, plan, state)
        apply(state, d)
        out.append(d)
    return out
