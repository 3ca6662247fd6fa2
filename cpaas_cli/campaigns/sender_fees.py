"""Sender ID fees: a one-time setup fee and periodic usage fee rules (SID-09/10, FEE-03).

Both are fee rules (``recurring``) on the sender ID's agreement, subject
``sender_id`` / the sender ID's id, priced from the agreement's enabled
pay-as-you-go tree (resources ``sender_id_setup_fee`` and
``sender_id_usage_fee``) at each charge attempt: the operator never types an
amount. A rule can only be created when the tree already prices it (the
service must be configured first); the fee run charges it (`cpaas fee-rules run`,
or the scheduler of `cpaas serve`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.recurring import FeeRule, FeeRun
from cpaas_cli.recurring import service as fees

SETUP = "sender_id_setup_fee"
USAGE = "sender_id_usage_fee"
KIND = "sender_id"


def _mno(mno: str | None) -> str | None:
    if mno is None:
        return None
    from cpaas_cli.catalog.vocab import ValueError_, normalise_value

    try:
        return normalise_value("mno", mno)
    except ValueError_ as exc:
        raise InvalidInput(str(Problem("mno", str(exc))), problems=[Problem("mno", str(exc))]) from exc


def _check_rate(session: Session, sid: SenderId, rule: FeeRule, at: datetime) -> None:
    ag = session.get(Agreement, sid.agreement_id)
    assert ag is not None
    subj = fees.subject(session, KIND, str(sid.id))
    _price, why = fees.tree_price(
        session, ag, resource=rule.resource or "", subject=subj, mno=rule.mno, every=rule.every, at=at
    )
    if why is not None:
        p = Problem("rate", f"{why} on agreement {ag.code} at {at.isoformat()}: configure the service first")
        raise InvalidInput(str(p), problems=[p])


def _rules(session: Session, sid: SenderId, kind: str) -> list[FeeRule]:
    q = select(FeeRule).where(FeeRule.subject_kind == KIND, FeeRule.subject_ref == str(sid.id), FeeRule.kind == kind)
    return list(session.exec(q.order_by(col(FeeRule.id))))


def add_usage_rule(
    session: Session,
    sid: SenderId,
    *,
    every: str = "month",
    start_day: int = 1,
    days_before: int = 0,
    retry_hours: int = 1,
    max_retries: int = 0,
    mno: str | None = None,
    effective_from: datetime | None = None,
    effective_till: datetime | None = None,
    tz: str = "UTC",
) -> FeeRule:
    """A periodic usage fee rule; refused (nothing written) when the tree has no rate for it."""
    if sid.status == "disabled":
        p = Problem("sender", f"sender ID {sid.sender!r} is disabled")
        raise InvalidInput(str(p), problems=[p])
    start = effective_from or clock.now()
    rule = fees.add_rule(
        session,
        agreement_ref=str(sid.agreement_id),
        subject_kind=KIND,
        subject_ref=str(sid.id),
        kind="usage",
        amount=None,
        resource=USAGE,
        mno=_mno(mno),
        effective_from=start,
        effective_till=effective_till,
        every=every,
        start_day=start_day,
        days_before=days_before,
        retry_hours=retry_hours,
        max_retries=max_retries,
        tz=tz,
    )
    _check_rate(session, sid, rule, start)
    return rule


def setup_fee(
    session: Session,
    sid: SenderId,
    *,
    mno: str | None = None,
    at: datetime | None = None,
    retry_hours: int = 1,
    max_retries: int = 0,
) -> dict[str, Any]:
    """Charge the one-time setup fee now (one rule per sender ID: a second call charges nothing)."""
    existing = _rules(session, sid, "setup")
    if existing:
        rule, created = existing[0], False
        res = fees.run(session, as_of=clock.now(), rule_ids=[rule.id])  # a retry due now, if any
    else:
        start = at or clock.now()
        rule = fees.add_rule(
            session,
            agreement_ref=str(sid.agreement_id),
            subject_kind=KIND,
            subject_ref=str(sid.id),
            kind="setup",
            amount=None,
            resource=SETUP,
            mno=_mno(mno),
            effective_from=start,
            retry_hours=retry_hours,
            max_retries=max_retries,
        )
        _check_rate(session, sid, rule, start)
        created = True
        res = fees.run(session, as_of=clock.now(), rule_ids=[rule.id])  # a future --at waits for the fee run
    run = session.exec(select(FeeRun).where(FeeRun.rule_id == rule.id)).first()
    return {
        "rule": fees.rule_dict(rule),
        "created": created,
        "charged_now": res["charged"],
        "status": run.status if run else "pending",
        "attempts": res["attempts"],
    }


def end_usage_rules(session: Session, sid: SenderId, *, at: datetime | None = None) -> list[FeeRule]:
    """End the sender ID's open usage fee rules (when it is disabled)."""
    at = at or clock.now()
    ended = []
    for r in _rules(session, sid, "usage"):
        if r.effective_till is None or r.effective_till > at:
            ended.append(fees.end_rule(session, r.id, at=at))
    return ended


def list_rules(session: Session, sid: SenderId) -> list[dict[str, Any]]:
    return fees.list_rules(session, subject_kind=KIND, subject_ref=str(sid.id))
