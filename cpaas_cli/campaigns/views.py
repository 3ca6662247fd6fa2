"""Campaigns as the commands show them: lookup, list, and the show payload with queue progress."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli.campaigns import funds, holds
from cpaas_cli.contacts.service import client_company
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.models.campaigns import CAMPAIGN_STATES, Campaign, OutboundMessage, SenderId
from cpaas_cli.money import format_micros
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import in_zone, iso


def get(session: Session, ref: str | int) -> Campaign:
    return by_ref(session, Campaign, ref, what="campaign")


def progress(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    if not ids:
        return {}
    o = OutboundMessage.__table__
    q = (
        sa.select(o.c.campaign_id, o.c.state, sa.func.count())
        .where(o.c.campaign_id.in_(ids))
        .group_by(o.c.campaign_id, o.c.state)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, state, n in session.connection().execute(q):
        out[cid][state] = n
    return out


def campaign_dict(session: Session, c: Campaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    sid = session.get(SenderId, c.sender_id)
    counts = counts or {}
    finished = counts.get("done", 0) + counts.get("failed", 0)
    spent = funds.spent(session, c.id) if c.id is not None else None
    return {
        "id": c.id,
        "name": c.name,
        "company_id": c.company_id,
        "channel": c.channel,
        "sender": sid.sender if sid else None,
        "state": c.state,
        "recipients": c.recipients,
        "excluded": {
            "stop_list": c.excluded_stop_list,
            "invalid": c.excluded_invalid,
            "duplicate": c.excluded_duplicate,
        },
        "personalised": c.personalised,
        "variables": list(c.variables),
        "text": c.text,
        "template_id": c.template_id,
        "flash": c.flash,
        "scheduled_at": iso(c.scheduled_at),
        "scheduled_at_local": in_zone(c.scheduled_at, c.schedule_tz) if c.schedule_tz else None,
        "schedule_tz": c.schedule_tz,
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "messages": c.messages,
        "segments": c.segments,
        "progress": round(100 * finished / c.messages, 1) if c.messages else 0.0,
        "queue": counts,
        "held": holds.held(session, c, counts),
        "currency": c.currency,
        "estimated_cost": format_micros(c.estimated_cost) if c.estimated_cost is not None else None,
        "cost": format_micros(spent) if spent is not None else None,
        "failure_reason": c.failure_reason,
        "moderated_by": c.moderated_by,
        "moderated_at": iso(c.moderated_at),
        "repeat_of_id": c.repeat_of_id,
        "created_at": iso(c.created_at),
    }


def list_campaigns(
    session: Session, *, company: str | int | None = None, state: str | None = None, limit: int | None = None
) -> list[Campaign]:
    q = select(Campaign).order_by(col(Campaign.id).desc())
    if company is not None:
        q = q.where(Campaign.company_id == client_company(session, company).id)
    if state:
        if state not in CAMPAIGN_STATES:
            raise InvalidInput(str(Problem("state", f"{state!r} is not one of {', '.join(CAMPAIGN_STATES)}")))
        q = q.where(Campaign.state == state)
    if limit:
        q = q.limit(limit)
    return list(session.exec(q))
