"""Inbound (MO) messages: store them, and turn opt-out / opt-in keywords into
stop-list changes for one company.

The handset's number is stored and opted out as E.164: a national-format
source (TON 2, or no country code) is read with the connection's default
country (``connection add-smpp --default-country``); one that cannot be read
so is stored as received, with the reason, and changes nothing.

The keyword is the first word of the text, case-insensitive. Whose opt-out it
is follows from the MO's destination (what the handset replied to), matched
against the sender IDs (numbers compared as E.164 digits):

- an active SMS sender ID: the block is (handset, that sender) for the company
  that owns it;
- a number a company owns that is not a sender in use (a draft or disabled
  sender ID, another channel's number): the block is (handset, ALL) for that
  company: the handset wrote to the company, not to one of its senders;
- a sender text several companies use: the ones whose sender routes over the
  connection the MO came in on, then the one that last sent the handset a
  message from it (within ``REPLY_WINDOW``); never all of them. When that still
  leaves no single company, nothing changes and the MO is stored with the reason.

An MO that answers an API message sent with acceptMO (``mo_reply``: the most
recent one to that handset from that sender over that connection, within 7
days) also gets its MO callback row, in the transaction that stores the MO;
the stored MO names that message (``message_id``: its transaction id).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.contacts import stoplist
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.db.checks import storable
from cpaas_cli.dispatch import mo_reply
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.contacts import ALL_SENDERS
from cpaas_cli.models.dispatch import InboundMessage
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.tenancy import Company
from cpaas_cli.timeutil import iso


class Handled(NamedTuple):
    """What an MO did: the stop-list action (or None) and the acceptMO message it answers (or None)."""

    action: str | None
    answered: mo_reply.Answered | None


_WORD = re.compile(r"[A-Za-z]+")
REPLY_WINDOW = timedelta(days=7)  # how far back a shared sender's last message to the handset is looked for


def keyword(text: str) -> str:
    m = _WORD.match(text.strip())
    return m.group().upper() if m else ""


def _digits(addr: str) -> str:
    return re.sub(r"\D", "", addr or "")


def mo_number(source: str, ton: int = 0, default_country: str | None = None) -> tuple[str | None, str | None]:
    """(E.164 digits, None) for an MO's source address, or (None, why not).

    TON 1 is international; TON 2 national (read with the default country);
    any other TON: with the default country when there is one and the number
    reads so, else as international."""
    text = (source or "").strip()
    if not _digits(text):
        return None, f"source {text!r} is not a phone number"
    try:
        if ton == 1 or text.startswith(("+", "00")):
            return normalise(text if text.startswith(("+", "00")) else "+" + text), None
        if ton == 2:
            if not default_country:
                return None, f"national source {text!r} (TON 2) and the connection has no default country"
            return normalise(text, default_country), None
        if default_country:
            try:
                return normalise(text, default_country), None
            except PhoneError:
                pass
        return normalise("+" + _digits(text)), None
    except PhoneError as exc:
        return None, f"source {text!r} {exc}"


def dest_keys(dest: str, default_country: str | None) -> set[str]:
    """The sender texts an MO's destination may name: the text, or the number as E.164 digits."""
    text = dest.strip()
    keys = {text}
    digits = _digits(text)
    if digits and digits == text.lstrip("+"):
        keys.add(digits)
        for form, country in (("+" + digits, None), (digits, default_country)):
            with contextlib.suppress(PhoneError):
                keys.add(normalise(form, country))
    return keys


def _owners(session: Session, dest: str, default_country: str | None) -> list[SenderId]:
    """Sender ID rows for an MO's destination (:func:`dest_keys`)."""
    text = dest.strip()
    rows = list(session.exec(select(SenderId).where(col(SenderId.sender).in_(dest_keys(dest, default_country)))))
    return [r for r in rows if r.sender == text or r.kind != "alphanumeric"]


def _last_sender_company(session: Session, phone: str, rows: list[SenderId], now: datetime) -> int | None:
    """The company among ``rows`` that last sent ``phone`` a message from one of their senders."""
    e = Edr.__table__
    return session.execute(
        sa.select(e.c.company_id)
        .where(
            e.c.company_id.in_(sorted({r.company_id for r in rows})),
            e.c.event_at >= now - REPLY_WINDOW,
            e.c.destination == phone,
            e.c.direction == "mt",
            e.c.sender.in_(sorted({r.sender for r in rows})),
        )
        .order_by(e.c.event_at.desc(), e.c.id.desc())
        .limit(1)
    ).scalar()


def resolve_owner(
    session: Session,
    *,
    phone: str | None,
    dest: str,
    connection_id: int | None,
    default_country: str | None = None,
    now: datetime,
) -> tuple[int | None, str | None, str | None]:
    """(company id, sender to block or ALL, reason when none) for an MO's destination."""
    rows = _owners(session, dest, default_country)
    if not rows:
        return None, None, f"no company owns {dest.strip()!r} (no sender ID has it)"
    companies = {r.company_id for r in rows}
    if len(companies) > 1:
        routed = [r for r in rows if r.connection_id is not None and r.connection_id == connection_id]
        if routed and len({r.company_id for r in routed}) < len(companies):
            rows = routed
            companies = {r.company_id for r in rows}
    if len(companies) > 1 and phone:
        last = _last_sender_company(session, phone, rows, now)
        if last is not None:
            rows = [r for r in rows if r.company_id == last]
            companies = {last}
    if len(companies) > 1:
        ids = ", ".join(f"#{c}" for c in sorted(companies))
        return None, None, f"{dest.strip()!r} belongs to companies {ids} and none of them messaged this number lately"
    (company_id,) = companies
    active = [r for r in rows if r.channel == "sms" and r.status == "active"]
    return company_id, (active[0].sender if active else ALL_SENDERS), None


def handle_mo(
    session: Session,
    *,
    source: str,
    dest: str,
    text: str,
    data_coding: int = 0,
    connection_id: int | None = None,
    default_route: bool = False,
    source_ton: int = 0,
    default_country: str | None = None,
    stop_words: Iterable[str],
    start_words: Iterable[str],
    now: datetime | None = None,
) -> Handled:
    """Store one MO; apply an opt-out/opt-in; when it answers an API message sent
    with acceptMO (``mo_reply``), write its MO callback in the same transaction.
    ``default_route``: the connection also carries senders that name none. No commit."""
    now = now or clock.now()
    # as received, but what neither database can hold (NUL, lone surrogates) as U+FFFD
    source, dest, text = storable(source), storable(dest), storable(text)
    word = keyword(text)
    stops = {w.upper() for w in stop_words}
    starts = {w.upper() for w in start_words}
    action = "opt_out" if word in stops else "opt_in" if word in starts else None
    phone, reason = mo_number(source, source_ton, default_country)
    company_id, sender, why = resolve_owner(
        session, phone=phone, dest=dest, connection_id=connection_id, default_country=default_country, now=now
    )
    applied = None
    if action and phone and company_id is not None:
        company = session.get(Company, company_id)
        if action == "opt_out":
            stoplist.block(session, company, phones=[phone], sender_list=[sender])
        else:
            stoplist.unblock(session, company, phones=[phone], sender_list=[sender])
        record(
            session,
            action=action,
            object_type="stop_list_entry",
            company_id=company_id,
            new={"phone": phone, "sender": sender, "keyword": word, "via": "mo", "to": dest.strip()},
        )
        applied = action
    elif action:
        reason = reason or why
    answer = None
    if phone and company_id is not None:
        answer = mo_reply.answered(
            session,
            phone=phone,
            senders=dest_keys(dest, default_country),
            company_id=company_id,
            connection_id=connection_id,
            default_route=default_route,
            now=now,
        )
    if answer is not None:
        callbacks.record_mo(
            session,
            api_key_id=answer.api_key_id,
            transaction_id=str(answer.queue_id),
            dnis=phone or "",
            text=text,
            channel=answer.channel,
            now=now,
        )
    session.execute(
        sa.insert(InboundMessage.__table__),
        [
            {
                "kind": "mo",
                "connection_id": connection_id,
                "company_id": company_id,
                "source": (phone or source)[:32],
                "destination": dest[:32],
                "text": text,
                "data_coding": data_coding,
                # the API message it answers (acceptMO): its transaction id
                "message_id": str(answer.queue_id) if answer is not None else None,
                "action": applied,
                "reason": (reason or None) and reason[:300],
                "received_at": now,
            }
        ],
    )
    return Handled(applied, answer)


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
        "reason": r.reason,
        "message_id": r.message_id,
        "status": r.status,
        "company_id": r.company_id,
        "connection_id": r.connection_id,
    }
