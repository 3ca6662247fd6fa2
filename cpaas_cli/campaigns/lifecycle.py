"""The lifecycle of a campaign: scheduling and the state changes (seed §7.1, plus draft and pre-moderation).

``ACTIONS`` says in which states each action is allowed; a forbidden action
is a Conflict that names the state. The transitions re-read the campaign
under a row lock first (DESIGN.md, Safety rules). Starting is `materialise`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.campaigns import holds
from cpaas_cli.campaigns.materialise import StartOutcome, fail, start_now
from cpaas_cli.db import locking
from cpaas_cli.errors import Conflict, InvalidInput, Problem
from cpaas_cli.models.campaigns import CAMPAIGN_STATES, Campaign, CampaignRecipient, OutboundMessage
from cpaas_cli.timeutil import TimeError, check_business_date, iso, local_to_utc, to_utc, zone

ANY = frozenset(CAMPAIGN_STATES)
ACTIONS: dict[str, frozenset[str]] = {
    "send": frozenset({"draft"}),
    "schedule": frozenset({"draft"}),
    "start": frozenset({"scheduled"}),
    "approve": frozenset({"pending_moderation"}),
    "reject": frozenset({"pending_moderation"}),
    "pause": frozenset({"in_progress"}),
    "resume": frozenset({"paused"}),
    "cancel": frozenset({"paused", "scheduled"}),
    "reschedule": frozenset({"scheduled"}),
    "unschedule": frozenset({"scheduled"}),
    "retry": frozenset({"failed"}),
    "repeat": frozenset({"canceled", "completed", "failed"}),
    "delete": ANY - {"in_progress"},
}


def check_action(c: Campaign, action: str, *, lock: bool = True) -> None:
    """Refuse ``action`` unless the campaign's state allows it. With ``lock``
    (the transitions) the campaign is re-read under a row lock first, so of two
    racing commands one waits and then sees the other's state (DESIGN.md,
    Safety rules); without, a check before asking the user (no lock is held
    while a prompt waits)."""
    session = object_session(c)
    if lock and session is not None:
        locking.lock_row(session, c)
    allowed = ACTIONS[action]
    if c.state not in allowed:
        shown = ", ".join(s for s in CAMPAIGN_STATES if s in allowed)
        raise Conflict(f"campaign #{c.id} is {c.state}; {action} is allowed only when it is {shown}")
    holds.check_campaign_action(c, action)


# ---------------------------------------------------------------- scheduling


def resolve_local(text: str, tz: str) -> datetime:
    """A wall-clock time in an IANA zone (or a time with its own offset) as aware UTC.

    Local times follow :func:`cpaas_cli.timeutil.local_to_utc` (a time in a
    daylight-saving gap is refused, naming the gap), like every ``--tz`` option.
    """
    try:
        zi = zone(tz)
    except TimeError as exc:
        raise InvalidInput(str(Problem("tz", str(exc)))) from exc
    raw = (text or "").strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
        check_business_date(value)
    except TimeError as exc:
        raise InvalidInput(str(Problem("at", str(exc)))) from exc
    except ValueError as exc:
        raise InvalidInput(str(Problem("at", f"not a time (YYYY-MM-DD HH:MM): {text!r}"))) from exc
    try:
        if value.tzinfo is not None:
            return to_utc(value, raw)
        return local_to_utc(value, zi)
    except TimeError as exc:
        problem = Problem("at", str(exc))
        raise InvalidInput(str(problem), problems=[problem]) from exc


# ---------------------------------------------------------------- state changes


def moderated(session: Session, c: Campaign) -> bool:
    """True when the company moderates campaigns and this one has not been approved yet."""
    from cpaas_cli.models.tenancy import Company

    comp = session.get(Company, c.company_id)
    return bool(comp and comp.moderation and c.moderated_at is None)


def send(session: Session, c: Campaign) -> StartOutcome:
    """Draft → start now (or wait for moderation)."""
    check_action(c, "send")
    if c.scheduled_at is not None or c.schedule_tz is not None:  # (a clean object is not flushed again)
        c.scheduled_at, c.schedule_tz = None, None
    if moderated(session, c):
        c.state = "pending_moderation"
        session.flush()
        return StartOutcome(c, False, reason="waiting for moderation")
    return start_now(session, c, clock.now())


def schedule(session: Session, c: Campaign, *, at: str, tz: str) -> Campaign:
    check_action(c, "schedule")
    when = resolve_local(at, tz)
    now = clock.now()
    if when <= now:
        problem = Problem("at", f"{at} {tz} ({iso(when)}) is in the past; a schedule must be in the future")
        raise InvalidInput(str(problem), problems=[problem])
    c.scheduled_at, c.schedule_tz = when, tz
    c.state = "pending_moderation" if moderated(session, c) else "scheduled"
    session.flush()
    return c


def start(session: Session, c: Campaign) -> StartOutcome:
    """Scheduled → start now."""
    check_action(c, "start")
    return start_now(session, c, clock.now())


def approve(session: Session, c: Campaign) -> StartOutcome:
    check_action(c, "approve")
    now = clock.now()
    c.moderated_at, c.moderated_by = now, session.info.get("actor")
    if c.scheduled_at is not None and c.scheduled_at > now:
        c.state = "scheduled"
        session.flush()
        return StartOutcome(c, False, reason="scheduled")
    return start_now(session, c, now)


def reject(session: Session, c: Campaign, *, reason: str | None = None) -> Campaign:
    check_action(c, "reject")
    now = clock.now()
    c.moderated_at, c.moderated_by = now, session.info.get("actor")
    fail(session, c, "rejected in moderation" + (f": {reason}" if reason else ""), now)
    return c


def pause(session: Session, c: Campaign) -> Campaign:
    check_action(c, "pause")
    c.state = "paused"
    session.flush()
    return c


def resume(session: Session, c: Campaign) -> Campaign:
    check_action(c, "resume")
    c.state = "in_progress"
    session.flush()
    return c


def cancel(session: Session, c: Campaign) -> Campaign:
    """Paused or scheduled → canceled; messages not yet handed to a worker are dropped (failed)."""
    check_action(c, "cancel")
    now = clock.now()
    t = OutboundMessage.__table__
    session.connection().execute(
        sa.update(t)
        .where(t.c.campaign_id == c.id, t.c.state == "queued")
        .values(state="failed", error="campaign canceled", updated_at=now)
    )
    c.state = "canceled"
    c.finished_at = now
    session.flush()
    return c


def repeat(session: Session, c: Campaign, *, name: str | None = None) -> Campaign:
    """A new draft with the same sender, text and recipients (the stop list is checked at start)."""
    check_action(c, "repeat")
    new = Campaign(
        company_id=c.company_id,
        name=name or f"{c.name} (repeat)",
        channel=c.channel,
        sender_id=c.sender_id,
        agreement_id=c.agreement_id,
        template_id=c.template_id,
        from_template=c.from_template,
        text=c.text,
        personalised=c.personalised,
        variables=list(c.variables),
        flash=c.flash,
        currency=c.currency,
        recipients=c.recipients,
        excluded_stop_list=c.excluded_stop_list,
        excluded_invalid=c.excluded_invalid,
        excluded_duplicate=c.excluded_duplicate,
        sources=dict(c.sources),
        repeat_of_id=c.id,
    )
    session.add(new)
    session.flush()
    r = CampaignRecipient.__table__
    copied = ["phone", "country", "mcc", "mnc", "network", "values", "text"]
    sel = sa.select(sa.literal(new.id, sa.Integer), *[r.c[k] for k in copied]).where(r.c.campaign_id == c.id)
    session.connection().execute(sa.insert(r).from_select(["campaign_id", *copied], sel.order_by(r.c.id)))
    return new


def delete(session: Session, c: Campaign) -> dict[str, int]:
    check_action(c, "delete")
    conn = session.connection()
    o, r = OutboundMessage.__table__, CampaignRecipient.__table__
    messages_ = conn.execute(sa.delete(o).where(o.c.campaign_id == c.id)).rowcount or 0
    recipients = conn.execute(sa.delete(r).where(r.c.campaign_id == c.id)).rowcount or 0
    ct = Campaign.__table__
    conn.execute(sa.update(ct).where(ct.c.repeat_of_id == c.id).values(repeat_of_id=None))
    session.delete(c)
    session.flush()
    return {"recipients": recipients, "messages": messages_}


def start_due(session: Session, *, now: datetime | None = None) -> list[StartOutcome]:
    """Start every scheduled campaign whose time has come (for the scheduler of `serve`).

    A campaign that cannot start (sender disabled, template deleted, no
    recipients) is marked failed with the reason instead of blocking the others.
    """
    now = now or clock.now()
    due = session.exec(
        select(Campaign)
        .where(Campaign.state == "scheduled", col(Campaign.scheduled_at) <= now)
        .order_by(col(Campaign.scheduled_at), col(Campaign.id))
    ).all()
    out = []
    for c in due:
        locking.lock_row(session, c)
        if c.state != "scheduled":  # started or canceled by a command meanwhile
            continue
        try:
            holds.refuse_if_held(session, c.company_id, "start")
            out.append(start_now(session, c, now))
        except Conflict as exc:
            fail(session, c, exc.message, now)
            out.append(StartOutcome(c, False, reason=exc.message))
    return out


def complete_finished(session: Session, *, now: datetime | None = None) -> list[int]:
    """Mark completed every running campaign with no message left to send (for dispatch)."""
    now = now or clock.now()
    o = OutboundMessage.__table__
    pending = sa.select(o.c.id).where(
        o.c.campaign_id == Campaign.id, o.c.state.in_(["queued", "claimed", "sending", "submitted", "unknown"])
    )
    done = session.exec(select(Campaign).where(Campaign.state == "in_progress", ~sa.exists(pending))).all()
    for c in done:
        c.state = "completed"
        c.finished_at = now
    session.flush()
    return [c.id for c in done if c.id is not None]
