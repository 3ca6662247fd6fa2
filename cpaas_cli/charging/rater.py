"""The rater: rates events against agreement plans and moves the money.

A run of the rater over one transaction's events: the agreements of the
events are locked (``billing.ledger.lock``), the purchase charges of packs
that came due are written, each agreement's scale counters, pack usage and
credit headroom are loaded into an :class:`AgreementRun`, the events are rated
in memory by the pure engine (``rating/engine.py``), and the counters and
pack usage are written back. The caller stores the rating columns
(``result_values``/``result_columns``, in ``RESULT_COLUMNS`` order) and the
ledger rows (tuples in ``CHARGE_COLUMNS`` order, through :func:`post_charges`,
which also moves the running balance).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements.reselling import Missing
from cpaas_cli.billing import ledger, packs
from cpaas_cli.charging import levels
from cpaas_cli.charging.events import event_of
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import PackUsage, ScaleCounter
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en

ADJ_REASON = "back-to-first threshold crossed: earlier units of the period re-priced"
SCALE_COUNTERS = ScaleCounter.__table__
PACK_USAGE = PackUsage.__table__

RESULT_COLUMNS = (
    "rating_state",
    "rating_reason",
    "rating_note",
    "rate_path",
    "service_id",
    "billing_rule",
    "unit_price",
    "quantity",
    "cost",
    "currency",
    "pack_enabled_id",
    "pack_units",
    "rated_at",
)
# A row left unrated (pending, or ingested with --no-rate): no result columns.
UNRATED = ("unrated",) + (None,) * (len(RESULT_COLUMNS) - 1)
# A charge as the rater gives it: these columns, then the event's position.
CHARGE_COLUMNS = ("agreement_id", "kind", "edr_id", "amount", "currency", "at", "period_start", "details")


@dataclass(slots=True)
class AgreementRun:
    """One agreement's state during a rater run."""

    plan: en.Plan | None
    state: en.State
    headroom: int | None  # credit left (None: no limit); goes down as events are charged
    counter_ids: dict[tuple, int] = field(default_factory=dict)  # stored scale counters: key → row id
    packs_stored: set[int] = field(default_factory=set)  # packs with a usage row
    counters_before: dict[tuple, int] = field(default_factory=dict)
    packs_before: dict[int, int] = field(default_factory=dict)


class Rater:
    """Rates rows of one transaction; writes counters, pack usage and pack purchases."""

    def __init__(
        self, session: Session, plans: Plans, *, now: datetime | None = None, times: bulk.TimeText | None = None
    ):
        self.s = session
        self.plans = plans
        self.now = now or clock.now()
        self.times = times  # the caller's time texts (SQLite), shared with its other inserts
        self.level_rows: list[tuple] = []  # reseller CDRs of this run (levels.COLUMNS), written by decide_events
        self._level_details: dict[int, dict[str, Any]] = {}

    def _load(self, ag_id: int, since: datetime | None) -> AgreementRun:
        """The agreement's stored counters (of periods from ``since``) and pack usage."""
        plan = self.plans.get(ag_id)
        st = en.State()
        cnt = SCALE_COUNTERS.c
        q = sa.select(cnt.id, cnt.node_key, cnt.group_value, cnt.period_start, cnt.quantity).where(
            cnt.agreement_id == ag_id
        )
        if since is not None:
            q = q.where(cnt.period_start >= since)
        ids: dict[tuple, int] = {}
        for cid, node, grp, start, qty in self.s.execute(q):
            key = (node, grp, start)
            st.counters[key] = qty
            ids[key] = cid
        pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
        have: set[int] = set()
        if pack_ids:
            pck = PACK_USAGE.c
            for pid, used in self.s.execute(
                sa.select(pck.enabled_service_id, pck.used).where(pck.enabled_service_id.in_(pack_ids))
            ):
                st.pack_used[pid] = used
                have.add(pid)
        ag = self.s.get(Agreement, ag_id)
        return AgreementRun(
            plan,
            st,
            ledger.headroom(self.s, ag, now=self.now),
            ids,
            have,
            st.counters.copy(),
            dict(st.pack_used),
        )

    def rate(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
        """Rate ``rows`` (EDR column dicts, in time order). Returns (results, charges)
        where results are the rating columns per row (same order); None for
        a row that stays pending. Locks the agreements first."""
        decisions, charges = self.decide(rows)
        now = self.now
        results = [None if d is None else result(d, now) for d in decisions]
        return results, [{**dict(zip(CHARGE_COLUMNS, c[:-1], strict=True)), "_row": c[-1]} for c in charges]

    def decide(self, rows: list[dict[str, Any]]) -> tuple[list[en.Decision | None], list[tuple]]:
        """The engine's decision per row (None: stays pending) and the charges as
        tuples in ``CHARGE_COLUMNS`` order plus the row's position; writes the
        counters and pack usage. Locks the agreements first."""
        return self.decide_events([r.get("agreement_id") for r in rows], [event_of(r) for r in rows])

    def decide_events(
        self, agreement_ids: Sequence[int | None], events: Sequence[en.Event]
    ) -> tuple[list[en.Decision | None], list[tuple]]:
        """``decide`` for events built already (``agreement_ids[i]`` is the
        agreement of ``events[i]``; ``event.key`` the EDR id).

        Charge details without a scale are shared dict objects, one per distinct
        (path, unit price, quantity, service): read-only, dumped to JSON once."""
        ag_ids = sorted(set(agreement_ids).difference((None, 0)))
        ledger.lock(self.s, ag_ids)
        # RAT-10: the reseller levels above each event's agreement (None: no reseller sells here).
        uppers = self._uppers(agreement_ids, events)
        if uppers is not None:
            above = sorted({u for up in uppers if isinstance(up, tuple) for u in up}.difference(ag_ids))
            ledger.lock(self.s, above)  # after the clients', so that every writer locks level by level
            ag_ids = sorted(set(ag_ids).union(above))
        self.purchase_packs(ag_ids)
        firsts: dict[int, datetime] = {}
        if len(ag_ids) == 1:
            firsts[ag_ids[0]] = min(ev.at for a, ev in zip(agreement_ids, events, strict=True) if a)
        else:
            for a, ev in zip(agreement_ids, events, strict=True):
                if a and (a not in firsts or ev.at < firsts[a]):
                    firsts[a] = ev.at
            if uppers is not None:
                for up, ev in zip(uppers, events, strict=True):
                    for a in up if isinstance(up, tuple) else ():
                        if a not in firsts or ev.at < firsts[a]:
                            firsts[a] = ev.at
        runs: dict[int, AgreementRun] = {}
        for ag_id in ag_ids:
            plan = self.plans.get(ag_id)
            runs[ag_id] = self._load(ag_id, plan.period_of(firsts[ag_id]) if plan else None)
        decisions: list[en.Decision | None] = []
        charges: list[tuple] = []
        shared: dict[tuple, dict[str, Any]] = {}
        no_agreement = None
        rate, money_charge, apply_, RATED, PENDING = en.rate, en.money_charge, en.apply, en.RATED, en.PENDING
        for pos, (ag_id, ev) in enumerate(zip(agreement_ids, events, strict=True)):
            run = runs.get(ag_id) if ag_id else None
            if run is None or run.plan is None:
                if no_agreement is None:
                    no_agreement = en.Decision(en.REJECTED, reason="no_agreement", note="the EDR names no agreement")
                decisions.append(no_agreement)
                continue
            plan, st = run.plan, run.state
            d = rate(ev, plan, st)
            if d.state == PENDING:
                decisions.append(None)
                continue
            if d.state == RATED:
                amt, adj = money_charge(d)
                cost = amt + adj
                if run.headroom is not None and cost > 0 and cost > run.headroom:
                    decisions.append(_over_credit(d, cost, plan.currency))
                    continue
                up = uppers[pos] if uppers is not None else ()
                if up:
                    got = self.charge_above(ev, d, up, runs, charges, pos)
                    if got is not d:
                        # None: a level above waits for its billing event; else refused at a
                        # level above: refused at every level
                        decisions.append(got)
                        continue
                if run.headroom is not None:
                    run.headroom -= cost
                apply_(st, d)
                if amt:
                    if d.scale is None:
                        key = (d.path, d.unit_price, d.quantity, d.service_id)
                        details = shared.get(key)
                        if details is None:
                            details = shared[key] = {
                                "path": d.path,
                                "unit_price": d.unit_price,
                                "quantity": d.quantity,
                                "service_id": d.service_id,
                                "scale": None,
                            }
                    else:
                        details = {
                            "path": d.path,
                            "unit_price": d.unit_price,
                            "quantity": d.quantity,
                            "service_id": d.service_id,
                            "scale": d.scale,
                        }
                    charges.append(
                        (ag_id, "edr", ev.key, amt, plan.currency, d.charge_at, d.period_start, details, pos)
                    )
                if adj:
                    details = {
                        "path": d.path,
                        "scale": d.scale,
                        "reason": ADJ_REASON,
                    }
                    charges.append(
                        (
                            ag_id,
                            "scale_adjustment",
                            ev.key,
                            adj,
                            plan.currency,
                            d.charge_at,
                            d.period_start,
                            details,
                            pos,
                        )
                    )
            decisions.append(d)
        self.write_state(runs)
        return decisions, charges

    def load_run(self, ag_id: int, since: datetime | None, *, credit: bool = True) -> AgreementRun:
        """An agreement's run as a rater run loads it (counters of periods from ``since``,
        pack usage, credit headroom); without ``credit``, no credit limit (a rerate)."""
        run = self._load(ag_id, since)
        if not credit:
            run.headroom = None
        return run

    def write_state(self, runs: dict[int, AgreementRun]) -> None:
        """The runs' counters and pack usage that moved, and the reseller CDRs queued."""
        self._write_state(runs)
        if self.level_rows:
            levels.write(self.s, self.level_rows, times=self.times)
            self.level_rows = []

    # ------------------------------------------------------------- reseller levels (RAT-10)

    def charge_above(
        self,
        ev: en.Event,
        d: en.Decision,
        up: tuple[int, ...] | Missing,
        runs: dict[int, AgreementRun],
        charges: list[tuple],
        pos: int = 0,
    ) -> en.Decision | None:
        """The chain rating of one event the engine rated ``d`` at its own agreement:
        rated at every level of ``up`` (each on its run in ``runs``); when every level
        accepts, each is applied (credit, counters, packs), its charges appended to
        ``charges`` and its reseller CDR queued (``write_state`` writes them). Returns
        ``d`` then, else a refusal naming the level or None (a level waits for its
        billing event), with nothing applied. The one level rating: the ingest
        (``decide_events``) and a rerate that turns an EDR rated (``rerate/created.py``)."""
        got = self._rate_levels(ev, d, up, runs)
        if got is None or isinstance(got, en.Decision):
            return got
        self._charge_levels(ev, pos, got, charges)
        return d

    def _uppers(
        self, agreement_ids: Sequence[int | None], events: Sequence[en.Event]
    ) -> list[tuple[int, ...] | Missing] | None:
        """The agreements above each event's agreement at its time (level 1 first),
        or a Missing link; None when no event's agreement is sold by a reseller."""
        chains = self.plans.chains
        kinds = chains.seller_kinds({a for a in agreement_ids if a})
        if "reseller" not in kinds.values():
            return None
        span = chains.above_span
        out: list[tuple[int, ...] | Missing] = []
        last: dict[int, tuple[Any, datetime, datetime | None]] = {}  # agreement → its chain and the span it holds
        for a, ev in zip(agreement_ids, events, strict=True):
            if not a or kinds.get(a) != "reseller":
                out.append(())
                continue
            at = ev.at
            got = last.get(a)
            if got is None or not (got[1] <= at and (got[2] is None or at < got[2])):
                got = last[a] = span(a, at)
            out.append(got[0])
        return out

    def _rate_levels(
        self, ev: en.Event, d: en.Decision, up: tuple[int, ...] | Missing, runs: dict[int, AgreementRun]
    ) -> list[tuple] | en.Decision | None:
        """Rate ``ev`` at every level above (each at its own prices, packs,
        scales and credit): (level, agreement, run, decision, amount, adjustment)
        per level, a refusal naming the level (``d``'s path kept), or None when a
        level still waits for its event. Nothing is applied here: the caller
        applies every level or none."""
        if isinstance(up, Missing):
            return _refused_above(d, up.reason, up.note)
        out = []
        rate, money_charge, RATED = en.rate, en.money_charge, en.RATED
        for level, ag_id in enumerate(up, 1):
            urun = runs[ag_id]
            plan = urun.plan
            if plan is None:
                code = self.plans.chains.code(ag_id)
                return _refused_above(d, "no_agreement", f"level {level}: agreement {code!r} is not in force")
            ud = rate(ev, plan, urun.state)
            if ud.state != RATED:
                if ud.state == en.PENDING:
                    return None
                code = self.plans.chains.code(ag_id)
                return _refused_above(
                    d, ud.reason or "no_rate", f"level {level} (agreement {code!r}): {ud.note or ud.reason}"
                )
            amt, adj = money_charge(ud)
            head = urun.headroom
            if head is not None and amt + adj > 0 and amt + adj > head:
                code = self.plans.chains.code(ag_id)
                return _refused_above(
                    d,
                    "insufficient_credit",
                    f"level {level} (agreement {code!r}): charge {format_micros(amt + adj)} "
                    f"{plan.currency} passes the credit limit",
                )
            out.append((level, ag_id, urun, ud, amt, adj))
        return out

    def _charge_levels(self, ev: en.Event, pos: int, got: list[tuple], charges: list[tuple]) -> None:
        """Apply the accepted level decisions: credit, counters, packs, charges, reseller CDRs.
        A level charge without a scale has the shared details {"level": n} (its path and price
        are on its reseller CDR); with a scale, the scale too (a refund reads where it started)."""
        shared = self._level_details
        add_row = self.level_rows.append
        apply_, now, key = en.apply, self.now, ev.key
        for level, ag_id, urun, ud, amt, adj in got:
            if urun.headroom is not None:
                urun.headroom -= amt + adj
            apply_(urun.state, ud)
            cur = urun.plan.currency
            if amt:
                if ud.scale is None:
                    # the level's price is on its reseller CDR: the ledger row only says which level it is
                    details = shared.get(level)
                    if details is None:
                        details = shared[level] = {"level": level}
                else:
                    details = {"path": ud.path, "unit_price": ud.unit_price, "quantity": ud.quantity,
                               "service_id": ud.service_id, "scale": ud.scale, "level": level}  # fmt: skip
                charges.append((ag_id, "edr", key, amt, cur, ud.charge_at, ud.period_start, details, pos))
            if adj:
                details = {"path": ud.path, "scale": ud.scale, "level": level, "reason": ADJ_REASON}
                charges.append((ag_id, "scale_adjustment", key, adj, cur, ud.charge_at, ud.period_start, details, pos))
            add_row((key, level, ag_id, ev.at, ud.path, ud.service_id, ud.billing_rule, ud.unit_price, ud.quantity,
                     ud.amount, ud.currency, ud.pack_id, ud.pack_units or None, now))  # fmt: skip

    def _write_state(self, runs: dict[int, AgreementRun]) -> None:
        """Write the counters and pack usage that moved."""
        cnt, pck = SCALE_COUNTERS, PACK_USAGE
        for ag_id, run in runs.items():
            if run.plan is None:
                continue
            upd, new = [], []
            for key, qty in run.state.counters.items():
                if run.counters_before.get(key) == qty:
                    continue
                if key in run.counter_ids:
                    upd.append({"b_id": run.counter_ids[key], "b_q": qty})
                else:
                    new.append(
                        {
                            "agreement_id": ag_id,
                            "node_key": key[0],
                            "group_value": key[1],
                            "period_start": key[2],
                            "quantity": qty,
                        }
                    )
            if upd:
                self.s.execute(
                    sa.update(cnt).where(cnt.c.id == sa.bindparam("b_id")).values(quantity=sa.bindparam("b_q")), upd
                )
            if new:
                self.s.execute(sa.insert(cnt), new)
            pu, pn = [], []
            for pid, used in run.state.pack_used.items():
                if run.packs_before.get(pid) == used:
                    continue
                if pid in run.packs_stored:
                    pu.append({"b_id": pid, "b_u": used})
                else:
                    pn.append({"enabled_service_id": pid, "used": used})
            if pu:
                self.s.execute(
                    sa.update(pck)
                    .where(pck.c.enabled_service_id == sa.bindparam("b_id"))
                    .values(used=sa.bindparam("b_u")),
                    pu,
                )
            if pn:
                self.s.execute(sa.insert(pck), pn)

    def purchase_packs(self, ag_ids: Sequence[int]) -> None:
        """Write the purchase charge of every charged pack whose effective-from has come (ENS-06)."""
        packs.charge_due(self.s, now=self.now, agreement_ids=ag_ids)


def _refused_above(d: en.Decision, reason: str, note: str) -> en.Decision:
    """The refusal of an event the engine rated (``d``): its price kept, its state rejected
    (the client's credit, or a level above that did not accept it)."""
    return en.Decision(
        en.REJECTED,
        reason=reason,
        note=note,
        path=d.path,
        source=d.source,
        service_id=d.service_id,
        unit_price=d.unit_price,
        quantity=d.quantity,
        currency=d.currency,
        billing_rule=d.billing_rule,
    )


def _over_credit(d: en.Decision, cost: int, currency: str) -> en.Decision:
    """The rejection of a rated event whose cost passes the credit limit."""
    return _refused_above(d, "insufficient_credit", f"charge {format_micros(cost)} {currency} passes the credit limit")


# ------------------------------------------------------------- results


def result_values(d: en.Decision, now: datetime) -> tuple:
    """The rating columns of a decision, in ``RESULT_COLUMNS`` order."""
    return (
        d.state,
        d.reason,
        (d.note or "")[:300] or None,
        (d.path or "")[:300] or None,
        d.service_id,
        d.billing_rule,
        d.unit_price,
        d.quantity,
        d.amount if d.state == en.RATED else None,
        d.currency,
        d.pack_id,
        d.pack_units or None,
        now,
    )


def result(d: en.Decision, now: datetime) -> dict[str, Any]:
    """``result_values`` by column name."""
    return dict(zip(RESULT_COLUMNS, result_values(d, now), strict=True))


_DECIDED = attrgetter(
    "state", "reason", "note", "path", "service_id", "billing_rule", "unit_price", "quantity", "amount", "currency",
    "pack_id", "pack_units",
)  # fmt: skip


def _short(values: list[str | None]) -> list[str | None]:
    """``(v or "")[:300] or None`` per value."""
    distinct = set(values)
    if "" in distinct or any(len(v) > 300 for v in distinct if v is not None):
        return [(v or "")[:300] or None for v in values]
    return values


def result_columns(decisions: list[en.Decision | None], now: datetime) -> dict[str, list[Any]]:
    """``RESULT_COLUMNS`` → one list each: ``result_values`` per decision (UNRATED for None)."""
    m = len(decisions)
    if not m:
        return {c: [] for c in RESULT_COLUMNS}
    if type(None) in set(map(type, decisions)):
        rows = [UNRATED if d is None else result_values(d, now) for d in decisions]
        return {c: list(v) for c, v in zip(RESULT_COLUMNS, zip(*rows, strict=True), strict=True)}
    state, reason, note, path, svc, rule, price, qty, amount, cur, pack, units = map(
        list, zip(*map(_DECIDED, decisions), strict=True)
    )
    if set(state) != {en.RATED}:
        amount = [a if st == en.RATED else None for st, a in zip(state, amount, strict=True)]
    if 0 in set(units):
        units = [u or None for u in units]
    values = (state, reason, _short(note), _short(path), svc, rule, price, qty, amount, cur, pack, units, [now] * m)
    return dict(zip(RESULT_COLUMNS, values, strict=True))


# ------------------------------------------------------------- ledger


def post_charges(session: Session, charges: list[tuple], *, times: bulk.TimeText | None = None) -> None:
    """Like ``ledger.post`` without the credit check (the rater checked it under
    the lock), through the bulk writer; ``charges`` are tuples as
    ``Rater.decide`` gives them. Moves each agreement's running balance."""
    if not charges:
        return
    cols = list(zip(*charges, strict=True))
    ags, amounts = cols[0], cols[3]
    by_ag: dict[int, int] = defaultdict(int)
    if len(set(ags)) == 1:
        by_ag[ags[0]] = sum(amounts)
    else:
        for a, amount in zip(ags, amounts, strict=True):
            by_ag[a] += amount
    ledger.ensure_rows(session, by_ag)
    for ag_id, amount in sorted(by_ag.items()):
        session.execute(
            sa.update(ledger.BAL).where(ledger.BAL.c.agreement_id == ag_id).values(spent=ledger.BAL.c.spent + amount)
        )
    columns = dict(zip(CHARGE_COLUMNS, cols, strict=False))
    columns["created_at"] = [clock.now()] * len(charges)
    bulk.writer(session).insert(ledger.CHG, columns, times=times)
