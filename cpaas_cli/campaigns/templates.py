"""Saved message templates of a company: a channel, an active sender ID of it, a text.

The text may use `{{ variable }}` personalisation; its syntax is checked on
save, its variables when a campaign uses it (only then are the recipients'
fields and file columns known). Two templates with the same channel, sender
and text are refused (no duplicates).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.campaigns import senders
from cpaas_cli.contacts.service import client_company
from cpaas_cli.errors import Conflict, InvalidInput, Problem
from cpaas_cli.messaging import templates as tpl
from cpaas_cli.models.campaigns import Campaign, MessageTemplate, SenderId
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import iso


def get(session: Session, ref: str | int, *, company_id: int | None = None) -> MessageTemplate:
    where = [MessageTemplate.company_id == company_id] if company_id is not None else []
    return by_ref(session, MessageTemplate, ref, what="template", where=where)


def add(
    session: Session, *, company: str | int, name: str, sender: str | int, text: str, channel: str | None = None
) -> MessageTemplate:
    comp = client_company(session, company)
    sid = senders.usable(session, sender, company_id=comp.id, channel=channel)
    if not text or not text.strip():
        raise InvalidInput(str(Problem("text", "a template needs a text")))
    if not name.strip():
        raise InvalidInput(str(Problem("name", "a template needs a name")))
    tpl.compile_template(text)
    if session.exec(
        select(MessageTemplate.id).where(MessageTemplate.company_id == comp.id, MessageTemplate.name == name.strip())
    ).first():
        raise Conflict(f"{comp.name!r} already has a template named {name.strip()!r}")
    dup = session.exec(
        select(MessageTemplate).where(
            MessageTemplate.company_id == comp.id,
            MessageTemplate.channel == sid.channel,
            MessageTemplate.sender_id == sid.id,
            MessageTemplate.text == text,
        )
    ).first()
    if dup is not None:
        raise Conflict(f"template {dup.name!r} (#{dup.id}) already has this channel, sender and text")
    row = MessageTemplate(company_id=comp.id, name=name.strip(), channel=sid.channel, sender_id=sid.id, text=text)
    session.add(row)
    session.flush()
    return row


def list_templates(
    session: Session, *, company: str | int | None = None, channel: str | None = None
) -> list[MessageTemplate]:
    q = select(MessageTemplate).order_by(col(MessageTemplate.id))
    if company is not None:
        q = q.where(MessageTemplate.company_id == client_company(session, company).id)
    if channel:
        q = q.where(MessageTemplate.channel == channel)
    return list(session.exec(q))


IN_USE_STATES = ("pending_moderation", "scheduled", "in_progress", "paused")


def check_deletable(session: Session, row: MessageTemplate) -> None:
    """Conflict naming the campaigns waiting to start or running that use the template."""
    users = session.exec(
        select(Campaign)
        .where(Campaign.template_id == row.id, col(Campaign.state).in_(IN_USE_STATES))
        .order_by(col(Campaign.id))
    ).all()
    if users:
        named = ", ".join(f"#{c.id} {c.name!r} ({c.state})" for c in users[:10])
        more = f" and {len(users) - 10} more" if len(users) > 10 else ""
        raise Conflict(f"template {row.name!r} is used by campaign(s) {named}{more}; cancel or finish them first")


def delete(session: Session, row: MessageTemplate) -> None:
    """Delete it unless a campaign waiting to start or running uses it (see :func:`check_deletable`).

    Drafts and finished campaigns made from it keep their own copy of the
    text; a draft made from a deleted template can no longer start.
    """
    check_deletable(session, row)
    session.delete(row)
    session.flush()


def template_dict(session: Session, row: MessageTemplate) -> dict[str, Any]:
    sid = session.get(SenderId, row.sender_id)
    return {
        "id": row.id,
        "company_id": row.company_id,
        "name": row.name,
        "channel": row.channel,
        "sender": sid.sender if sid else None,
        "text": row.text,
        "variables": sorted(tpl.variables(row.text)),
        "created_at": iso(row.created_at),
    }
