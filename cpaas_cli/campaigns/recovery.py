"""Ways out of a stuck campaign: reschedule, unschedule, retry after a payment.

A scheduled campaign can move to another time (``reschedule``) or back to a
draft (``unschedule``); a campaign that failed for lack of credit can be
started again once the balance allows it (``retry``). Each goes through
:func:`cpaas_cli.campaigns.lifecycle.check_action` (row lock, allowed states).
"""

from __future__ import annotations

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.campaigns.lifecycle import check_action, resolve_local
from cpaas_cli.campaigns.materialise import StartOutcome, start_now
from cpaas_cli.errors import Conflict, InvalidInput, Problem
from cpaas_cli.models.campaigns import Campaign
from cpaas_cli.timeutil import iso

CREDIT_FAILURE = "insufficient credit"


def reschedule(session: Session, c: Campaign, *, at: str, tz: str | None = None) -> Campaign:
    """Scheduled → scheduled at another future time (``tz`` defaults to the campaign's own zone)."""
    check_action(c, "reschedule")
    zone_name = tz or c.schedule_tz or "UTC"
    when = resolve_local(at, zone_name)
    if when <= clock.now():
        problem = Problem("at", f"{at} {zone_name} ({iso(when)}) is in the past; a schedule must be in the future")
        raise InvalidInput(str(problem), problems=[problem])
    c.scheduled_at, c.schedule_tz = when, zone_name
    c.updated_at = clock.now()
    session.flush()
    return c


def unschedule(session: Session, c: Campaign) -> Campaign:
    """Scheduled → draft: the time is dropped; it can be sent or scheduled again."""
    check_action(c, "unschedule")
    c.scheduled_at, c.schedule_tz = None, None
    c.state = "draft"
    c.updated_at = clock.now()
    session.flush()
    return c


def retry(session: Session, c: Campaign) -> StartOutcome:
    """Failed for lack of credit → start now (after a payment or a higher credit limit).

    Nothing was queued when it failed, so the start is the same as a first
    one: priced again against today's balance; still short, it stays failed
    with the new figures. Other failures (moderation, a deleted template) are
    refused: ``campaign repeat`` makes a new draft of those.
    """
    check_action(c, "retry")
    if not (c.failure_reason or "").startswith(CREDIT_FAILURE):
        raise Conflict(
            f"campaign #{c.id} failed for another reason ({c.failure_reason}); "
            "only a campaign that failed for insufficient credit can be retried (use campaign repeat)"
        )
    c.failure_reason, c.finished_at = None, None
    return start_now(session, c, clock.now())
