"""The stop list: (phone, sender) blocks of a company, ``ALL`` meaning every sender (AMB-01).

The rule of what a block stops is here and only here: a number is blocked for
a sender when the company has a block of it for that sender or for ``ALL``
(`blocked_phones`). The stop list does not touch group membership.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.contacts.values import phone, sender_name
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.contacts import ALL_SENDERS, StopListEntry
from cpaas_cli.models.tenancy import Company
from cpaas_cli.timeutil import iso


def blocked_phones(company_id: int, sender: str, among: Iterable[str] | None = None) -> sa.Select:
    """The numbers the company may not message from ``sender``: blocked for that sender or for ALL
    (only those of ``among`` when given)."""
    t = StopListEntry.__table__
    q = sa.select(t.c.phone).where(t.c.company_id == company_id, t.c.sender.in_([sender, ALL_SENDERS]))
    return q if among is None else q.where(t.c.phone.in_(list(among)))


def state_condition(company_id: int, phone_column: sa.ColumnElement, state: str) -> sa.ColumnElement[bool]:
    """A filter on ``phone_column``'s stop-list state: ``blocked`` (any block), ``clear`` (none)
    or ``all`` (blocked for ALL senders)."""
    s = StopListEntry.__table__
    blocked = sa.exists().where(s.c.company_id == company_id, s.c.phone == phone_column)
    all_blocked = sa.exists().where(s.c.company_id == company_id, s.c.phone == phone_column, s.c.sender == ALL_SENDERS)
    conds = {"blocked": blocked, "clear": ~blocked, "all": all_blocked}
    if state not in conds:
        raise InvalidInput("--stoplist must be blocked, clear or all")
    return conds[state]


def senders_blocked(session: Session, company_id: int, phones: Iterable[str]) -> dict[str, list[str]]:
    """The senders each of ``phones`` is blocked for (``ALL`` as such), in stored order."""
    blocks: dict[str, list[str]] = {}
    for p, s in session.exec(
        select(StopListEntry.phone, StopListEntry.sender).where(
            StopListEntry.company_id == company_id, col(StopListEntry.phone).in_(list(phones))
        )
    ):
        blocks.setdefault(p, []).append(s)
    return blocks


def block(session: Session, company: Company, *, phones: list[str], sender_list: list[str]) -> int:
    """Add (phone, sender) blocks; existing blocks are kept (adding is never destructive)."""
    rows = {(p, s) for p in phones for s in sender_list}
    if not rows:
        return 0
    t = StopListEntry.__table__
    existing = set()
    plist = list({p for p, _ in rows})
    for start in range(0, len(plist), 10000):
        existing.update(
            tuple(r)
            for r in session.connection().execute(
                sa.select(t.c.phone, t.c.sender).where(
                    t.c.company_id == company.id, t.c.phone.in_(plist[start : start + 10000])
                )
            )
        )
    now = clock.now()
    new = [
        {"company_id": company.id, "phone": p, "sender": s, "created_at": now}
        for p, s in rows
        if (p, s) not in existing
    ]
    if new:
        session.connection().execute(sa.insert(t), new)
    record(
        session,
        action="block",
        object_type="stop_list_entry",
        company_id=company.id,
        new={"phones": len(plist), "senders": sender_list, "added": len(new)},
    )
    return len(new)


def unblock(session: Session, company: Company, *, phones: list[str], sender_list: list[str]) -> int:
    """Remove blocks. ``ALL`` in the list removes every block of those phones."""
    t = StopListEntry.__table__
    q = sa.delete(t).where(t.c.company_id == company.id, t.c.phone.in_(phones))
    if ALL_SENDERS not in sender_list:
        q = q.where(t.c.sender.in_(sender_list))
    removed = session.connection().execute(q).rowcount
    record(
        session,
        action="unblock",
        object_type="stop_list_entry",
        company_id=company.id,
        new={"phones": len(phones), "senders": sender_list, "removed": removed},
    )
    return removed


def stoplist_rows(
    session: Session,
    company: Company,
    *,
    phone_text: str | None = None,
    sender: str | None = None,
    default_country: str | None = None,
) -> list[dict[str, Any]]:
    q = select(StopListEntry).where(StopListEntry.company_id == company.id)
    if phone_text:
        q = q.where(StopListEntry.phone == phone(phone_text, default_country))
    if sender:
        q = q.where(StopListEntry.sender == sender_name(sender))
    rows = session.exec(q.order_by(StopListEntry.phone, StopListEntry.sender))
    return [{"phone": r.phone, "sender": r.sender, "created_at": iso(r.created_at)} for r in rows]
