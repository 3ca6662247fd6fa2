"""Rerate tasks: create, list, show, cancel, and a run's state.

A task names a company (some of its agreements, or all), channels and a time
window; ``serve`` runs it when due, or ``rerate run`` now. A run re-rates the
task's units (``loop.py``; which units: ``scope.py`` and ``units.py``),
committing after each, so a killed run followed by a rerun ends with the
totals of a clean run. Its counters come in two groups (RR-04): the EDRs'
(estimated, processed, updated, unchanged, failed) and the reseller CDRs'
(``cdr_``: processed, created, updated, unchanged, failed); see
``models/rerate.py``. The task's state moves ``draft``/``scheduled`` →
``running`` → ``completed`` (or ``failed``, then it may run again), or
``canceled``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.db import locking
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.rerate import CDR_COUNTERS, EDR_COUNTERS, RerateTask, RerateUnit
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref
from cpaas_cli.rerate import loop, scope
from cpaas_cli.timeutil import iso

UNIT = RerateUnit.__table__


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
    """Record a task with its estimated EDR count (EDRs only: the reseller CDRs
    of reselling agreements have no estimate). Without ``scheduled_for``
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
    task.estimated = sum(n for _a, _p, n in scope.units(session, task))
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
        **{k: getattr(t, k) for k in CDR_COUNTERS},
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
    locking.lock_row(session, t)
    if t.status not in ("draft", "scheduled", "failed"):
        raise Conflict(f"a {t.status} rerate task cannot be canceled")
    t.status = "canceled"
    session.flush()
    return t


def run(
    session: Session,
    task_id: int | str,
    *,
    dry_run: bool = False,
    after_unit: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run a task now. Commits once per unit (restartable; see the module
    docstring). With ``dry_run`` nothing but the task's stored report is
    written and the status does not change. Returns the task with its report.

    A run holds the task's run lock until it ends (or its process dies): a
    second run of the same task meanwhile is a Conflict, not a second pass."""
    if dry_run:
        return _run(session, task_id, dry_run=True, after_unit=after_unit)
    tid = get(session, task_id).id
    with locking.run_lock(
        session.get_bind(), f"rerate-task:{tid}", busy=f"rerate task {tid} is being run by another process"
    ):
        return _run(session, tid, dry_run=False, after_unit=after_unit)


def _run(
    session: Session, task_id: int | str, *, dry_run: bool, after_unit: Callable[[int], None] | None
) -> dict[str, Any]:
    task = get(session, task_id)
    if not dry_run:
        locking.lock_row(session, task)  # the state another command (cancel, a run just ended) left
    if task.status in ("completed", "canceled") and not dry_run:
        raise Conflict(f"rerate task {task.id} is {task.status}")
    if not dry_run:
        task.status = "running"
        task.started_at = clock.now()
        task.run_by = session.info.get("actor")
        task.error = None
        session.commit()
    rerun = loop.Run(session, task, dry_run=dry_run)
    try:
        rerun.run(after_unit)
    except Exception as exc:
        session.rollback()
        task = get(session, task.id)
        if not dry_run:
            task.status = "failed"
            task.error = str(exc)[:1000]
            session.commit()
        raise
    report = rerun.report()
    if not dry_run:
        counters = EDR_COUNTERS + CDR_COUNTERS
        sums = session.execute(
            sa.select(*(sa.func.coalesce(sa.func.sum(UNIT.c[k]), 0) for k in counters)).where(UNIT.c.task_id == task.id)
        ).one()
        for k, v in zip(counters, sums, strict=True):
            setattr(task, k, int(v))
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
