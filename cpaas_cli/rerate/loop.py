"""The re-rate loop: each unit of a task re-rated with the rates in force now.

Units (``units.py``, ``scope.py``): a task is processed as units of
(agreement, billing period) that overlap [from, till) and hold at least one
EDR of the window (and of the chosen channels). A unit re-rates **every**
rated or rejected EDR of its agreement in that period, in event order, from
empty counters: tiers and back-to-first thresholds come out as if the new
rates had always applied, and EDRs of the same period outside the window
(or of other channels) may change cost too. They are part of the report and
the counters.

Money. Per EDR, old = Σ of its ledger rows, new = the engine's charge (event
amount + back-to-first adjustment, 0 when a pack paid). When they differ one
``rerate`` charge row of new − old is appended (both amounts in details,
``revision`` = task id) dated at the new charge time (else the old one), so
the ledger stays append-only and Σ per EDR equals its new cost. The balance
moves by the delta only, without a credit check: a rerate records what is
owed. Pack usage is recomputed: stored usage − the unit's old consumption +
its new consumption. Counters of the unit's period are replaced by the
recomputed ones.

Not re-rated: unrated EDRs (``edr rate`` handles them) and EDRs refused for
insufficient credit (they were never sent as chargeable).

Reseller chains (RAT-10). A client unit re-rates its agreement's EDRs only;
the reseller levels' CDRs are re-rated by the reselling agreements' units
(``levels.py``) and counted apart (RR-04). One exception: an EDR the unit
turns rated that has no reseller CDR gets the levels above it charged in the
same transaction, or is refused with the level named (``created.py``).

Speed. The EDRs of a unit are read, rated and written through the raw DBAPI
cursor (``rows.py``) in chunks of ``CHUNK``: tuples in, the pure engine, only
changed EDRs written back (a narrow UPDATE when only the price columns moved)
and one executemany of ledger rows per chunk; see benchmarks/rerate.py.

Invoices. After each unit the agreement's draft invoices claim the new rows
and are rebuilt; confirmed invoices never change, their period's rows are
claimed by the next invoice as correction lines.

Restartability. Each unit is one transaction that ends with its
``rerate_unit`` marker row; a rerun skips units with a marker, and the task
counters are the sum of the markers, so a killed run followed by a rerun
ends with the totals of a clean run. Running a window again with unchanged
rates updates no EDR.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit import service as audit
from cpaas_cli.billing import ledger
from cpaas_cli.billing.periods import Period
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk, locking
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import PackUsage
from cpaas_cli.models.rerate import CDR_COUNTERS, EDR_COUNTERS, RerateTask, RerateUnit
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en
from cpaas_cli.rerate import created, levels, scope, state
from cpaas_cli.rerate.rows import (
    CHARGE_COLUMNS,
    DESC,
    EDR,
    ELIGIBLE,
    MONEY,
    R_AT,
    R_DESC,
    R_ID,
    Raw,
    attributes,
    unpacked,
)
from cpaas_cli.timeutil import iso

PCK = PackUsage.__table__
UNIT = RerateUnit.__table__
CHUNK = 50_000  # EDRs read (and written) per round trip; a unit is one transaction
MAX_LISTED = 200  # EDRs with a changed rating state listed in a report


class Report:
    def __init__(self) -> None:
        self.by_ag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.by_dest: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.state_changes: list[dict[str, Any]] = []
        self.state_changed = 0
        # Periods of reselling agreements with EDRs of their own: their CDRs were not re-rated.
        self.skipped_levels: list[dict[str, str]] = []
        # Level agreements the current unit charged created reseller CDRs on (``created.py``).
        self.charged_above: set[int] = set()

    def merge(self, ag: str, dest: dict[tuple[str, str], list[int]]) -> None:
        """Add one unit's figures per (country, network): [old, new, EDRs, cost changed]."""
        tot = self.by_ag[ag]
        for (country, network), v in dest.items():
            acc = self.by_dest[(ag, country, network)]
            for i in range(4):
                acc[i] += v[i]
                tot[i] += v[i]

    def state_changes_of(self, session: Session, count: int, changes: list[tuple[int, Any, Any, tuple]]) -> None:
        """Add a unit's EDRs whose rating state changed: ``count`` in all, the first listed."""
        self.state_changed += count
        room = MAX_LISTED - len(self.state_changes)
        if room <= 0 or not changes:
            return
        changes = changes[:room]
        ids = [c[0] for c in changes]
        ext = dict(session.execute(sa.select(EDR.c.id, EDR.c.external_id).where(EDR.c.id.in_(ids))).all())
        for eid, old_state, old_reason, res in changes:
            self.state_changes.append(
                {
                    "edr": eid,
                    "external_id": ext.get(eid),
                    "from": old_state + (f"/{old_reason}" if old_reason else ""),
                    "to": res[0] + (f"/{res[1]}" if res[1] else ""),
                }
            )

    def as_dict(self) -> dict[str, Any]:
        def fig(v: list[int]) -> dict[str, Any]:
            return {
                "old_cost": format_micros(v[0]),
                "new_cost": format_micros(v[1]),
                "delta": format_micros(v[1] - v[0]),
                "edrs": v[2],
                "cost_changed": v[3],
            }

        return {
            "agreements": [{"agreement": a, **fig(v)} for a, v in sorted(self.by_ag.items())],
            "destinations": [
                {"agreement": a, "country": c or None, "network": n or None, **fig(v)}
                for (a, c, n), v in sorted(self.by_dest.items())
            ],
            "state_changed": self.state_changed,
            "state_changes": self.state_changes,
            **({"levels_not_rerated": self.skipped_levels} if self.skipped_levels else {}),
        }


class _Unit:
    """One (agreement, period) being re-rated: state, figures and pending writes."""

    def __init__(self, raw: Raw, task: RerateTask, ag: Agreement, p: Period, plan: en.Plan | None, *, write: bool):
        self.raw, self.task_id, self.ag, self.p, self.plan, self.write = raw, task.id, ag, p, plan, write
        self.now = clock.now()
        self.st = en.State()
        self.skip: dict[int, tuple] = {}
        self.figures = dict.fromkeys(("processed", "updated", "unchanged", "failed", "old_cost", "new_cost"), 0)
        self.dest: dict[tuple[str, str], list[int]] = {}
        self.state_changed = 0
        self.changes: list[tuple[int, Any, Any, tuple]] = []  # (id, old state, old reason, result), the first few
        self.attrs: dict[str, tuple[dict[str, Any], str | None, list[int]]] = {}
        self.descs: dict[str, tuple[Any, ...]] = {}
        # pending writes of the current chunk
        self.money: list[tuple] = []  # EDR updates of the price columns only (the common case)
        self.full: list[tuple] = []  # EDR updates of every result column
        self.charges: list[tuple] = []
        self.no_time: list[int] = []  # charges (positions) that take the EDR's last charge time
        self.delta = 0
        self.made: created.Creator | None = None  # the reseller CDRs of EDRs turned rated

    def rate_rows(self, rows: list[tuple]) -> None:
        """Re-rate rows (in event order) against the unit's state; queue the writes.

        The hot loop of a rerate: the engine event is built as in
        charging.events.event_of and the result tuple as in charging.rater.result
        (columns ``DESC`` and ``MONEY``), without per-row dicts."""
        plan, st, skip, attrs, descs = self.plan, self.st, self.skip, self.attrs, self.descs
        rate, apply_, Event, parse = en.rate, en.apply, en.Event, self.raw.parse
        RATED, REJECTED, PENDING = en.RATED, en.REJECTED, en.PENDING
        blank_desc, blank_money = ("unrated",) + (None,) * (len(DESC) - 1), (None,) * len(MONEY)
        no_plan = en.Decision(REJECTED, reason="no_agreement", note="the agreement has no plan")
        dest, changes, charges, no_time, made = self.dest, self.changes, self.charges, self.no_time, self.made
        money, full = self.money, self.full
        write, p_start, ag_id, currency, task_id = self.write, self.p.start, self.ag.id, self.ag.currency, self.task_id
        param = self.raw.param
        rated_at = created_at = param(self.now)
        periods: dict[datetime, Any] = {}
        processed = updated = unchanged = failed = old_sum = new_sum = delta = state_changed = 0
        for r in rows:
            eid = r[0]
            if eid in skip:
                continue
            a = attrs.get(r[5])
            if a is None:
                if len(attrs) > 100_000:
                    attrs.clear()
                q, sender, key = attributes(r[5])
                acc = dest.get(key)
                if acc is None:
                    acc = dest[key] = [0, 0, 0, 0]
                a = attrs[r[5]] = (q, sender, acc)
            at_raw, sub_raw, dlv_raw = r[1], r[2], r[3]
            ev_at = parse(at_raw)
            sub = ev_at if sub_raw == at_raw else None if sub_raw is None else parse(sub_raw)
            dlv = None if dlv_raw is None else parse(dlv_raw)
            if plan is None:
                d = no_plan
            else:
                ev = Event(eid, ev_at, a[0], r[6] or 1, a[1], sub, dlv, r[4] == 1)
                d = rate(ev, plan, st)
                if made is not None and d.state == RATED:
                    d = made.decide(ev, d)  # the levels above an EDR turned rated (created.py)
            state = d.state
            if state == PENDING:
                res, money_res, new = blank_desc, blank_money, 0
            else:
                apply_(st, d)
                res = (
                    state,
                    d.reason,
                    (d.note or "")[:300] or None,
                    (d.path or "")[:300] or None,
                    d.service_id,
                    d.billing_rule,
                    d.currency,
                    d.pack_id,
                    d.pack_units or None,
                )
                money_res = (d.unit_price, d.quantity, d.amount if state == RATED else None)
                new = d.amount + d.adjustment if state == RATED and d.pack_id is None else 0
            old = r[7]
            stored = descs.get(r[8])
            if stored is None:
                if len(descs) > 100_000:
                    descs.clear()
                stored = descs[r[8]] = unpacked(r[8])
            same_desc = stored == res
            processed += 1
            old_sum += old
            new_sum += new
            acc = a[2]
            acc[0] += old
            acc[1] += new
            acc[2] += 1
            if new != old:
                acc[3] += 1
                changed = True
            else:
                changed = not same_desc or r[9:] != money_res
            if stored[0] != res[0] or stored[1] != res[1]:
                state_changed += 1
                if len(changes) < MAX_LISTED:
                    changes.append((eid, stored[0], stored[1], res))
            if state == REJECTED:
                failed += 1
            elif changed:
                updated += 1
            else:
                unchanged += 1
            if not changed or not write:
                continue
            if same_desc:
                money.append((*money_res, rated_at, eid))  # only the price columns changed
            else:
                full.append((*res, *money_res, rated_at, eid))
            if new != old:
                ca = d.charge_at
                if ca is None:
                    at = None
                    no_time.append(len(charges))
                elif ca is sub:
                    at = sub_raw
                elif ca is dlv:
                    at = dlv_raw
                else:
                    at = param(ca)
                ps = d.period_start or p_start
                ps_param = periods.get(ps)
                if ps_param is None:
                    ps_param = periods[ps] = param(ps)
                # json.dumps of {"task": …, "old": …, "new": …} (integers), written directly
                details = f'{{"task": {task_id}, "old": {old}, "new": {new}}}'
                charges.append((ag_id, "rerate", eid, task_id, new - old, currency, at, ps_param, details, created_at))
                delta += new - old
        f = self.figures
        f["processed"] += processed
        f["updated"] += updated
        f["unchanged"] += unchanged
        f["failed"] += failed
        f["old_cost"] += old_sum
        f["new_cost"] += new_sum
        self.delta += delta
        self.state_changed += state_changed

    def take(self, rows: list[tuple]) -> _Batch:
        """The writes queued by rate_rows (for ``rows``); the unit starts a new batch."""
        b = _Batch(rows, self.money, self.full, self.charges, self.no_time, self.delta)
        self.money, self.full, self.charges, self.no_time, self.delta = [], [], [], [], 0
        return b

    def write_batch(self, b: _Batch) -> None:
        """Write a batch: EDR updates, ledger rows, the balance move (no commit)."""
        raw = self.raw
        # Narrow UPDATEs cost SQLite a third of full ones (and leave the rating_state index alone).
        raw.update_prices(b.money)
        cols = DESC + MONEY
        raw.many(f"UPDATE edr SET {', '.join(f'{c} = ?' for c in cols)}, rated_at = ? WHERE id = ?", b.full)
        if b.no_time:
            by_id = {r[0]: r for r in b.rows}
            ids = sorted({b.charges[i][2] for i in b.no_time})
            last: dict[int, Any] = {}
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                sql = (
                    f"SELECT edr_id, MAX(at) FROM charge WHERE edr_id IN ({', '.join('?' * len(part))}) GROUP BY edr_id"
                )
                last.update(raw.fetch(sql, part))
            for i in b.no_time:
                c = b.charges[i]
                at = last.get(c[2]) or by_id[c[2]][R_AT]
                b.charges[i] = (*c[:6], at, *c[7:])
        raw.insert("charge", CHARGE_COLUMNS, b.charges)
        if b.delta:
            raw.many("UPDATE agreement_balance SET spent = spent + ? WHERE agreement_id = ?", [(b.delta, self.ag.id)])


@dataclass(slots=True)
class _Batch:
    rows: list[tuple]
    money: list[tuple]
    full: list[tuple]
    charges: list[tuple]
    no_time: list[int]
    delta: int


def rerate_unit(
    session: Session, task: RerateTask, ag: Agreement, p: Period, plans: Plans, rep: Report, *, write: bool
) -> dict[str, int]:
    """Re-rate one (agreement, period); writes (when ``write``) but does not commit.

    The unit takes the eligible EDRs it owns (see ``units.owner``): those
    prepared in the period, less the ones charged in a later period, plus
    those prepared up to ``STRADDLE_LAG`` earlier and charged in this one
    (they come first: event order)."""
    if write:
        ledger.lock(session, [ag.id])
        ledger.ensure_rows(session, [ag.id])
    raw = Raw(session)
    plan = plans.get(ag.id)
    u = _Unit(raw, task, ag, p, plan, write=write)
    made = u.made = created.Creator.of(session, task.id, ag, p, plans, now=u.now, write=write) if plan else None
    incoming: list[tuple] = []
    if plan is not None:
        incoming, u.skip = scope.straddlers(raw, plan, ag.id, p)
    pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
    whole = [EDR.c.agreement_id == ag.id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
    if pack_ids:
        stored = dict(session.execute(sa.select(PCK.c.enabled_service_id, PCK.c.used).where(
            PCK.c.enabled_service_id.in_(pack_ids))).all())  # fmt: skip
        mine = defaultdict(int)
        for pid, used in session.execute(
            sa.select(EDR.c.pack_enabled_id, sa.func.sum(EDR.c.pack_units))
            .where(*whole, EDR.c.rating_state == "rated", EDR.c.pack_enabled_id.in_(pack_ids))
            .group_by(EDR.c.pack_enabled_id)
        ):
            mine[pid] += int(used or 0)
        # The unit's old consumption: its own EDRs, less those a later unit owns, plus the incoming.
        for r, sign in [(r, -1) for r in u.skip.values()] + [(r, 1) for r in incoming]:
            desc = dict(zip(DESC, unpacked(r[R_DESC]), strict=True))
            pid, used = desc["pack_enabled_id"], desc["pack_units"]
            if desc["rating_state"] == "rated" and pid in pack_ids:
                mine[pid] += sign * int(used or 0)
        u.st.pack_used = {i: int(stored.get(i) or 0) - mine[i] for i in pack_ids}
    u.st.counters.update(state.later_counters(session, ag.id, p))
    if incoming:
        if made is not None:
            made.prepare(incoming, raw.parse)
        u.rate_rows(incoming)
        if write:
            u.write_batch(u.take(incoming))
    lo, hi = raw.param(p.start), raw.param(p.end)
    last_at, last_id = lo, 0
    # PostgreSQL: a chunk's writes run in a second thread, on the same connection
    # and transaction, while this thread rates the next chunk (read before the
    # writes start: the chunks are disjoint); the server's work and the
    # client's overlap. SQLite: in turn (a writer thread made it slower there:
    # sqlite3 takes the GIL back for every value it binds).
    overlap = write and raw.pg
    batch: _Batch | None = None
    with bulk.gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="rerate-write") as pool:
        while True:
            rows = raw.rows(
                " AND e.event_at >= ? AND e.event_at < ? AND (e.event_at > ? OR e.id > ?)"
                f" ORDER BY e.event_at, e.id LIMIT {CHUNK}",
                (ag.id, last_at, hi, last_at, last_id),
            )
            if rows and made is not None:
                made.prepare(rows, raw.parse)  # its reads, before this round's writes start
            writing = None
            if batch is not None:
                if overlap:
                    writing = pool.submit(u.write_batch, batch)
                else:
                    u.write_batch(batch)
                batch = None
            if not rows:
                if writing is not None:
                    writing.result()
                break
            last_at, last_id = rows[-1][R_AT], rows[-1][R_ID]
            try:
                u.rate_rows(rows)
            finally:
                if writing is not None:
                    writing.result()  # its error, if any, is the unit's
            if write:
                batch = u.take(rows)
    rep.state_changes_of(session, u.state_changed, u.changes)
    rep.merge(ag.code, u.dest)
    if write and plan is not None:
        state.write_period_state(session, ag.id, p, u.st, pack_ids)
    if made is not None:
        rep.charged_above = made.finish()
        u.figures["cdr_processed"] = u.figures["cdr_created"] = made.created
    return u.figures


class Run:
    """One run of a task over its units (``tasks.run`` keeps the task's state)."""

    def __init__(self, session: Session, task: RerateTask, *, dry_run: bool):
        self.session, self.task, self.dry_run = session, task, dry_run
        self.plans = Plans(session)
        self.rep = Report()
        self.done = set(
            session.execute(sa.select(UNIT.c.agreement_id, UNIT.c.period_start).where(UNIT.c.task_id == task.id))
        )
        self.totals: dict[str, int] = defaultdict(int)
        self.units = 0

    def run(self, after_unit: Callable[[int], None] | None = None) -> None:
        """Re-rate every unit not done yet; commits after each (not with ``dry_run``)."""
        from cpaas_cli.invoices import service as invoices

        session, task, dry_run = self.session, self.task, self.dry_run
        todo = [(ag_id, p, False) for ag_id, p, _n in scope.units(session, task, self.plans)]
        # The reseller levels' units (RAT-10): the CDRs of reselling agreements.
        todo += [(ag_id, p, True) for ag_id, p, _n in levels.units(session, task)]
        self.units = len(todo)
        for n, (ag_id, p, level) in enumerate(todo, 1):
            if not dry_run and (ag_id, p.start) in self.done:
                continue
            ag = session.get(Agreement, ag_id)
            if level and levels.has_own_edrs(session, ag_id, p):
                self.rep.skipped_levels.append({"agreement": ag.code, "period_start": iso(p.start)})
                continue
            if not dry_run:  # the invoicing lock before the money lock, in the order `invoice run` takes them
                locking.serialise(session, invoices.INVOICING)
            if level:
                dest: dict[tuple[str, str], list[int]] = {}
                got = levels.rerate_level_unit(session, task, ag, p, self.plans, dest, write=not dry_run)
                self.rep.merge(ag.code, dest)
                # a level unit's figures are reseller CDRs' (RR-04): the CDR counters, not the EDRs'
                got = {(f"cdr_{k}" if k in EDR_COUNTERS else k): v for k, v in got.items()}
            else:
                got = rerate_unit(session, task, ag, p, self.plans, self.rep, write=not dry_run)
            for k, v in got.items():
                self.totals[k] += v
            if dry_run:
                continue
            session.add(RerateUnit(task_id=task.id, agreement_id=ag_id, period_start=p.start, **got))
            invoices.refresh_drafts(session, ag_id)
            for above in sorted(self.rep.charged_above):
                invoices.refresh_drafts(session, above)
            self.rep.charged_above = set()
            audit.record(
                session,
                action="rerate",
                object_type="rerate_task",
                object_id=task.id,
                new={"agreement": ag.code, "period_start": iso(p.start), **got},
            )
            session.commit()
            if after_unit is not None:
                after_unit(n)

    def report(self) -> dict[str, Any]:
        report = {**self.rep.as_dict(), "units": self.units, "dry_run": self.dry_run}
        if self.dry_run:
            report.update({k: self.totals[k] for k in EDR_COUNTERS + CDR_COUNTERS})
        return report
