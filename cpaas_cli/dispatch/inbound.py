"""Inbound (MO) messages: store them, and turn opt-out / opt-in keywords into
stop-list changes for (the handset, the sender ID it answered).

The keyword is the first word of the text, case-insensitive. The sender ID is
found by the MO's destination address (the sender the handset replied to); when
several companies use the same sender text, each of them gets the block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.campaigns.models import SenderId
from cpaas_cli.contacts import service as contacts
from cpaas_cli.dispatch.models import InboundMessage
from cpaas_cli.tenancy.models import Company
from cpaas_cli.timeutil import iso

_WORD = re.compile(r"[A-Za-z]+")


def keyword(text: str) -> str:
    m = _WORD.match(text.strip())
    return m.group().upper() if m else ""


def _digits(addr: str) -> str:
    return re.sub(r"\D", "", addr or "")


def handle_mo(
    session: Session,
    *,
    source: str,
    dest: str,
    text: str,
    data_coding: int = 0,
    connection_id: int | None = None,
    stop_words: Iterable[str],
    start_words: Iterable[str],
    now: datetime | None = None,
) -> str | None:
    """Store one MO; apply an opt-out/opt-in. Returns the action taken (or None). No commit."""
    now = now or clock.now()
    word = keyword(text)
    stops = {w.upper() for w in stop_words}
    starts = {w.upper() for w in start_words}
    action = "opt_out" if word in stops else "opt_in" if word in starts else None
    senders = list(session.exec(select(SenderId).where(SenderId.sender == dest.strip())))
    phone = _digits(source)
    company_id = senders[0].company_id if len(senders) == 1 else None
    applied = None
    if action and phone and senders:
        for sid in senders:
            company = session.get(Company, sid.company_id)
            if action == "opt_out":
                contacts.block(session, company, phones=[phone], sender_list=[sid.sender])
            else:
                contacts.unblock(session, company, phones=[phone], sender_list=[sid.sender])
            record(
                session,
                action=action,
                object_type="stop_list_entry",
                company_id=sid.company_id,
                new={"phone": phone, "sender": sid.sender, "keyword": word, "via": "mo"},
            )
        applied = action
    session.execute(
        sa.insert(InboundMessage.__table__),
        [
            {
                "kind": "mo",
                "connection_id": connection_id,
                "company_id": company_id,
                "source": source[:32],
                "destination": dest[:32],
                "text": text,
                "data_coding": data_coding,
                "action": applied,
                "received_at": now,
            }
        ],
    )
    return applied


def list_inbound(
    session: Session, *, kind: str | None = None, company_id: int | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    q = select(InboundMessage).order_by(col(InboundMessage.id).desc())
    if kind:
        q = q.where(InboundMessage.kind == kind)
    if company_id is not None:
        q = q.where(InboundMessage.company_id == company_id)
    if limit:
        q = q.limit(limit)
    return [inbound_dict(r) for r in session.exec(q)]


def inbound_dict(r: InboundMessage) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "received_at": iso(r.received_at),
        "source": r.source,
        "destination": r.destination,
        "text": r.text,
        "action": r.action,
        "message_id": r.message_id,
        "status": r.status,
        "company_id": r.company_id,
        "connection_id": r.connection_id,
    }
