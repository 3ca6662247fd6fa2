"""Holds: a disabled (blocked) company sends nothing.

A company is held while it, or a company above it (the reseller it belongs
to, up to the owner), is disabled. Then its campaigns cannot be created,
sent, scheduled, started, approved, resumed or repeated (exit 5, with the
reason), and a scheduled campaign that comes due fails with the reason.
Messages already queued stay queued: dispatch does not claim them (the claim
query takes its campaigns from :func:`sendable_campaigns`) until the company is
enabled again, and then they go. `campaign show` (``held``) and the `serve`
summary and log (``held``) say how many messages wait and why. Messages a
worker had claimed before the company was disabled are already on their way.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import object_session
from sqlmodel import Session

from cpaas_cli.errors import Conflict
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.tenancy import Company

# Campaign actions that would make messages go: refused while the company is held.
STARTING = frozenset({"send", "schedule", "start", "approve", "resume", "repeat", "reschedule", "retry"})

_CO = Company.__table__
_C = Campaign.__table__
_Q = OutboundMessage.__table__


def held_company_ids() -> sa.Select:
    """Ids of the disabled companies and of every company under one of them."""
    held = sa.select(_CO.c.id).where(_CO.c.enabled.is_(False)).cte("held", recursive=True)
    below = sa.select(_CO.c.id).join(held, _CO.c.parent_id == held.c.id)
    return sa.select(held.union(below).c.id)


def sendable_campaigns() -> sa.Select:
    """Ids of the running campaigns whose messages dispatch may claim."""
    return sa.select(_C.c.id).where(_C.c.state == "in_progress", _C.c.company_id.not_in(held_company_ids()))


def reason(session: Session, company_id: int) -> str | None:
    """Why the company is held (None when it is not)."""
    row = session.get(Company, company_id)
    first = row
    while row is not None:
        if not row.enabled:
            if row is first:
                return f"company {row.name!r} is disabled"
            assert first is not None
            return f"company {row.name!r}, above {first.name!r}, is disabled"
        row = session.get(Company, row.parent_id) if row.parent_id is not None else None
    return None


def refuse_if_held(session: Session, company_id: int, action: str) -> None:
    why = reason(session, company_id)
    if why is not None:
        raise Conflict(f"{why}: campaign {action} refused until it is enabled (`cpaas tenant enable`)")


def check_campaign_action(c: Campaign, action: str) -> None:
    """For ``campaigns.lifecycle.check_action``: refuse an action of :data:`STARTING` while held."""
    session = object_session(c)
    if action in STARTING and session is not None:
        refuse_if_held(session, c.company_id, action)


def held(session: Session, c: Campaign, counts: dict[str, int]) -> dict[str, Any] | None:
    """`campaign show`: the queued messages that wait because the company is held, and why."""
    queued = counts.get("queued", 0)
    if not queued or c.state != "in_progress":
        return None
    why = reason(session, c.company_id)
    return {"messages": queued, "reason": why} if why else None


def held_summary(session: Session) -> list[dict[str, Any]]:
    """Per held company: its running campaigns' queued messages (for `serve`)."""
    q = (
        sa.select(_C.c.company_id, sa.func.count(sa.distinct(_C.c.id)), sa.func.count())
        .select_from(_Q.join(_C, _C.c.id == _Q.c.campaign_id))
        .where(_Q.c.state == "queued", _C.c.state == "in_progress", _C.c.company_id.in_(held_company_ids()))
        .group_by(_C.c.company_id)
        .order_by(_C.c.company_id)
    )
    out = []
    for company_id, campaigns, messages in session.execute(q):
        company = session.get(Company, company_id)
        out.append(
            {
                "company": company.name if company else company_id,
                "campaigns": campaigns,
                "messages": messages,
                "reason": reason(session, company_id),
            }
        )
    return out
