"""Rerate: re-rate stored EDRs of a time window with the rates in force now.

Units. The window is widened to whole billing periods: a task is processed
as units of (agreement, billing period) that overlap [from, till) and hold at
least one EDR of the window (and of the chosen channels). Scale counters
are per period (AMB-11), so a unit re-rates **every** rated or rejected EDR
of its agreement in that period, in event order, from empty counters: tiers
and back-to-first thresholds come out as if the new rates had always
applied, and EDRs of the same period outside the window (or of other
channels) may change cost too. They are part of the report and the counters.

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
insufficient credit (they were never sent as chargeable). An EDR prepared in
one period but charged in the next (straddling the boundary) is re-rated in
the unit of its event time against the next period's stored counter, which
is not rewritten by that unit (a known approximation at period edges).

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

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.agreements.models import Agreement
from cpaas_cli.audit import service as audit
from cpaas_cli.billing import ledger
from cpaas_cli.billing.models import Charge, PackUsage, ScaleCounter
from cpaas_cli.billing.periods import Period, VersionTerms, period_containing, periods
from cpaas_cli.edr import service as edrs
from cpaas_cli.edr.models import Edr
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en
from cpaas_cli.refs import by_ref
from cpaas_cli.rerate.models import RerateTask, RerateUnit
from cpaas_cli.tenancy.models import Company
from cpaas_cli.timeutil import iso

EDR = Edr.__table__
CHG = Charge.__table__
CNT = ScaleCounter.__table__
PCK = PackUsage.__table__
UNIT = RerateUnit.__table__
CHUNK = 20_000
MAX_LISTED = 200  # EDRs with a changed rating state listed in a report
COMPARE = tuple(k for k in edrs.RESULT_COLUMNS if k != "rated_at")
ELIGIBLE = sa.or_(
    EDR.c.rating_state == "rated",
    sa.and_(EDR.c.rating_state == "rejected", sa.func.coalesce(EDR.c.rating_reason, "") != "insufficient_credit"),
)
_OLD = sa.select(sa.func.coalesce(sa.func.sum(CHG.c.amount), 0)).where(CHG.c.edr_id == EDR.c.id).scalar_subquery()
_OLD_AT = sa.select(sa.func.max(CHG.c.at)).where(CHG.c.edr_id == EDR.c.id).scalar_subquery()


# ------------------------------------------------------------------ tasks


def _agreement_ids(session: Session, task: RerateTask) -> list[int]:
    if task.agreement_ids:
        return list(task.agreement_ids)
    q = sa.select(Agreement.id).where(Agreement.company_id == task.company_id).order_by(Agreement.id)
    return list(session.execute(q).scalars())


def _window_where(task: RerateTask, ag_id: int, lo: datetime, hi: datetime) -> list[Any]:
    where = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= lo, EDR.c.event_at < hi, ELIGIBLE]
    if task.channels:
        where.append(EDR.c.channel.in_(task.channels))
    return where


def units(session: Session, task: RerateTask) -> list[tuple[int, Period, int]]:
    """(agreement id, whole billing period, EDRs the unit re-rates) in order."""
    out = []
    for ag_id in _agreement_ids(session, task):
        ag = session.get(Agreement, ag_id)
        terms = [VersionTerms.of(v) for v in agreements.versions(session, ag)]
        if not terms:
            continue
        seen: set[datetime] = set()
        for clipped in periods(terms, task.time_from, task.time_till):
            p = period_containing(terms, clipped.start)
            if p is None or p.start in seen:
                continue
            seen.add(p.start)
            lo, hi = max(p.start, task.time_from), min(p.end, task.time_till)
            hit = session.execute(sa.select(EDR.c.id).where(*_window_where(task, ag_id, lo, hi)).limit(1)).first()
            if hit is None:
                continue
            whole = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
            n = session.execute(sa.select(sa.func.count()).select_from(EDR).where(*whole)).scalar() or 0
            out.append((ag_id, p, int(n)))
    return out


def create(
    session: Session,
    *,
    time_from: datetime,
    time_till: datetime,
    company: str,
    agreement_refs: Sequence[str] = (),
    channels: Sequence[str] = (),
    scheduled_for: datetime | None = None,
    draft: bool = False,
    recalculate_sessions: bool = False,
) -> RerateTask:
    """Record a task with its estimated EDR count. Without ``scheduled_for``
    it is due at once (``serve`` picks it up) unless kept as a draft."""
    if time_till <= time_from:
        raise InvalidInput("--till must be later than --from")
    co = by_ref(session, Company, company, what="company")
    ag_ids = []
    for ref in agreement_refs:
        ag = agreements.get(session, ref)
        if ag.company_id != co.id:
            raise InvalidInput(f"agreement {ag.code} does not belong to company {co.name}")
        ag_ids.append(ag.id)
    task = RerateTask(
        status="draft" if draft else "scheduled",
        company_id=co.id,
        agreement_ids=sorted(set(ag_ids)),
        channels=sorted({c.lower() for c in channels}),
        time_from=time_from,
        time_till=time_till,
        scheduled_for=None if draft else (scheduled_for or clock.now()),
        recalculate_sessions=recalculate_sessions,
        created_by=session.info.get("actor"),
    )
    task.estimated = sum(n for _a, _p, n in units(session, task))
    session.add(task)
    session.flush()
    return task


def get(session: Session, task_id: int | str) -> RerateTask:
    t = session.get(RerateTask, int(task_id)) if str(task_id).isdigit() else None
    if t is None:
        raise NotFound(f"rerate task {task_id!r} not found")
    return t


def as_dict(session: Session, t: RerateTask) -> dict[str, Any]:
    co = session.get(Company, t.company_id)
    codes = [a.code for i in t.agreement_ids if (a := session.get(Agreement, i)) is not None]
    return {
        "id": t.id,
        "status": t.status,
        "company": co.name if co else t.company_id,
        "agreements": codes,
        "channels": list(t.channels),
        "from": iso(t.time_from),
        "till": iso(t.time_till),
        "scheduled_for": iso(t.scheduled_for),
        "recalculate_sessions": t.recalculate_sessions,
        "estimated": t.estimated,
        "processed": t.processed,
        "updated": t.updated,
        "unchanged": t.unchanged,
        "failed": t.failed,
        "created_by": t.created_by,
        "run_by": t.run_by,
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "updated_at": iso(t.updated_at),
        "error": t.error,
    }


def list_tasks(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    q = select(RerateTask).order_by(col(RerateTask.id))
    if status:
        q = q.where(RerateTask.status == status)
    return [as_dict(session, t) for t in session.exec(q)]


def cancel(session: Session, task_id: int | str) -> RerateTask:
    t = get(session, task_id)
    if t.status not in ("draft", "scheduled", "failed"):
        raise Conflict(f"a {t.status} rerate task cannot be canceled")
    t.status = "canceled"
    session.flush()
    return t


# -------------------------------------------------------------------- run


class _Report:
    def __init__(self) -> None:
        self.by_ag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.by_dest: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.state_changes: list[dict[str, Any]] = []
        self.state_changed = 0

    def add(self, ag: str, row: dict[str, Any], old: int, new: int, res: dict[str, Any]) -> None:
        changed = int(old != new)
        for acc in (self.by_ag[ag], self.by_dest[(ag, row["country"] or "", row["network"] or "")]):
            acc[0] += old
            acc[1] += new
            acc[2] += 1
            acc[3] += changed
        if (row["rating_state"], row["rating_reason"]) != (res["rating_state"], res["rating_reason"]):
            self.state_changed += 1
            if len(self.state_changes) < MAX_LISTED:
                self.state_changes.append(
                    {
                        "edr": row["id"],
                        "external_id": row["external_id"],
                        "from": row["rating_state"] + (f"/{row['rating_reason']}" if row["rating_reason"] else ""),
                        "to": res["rating_state"] + (f"/{res['rating_reason']}" if res["rating_reason"] else ""),
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
        }


def _driver_update(session: Session, rows: list[dict[str, Any]]) -> None:
    """UPDATE edr SET <result columns> WHERE id = … as one driver-level executemany."""
    if not rows:
        return
    sqlite_ = session.get_bind().dialect.name != "postgresql"
    ph = "?" if sqlite_ else "%s"
    cols = edrs.RESULT_COLUMNS
    sql = f"UPDATE edr SET {', '.join(f'{c} = {ph}' for c in cols)} WHERE id = {ph}"
    conv = edrs._sqlite_time if sqlite_ else (lambda v: v)
    data = [tuple(conv(r[c]) if c == "rated_at" else r[c] for c in cols) + (r["id"],) for r in rows]
    session.connection().exec_driver_sql(sql, data)


def _post(session: Session, ag_id: int, charges: list[dict[str, Any]]) -> None:
    if not charges:
        return
    total = sum(c["amount"] for c in charges)
    ledger.ensure_rows(session, [ag_id])
    session.execute(
        sa.update(ledger.BAL).where(ledger.BAL.c.agreement_id == ag_id).values(spent=ledger.BAL.c.spent + total)
    )
    edrs.bulk_insert(session, CHG, charges)


def _unit(
    session: Session, task: RerateTask, ag: Agreement, p: Period, plans: edrs.Plans, rep: _Report, *, write: bool
) -> dict[str, int]:
    """Re-rate one (agreement, period); writes (when ``write``) but does not commit."""
    if write:
        ledger.lock(session, [ag.id])
    plan = plans.get(ag.id)
    now = clock.now()
    pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
    st = en.State()
    whole = [EDR.c.agreement_id == ag.id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
    if pack_ids:
        stored = dict(session.execute(sa.select(PCK.c.enabled_service_id, PCK.c.used).where(
            PCK.c.enabled_service_id.in_(pack_ids))).all())  # fmt: skip
        mine = dict(
            session.execute(
                sa.select(EDR.c.pack_enabled_id, sa.func.sum(EDR.c.pack_units))
                .where(*whole, EDR.c.rating_state == "rated", EDR.c.pack_enabled_id.in_(pack_ids))
                .group_by(EDR.c.pack_enabled_id)
            ).all()
        )
        st.pack_used = {i: int(stored.get(i) or 0) - int(mine.get(i) or 0) for i in pack_ids}
    # Counters of later periods (EDRs charged after the boundary) are read, not rewritten.
    for node, grp, start, qty in session.execute(
        sa.select(CNT.c.node_key, CNT.c.group_value, CNT.c.period_start, CNT.c.quantity).where(
            CNT.c.agreement_id == ag.id, CNT.c.period_start > p.start
        )
    ):
        st.counters[(node, grp, start)] = qty
    blank = dict.fromkeys(edrs.RESULT_COLUMNS)
    blank["rating_state"] = "unrated"
    out = {"processed": 0, "updated": 0, "unchanged": 0, "failed": 0, "old_cost": 0, "new_cost": 0}
    last: tuple[datetime, int] = (datetime.min.replace(tzinfo=UTC), 0)
    while True:
        q = (
            sa.select(EDR, _OLD.label("old_money"), _OLD_AT.label("old_at"))
            .where(
                *whole,
                sa.or_(EDR.c.event_at > last[0], sa.and_(EDR.c.event_at == last[0], EDR.c.id > last[1])),
            )
            .order_by(EDR.c.event_at, EDR.c.id)
            .limit(CHUNK)
        )
        rows = [dict(m) for m in session.execute(q).mappings()]
        if not rows:
            break
        last = (rows[-1]["event_at"], rows[-1]["id"])
        upd: list[dict[str, Any]] = []
        charges: list[dict[str, Any]] = []
        for row in rows:
            old = int(row["old_money"] or 0)
            if plan is None:
                d = en.Decision(en.REJECTED, reason="no_agreement", note="the agreement has no plan")
            else:
                d = en.rate(edrs._event(row), plan, st)
            if d.state == en.PENDING:
                res, new = blank, 0
            else:
                en.apply(st, d)
                res = edrs._result(d, now)
                amt, adj = en.money_charge(d)
                new = amt + adj
            out["processed"] += 1
            out["old_cost"] += old
            out["new_cost"] += new
            rep.add(ag.code, row, old, new, res)
            changed = new != old or any(row[k] != res[k] for k in COMPARE)
            if res["rating_state"] == "rejected":
                out["failed"] += 1
            elif changed:
                out["updated"] += 1
            else:
                out["unchanged"] += 1
            if not changed or not write:
                continue
            upd.append({**res, "id": row["id"]})
            if new != old:
                charges.append(
                    {
                        "agreement_id": ag.id,
                        "kind": "rerate",
                        "edr_id": row["id"],
                        "revision": task.id,
                        "amount": new - old,
                        "currency": ag.currency,
                        "at": d.charge_at or row["old_at"] or row["event_at"],
                        "period_start": d.period_start or p.start,
                        "details": {"task": task.id, "old": old, "new": new},
                        "created_at": now,
                    }
                )
        if write:
            _driver_update(session, upd)
            _post(session, ag.id, charges)
    if write and plan is not None:
        session.execute(sa.delete(CNT).where(CNT.c.agreement_id == ag.id, CNT.c.period_start == p.start))
        new_counters = [
            {"agreement_id": ag.id, "node_key": k[0], "group_value": k[1], "period_start": k[2], "quantity": q}
            for k, q in st.counters.items()
            if k[2] == p.start and q
        ]
        if new_counters:
            session.execute(sa.insert(CNT), new_counters)
        for pid in pack_ids:
            used = st.pack_used.get(pid, 0)
            if session.execute(sa.update(PCK).where(PCK.c.enabled_service_id == pid).values(used=used)).rowcount == 0:
                session.execute(sa.insert(PCK).values(enabled_service_id=pid, used=used))
    return out


def run(
    session: Session,
    task_id: int | str,
    *,
    dry_run: bool = False,
    after_unit: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run a task now. Commits once per unit (restartable; see the module
    docstring). With ``dry_run`` nothing but the task's stored report is
    written and the status does not change. Returns the task with its report."""
    from cpaas_cli.invoices import service as invoices

    task = get(session, task_id)
    if task.status in ("completed", "canceled") and not dry_run:
        raise Conflict(f"rerate task {task.id} is {task.status}")
    if not dry_run:
        task.status = "running"
        task.started_at = clock.now()
        task.run_by = session.info.get("actor")
        task.error = None
        session.commit()
    plans = edrs.Plans(session)
    rep = _Report()
    done = set(session.execute(sa.select(UNIT.c.agreement_id, UNIT.c.period_start).where(UNIT.c.task_id == task.id)))
    totals: dict[str, int] = defaultdict(int)
    try:
        todo = units(session, task)
        for n, (ag_id, p, _est) in enumerate(todo, 1):
            if not dry_run and (ag_id, p.start) in done:
                continue
            ag = session.get(Agreement, ag_id)
            got = _unit(session, task, ag, p, plans, rep, write=not dry_run)
            for k, v in got.items():
                totals[k] += v
            if dry_run:
                continue
            session.add(RerateUnit(task_id=task.id, agreement_id=ag_id, period_start=p.start, **got))
            invoices.refresh_drafts(session, ag_id)
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
    except Exception as exc:
        session.rollback()
        task = get(session, task.id)
        if not dry_run:
            task.status = "failed"
            task.error = str(exc)[:1000]
            session.commit()
        raise
    report = {**rep.as_dict(), "units": len(todo), "dry_run": dry_run}
    if dry_run:
        report.update({k: totals[k] for k in ("processed", "updated", "unchanged", "failed")})
    else:
        sums = session.execute(
            sa.select(
                sa.func.count(),
                *(
                    sa.func.coalesce(sa.func.sum(UNIT.c[k]), 0) for k in ("processed", "updated", "unchanged", "failed")
                ),  # fmt: skip
            ).where(UNIT.c.task_id == task.id)
        ).one()
        task.processed, task.updated, task.unchanged, task.failed = (int(x) for x in sums[1:])
        task.status = "completed"
        task.finished_at = clock.now()
    task.report = json.loads(json.dumps(report))
    session.commit()
    return {**as_dict(session, task), "report": report}


def due(session: Session, *, now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    q = sa.select(RerateTask.id).where(
        RerateTask.status == "scheduled", sa.or_(RerateTask.scheduled_for.is_(None), RerateTask.scheduled_for <= now)
    )
    return list(session.execute(q.order_by(RerateTask.id)).scalars())


def run_job(engine) -> dict[str, Any]:
    """Scheduler job: run every scheduled task that is due."""
    from cpaas_cli.db.engine import session_scope

    ran = failed = 0
    with session_scope(engine, actor="scheduler", command="rerate run") as s:
        for tid in due(s):
            try:
                run(s, tid)
                ran += 1
            except Exception:  # the task row records the error
                failed += 1
    return {"ran": ran, "failed": failed}
