"""Fee rules (generic subject: a sender ID, …) and the fee run that charges them.

``run`` asks the pure scheduler (``recurring/schedule.py``) which attempts are
due, and charges each through the ledger with the credit check, in its own
savepoint: insufficient funds records a retry (or the final failure) and
moves on. ``fee_run`` has one row per (rule, period) — unique — so two runs
can never charge a period twice.

Tree-priced rules (``resource`` set, e.g. the sender ID fees) carry no amount:
each attempt resolves the price from the agreement's enabled pay-as-you-go
tree at the attempt time (levels: resource, periodicity, MNO, sender type),
through the pure lookup. When no rate is found the attempt fails with that
reason and is retried like insufficient funds (every ``retry_hours``, at most
``max_retries`` times): fixing the tree in time lets the retry charge it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.errors import InsufficientCredit, NotFound, Problem, require
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.recurring import FeeRule, FeeRun
from cpaas_cli.money import MoneyError, format_micros, to_micros
from cpaas_cli.recurring import schedule
from cpaas_cli.timeutil import TimeError, check_zone, iso


def add_rule(
    session: Session,
    *,
    agreement_ref: str,
    subject_kind: str,
    subject_ref: str,
    kind: str,
    amount: str | None,
    effective_from: datetime,
    effective_till: datetime | None = None,
    every: str | None = None,
    start_day: int = 1,
    days_before: int = 0,
    retry_hours: int = 1,
    max_retries: int = 0,
    tz: str = "UTC",
    description: str | None = None,
    resource: str | None = None,
    mno: str | None = None,
) -> FeeRule:
    """A fee rule: a fixed ``amount``, or (``resource`` set) priced from the tree
    at each attempt; then the caller checks a rate exists (``tree_price``)."""
    ag = agreements.get(session, agreement_ref)
    probs: list[Problem] = []
    micros = 0
    if resource is not None:
        if amount is not None:
            probs.append(Problem("amount", f"the amount comes from the tree ({resource}); do not give one"))
    elif amount is None:
        probs.append(Problem("amount", "is required"))
    else:
        try:
            micros = to_micros(amount)
            if micros <= 0:
                probs.append(Problem("amount", "must be more than 0"))
        except MoneyError as exc:
            probs.append(Problem("amount", str(exc)))
    try:
        check_zone(tz)
    except TimeError as exc:
        probs.append(Problem("tz", str(exc)))
    if not subject_kind.strip() or not subject_ref.strip():
        probs.append(Problem("subject", "subject kind and reference are required"))
    every = (every or "month") if kind == "usage" else None
    rule = schedule.Rule(
        kind=kind,
        effective_from=effective_from,
        effective_till=effective_till,
        every=every,
        start_day=start_day,
        days_before=days_before,
        retry_hours=retry_hours,
        max_retries=max_retries,
        tz=tz,
    )
    probs += [Problem(f, m) for f, m in schedule.problems(rule)]
    require(probs, "the fee rule")
    row = FeeRule(
        agreement_id=ag.id,
        subject_kind=subject_kind.strip(),
        subject_ref=subject_ref.strip(),
        kind=kind,
        every=every,
        start_day=start_day if kind == "usage" else 1,
        days_before=days_before if kind == "usage" else 0,
        retry_hours=retry_hours,
        max_retries=max_retries,
        amount=micros,
        resource=resource,
        mno=mno,
        tz=tz,
        effective_from=effective_from,
        effective_till=effective_till,
        description=description,
    )
    session.add(row)
    session.flush()
    return row


def end_rule(session: Session, rule_id: int, *, at: datetime | None = None) -> FeeRule:
    row = session.get(FeeRule, rule_id)
    if row is None:
        raise NotFound(f"fee rule #{rule_id} not found")
    row.effective_till = max(at or clock.now(), row.effective_from)
    session.flush()
    return row


def rule_dict(row: FeeRule, code: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "agreement": code,
        "subject_kind": row.subject_kind,
        "subject_ref": row.subject_ref,
        "kind": row.kind,
        "every": row.every,
        "start_day": row.start_day,
        "days_before": row.days_before,
        "retry_hours": row.retry_hours,
        "max_retries": row.max_retries,
        "amount": format_micros(row.amount) if row.resource is None else None,
        "priced_by": row.resource,
        "mno": row.mno,
        "tz": row.tz,
        "effective_from": iso(row.effective_from),
        "effective_till": iso(row.effective_till),
        "description": row.description,
    }


def list_rules(
    session: Session,
    *,
    agreement_ref: str | None = None,
    subject_kind: str | None = None,
    subject_ref: str | None = None,
) -> list[dict[str, Any]]:
    q = select(FeeRule, Agreement.code).join(Agreement, col(Agreement.id) == FeeRule.agreement_id)
    if agreement_ref:
        q = q.where(FeeRule.agreement_id == agreements.get(session, agreement_ref).id)
    if subject_kind:
        q = q.where(FeeRule.subject_kind == subject_kind)
    if subject_ref:
        q = q.where(FeeRule.subject_ref == subject_ref)
    return [rule_dict(r, c) for r, c in session.exec(q.order_by(col(FeeRule.id)))]


def list_runs(session: Session, *, rule_id: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
    q = select(FeeRun)
    if rule_id is not None:
        q = q.where(FeeRun.rule_id == rule_id)
    if status:
        q = q.where(FeeRun.status == status)
    return [_run_dict(r) for r in session.exec(q.order_by(col(FeeRun.rule_id), col(FeeRun.period_start)))]


def _run_dict(r: FeeRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "rule_id": r.rule_id,
        "period_start": iso(r.period_start),
        "status": r.status,
        "attempts": r.attempts,
        "last_attempt_at": iso(r.last_attempt_at),
        "next_attempt_at": iso(r.next_attempt_at),
        "charge_id": r.charge_id,
        "last_error": r.last_error,
    }


class Subject:
    """What a tree-priced (or named) fee is for: today only sender IDs."""

    def __init__(self, name: str | None, channel: str | None, sender_type: str | None):
        self.name, self.channel, self.sender_type = name, channel, sender_type


def subject(session: Session, kind: str, ref: str) -> Subject | None:
    if kind != "sender_id" or not ref.isdigit():
        return None

    sid = session.get(SenderId, int(ref))
    return Subject(sid.sender, sid.channel, sid.kind) if sid is not None else None


def tree_price(
    session: Session,
    ag: Agreement,
    *,
    resource: str,
    subject: Subject | None,
    mno: str | None,
    every: str | None,
    at: datetime,
) -> tuple[int | None, str | None]:
    """(micros, None) from the agreement's pay-as-you-go tree at ``at``, or (None, why not)."""
    from cpaas_cli.catalog import service as catalog
    from cpaas_cli.rating import lookup as lk

    if subject is None or subject.channel is None:
        return None, "the fee's subject no longer exists"
    snaps = [x for x in catalog.agreement_snapshots(session, ag, at) if x[0] == "pay-as-you-go"]
    q = lk.query(
        channel=subject.channel,
        resource=resource,
        direction=None,
        mccmnc=mno,
        sender_type=subject.sender_type,
        periodicity={"month": "monthly", "week": "weekly"}.get(every or ""),
    )
    _kind, res = catalog.resolve_for_agreement(snaps, q)
    if res.status in (lk.FREE, lk.INCLUDED):
        return 0, None
    if res.status != lk.RATE:
        return None, f"rate not found for {resource}: {res.reason or res.status}"
    if res.price_type == "scale" and res.scale and res.scale.get("steps"):
        return int(res.scale["steps"][0][1]), None  # one unit: the first step's price
    if res.price is None:
        return None, f"rate not found for {resource}: no price"
    return int(res.price), None


def _period_label(rule: FeeRule, start: datetime) -> str:
    local = start.astimezone(ZoneInfo(rule.tz)).date()
    return local.strftime("%Y-%m") if rule.every == "month" else local.isoformat()


def run(
    session: Session,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    rule_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Charge every fee attempt due by ``as_of`` (only ``rule_ids`` when given). Idempotent."""
    as_of = as_of or clock.now()
    q = select(FeeRule).where(FeeRule.effective_from <= as_of).order_by(col(FeeRule.agreement_id), col(FeeRule.id))
    if rule_ids is not None:
        q = q.where(col(FeeRule.id).in_(list(rule_ids)))
    rules = list(session.exec(q))
    runs: dict[int, dict[datetime, FeeRun]] = {}
    if rules:
        for r in session.exec(select(FeeRun).where(col(FeeRun.rule_id).in_([x.id for x in rules]))):
            runs.setdefault(r.rule_id, {})[r.period_start] = r
    out: list[dict[str, Any]] = []
    counts = {"charged": 0, "retrying": 0, "failed": 0}
    outer = session.begin_nested() if dry_run else None
    for rule in rules:
        pure = schedule.Rule.of(rule)
        have = runs.get(rule.id, {})
        states = {k: schedule.RunState(v.status, v.attempts, v.next_attempt_at) for k, v in have.items()}
        subj = subject(session, rule.subject_kind, rule.subject_ref)
        for att in schedule.due(pure, as_of, states):
            ag = session.get(Agreement, rule.agreement_id)
            assert ag is not None
            error = None
            charge_id = None
            amount: int | None = rule.amount
            if rule.resource is not None:
                amount, error = tree_price(
                    session, ag, resource=rule.resource, subject=subj, mno=rule.mno, every=rule.every, at=att.at
                )
            details = {
                "fee_rule_id": rule.id,
                "fee_kind": rule.kind,
                "subject_kind": rule.subject_kind,
                "subject_ref": rule.subject_ref,
                "period_start": iso(att.period_start),
                "attempt": att.number,
                "description": rule.description,
            }
            if subj is not None:
                details["subject_name"] = subj.name
                if rule.kind == "usage":
                    details["period"] = _period_label(rule, att.period_start)
            if amount is not None:
                charge = {
                    "agreement_id": rule.agreement_id,
                    "kind": "fee",
                    "amount": amount,
                    "currency": ag.currency,
                    "at": att.at,
                    "details": details,
                }
                sp = session.begin_nested()
                try:
                    ledger.lock(session, [rule.agreement_id])
                    ledger.post(session, [charge], check_credit=True)
                    charge_id = session.execute(
                        sa.select(sa.func.max(ledger.CHG.c.id)).where(
                            ledger.CHG.c.agreement_id == rule.agreement_id, ledger.CHG.c.kind == "fee"
                        )
                    ).scalar()
                    sp.commit()
                except InsufficientCredit as exc:
                    sp.rollback()
                    error = exc.message[:300]
            state = schedule.after(pure, att, charged=error is None)
            row = have.get(att.period_start)
            if row is None:
                row = FeeRun(rule_id=rule.id, period_start=att.period_start, status=state.status)
                session.add(row)
            row.status = state.status
            row.attempts = state.attempts
            row.last_attempt_at = att.at
            row.next_attempt_at = state.next_attempt_at
            row.charge_id = charge_id
            row.last_error = error[:300] if error else None
            row.updated_at = clock.now()
            session.flush()
            counts[state.status] += 1
            out.append(
                {
                    "rule_id": rule.id,
                    "agreement": ag.code,
                    "subject": f"{rule.subject_kind}:{rule.subject_ref}",
                    "kind": rule.kind,
                    "period_start": iso(att.period_start),
                    "at": iso(att.at),
                    "attempt": att.number,
                    "amount": format_micros(amount) if amount is not None else None,
                    "status": state.status,
                    "next_attempt_at": iso(state.next_attempt_at),
                    "error": error,
                }
            )
    if outer is not None:
        outer.rollback()
    return {"as_of": iso(as_of), "dry_run": dry_run, **counts, "attempts": out}


def run_job(engine) -> dict[str, Any]:
    """Scheduler job: charge the fees due by now."""
    from cpaas_cli.db.engine import session_scope

    with session_scope(engine, actor="scheduler", command="fee-rules run") as s:
        res = run(s)
    return {k: res[k] for k in ("charged", "retrying", "failed")}
