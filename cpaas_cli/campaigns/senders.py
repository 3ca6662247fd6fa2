"""Sender IDs: who a message appears to come from, per company, channel and agreement.

A sender ID belongs to one client company and is bound to exactly one of its
agreements (the agreement its traffic is charged to). It starts as a draft
(applied for at the provider), becomes active when the provider side is
ready, and can be disabled; only an active one can send. The vendor
connection it routes through is optional until dispatch needs it.

A sender ID may also belong to a reseller (SID-15, :func:`delegate`): the
tenant hands it to the reseller, bound to the reseller's purchase agreement,
so that the reseller may give the same text to its own clients. A reseller
sends nothing itself (TEN-11), so such a row is never used for sending: a
campaign only takes a sender ID of its own client company (:func:`usable`).
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.agreements import service as agreements
from cpaas_cli.catalog.vocab import SHORT_CODE_DIGITS, is_short_code
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.contacts.service import client_company
from cpaas_cli.db import locking
from cpaas_cli.dispatch.outbound import require_gateway
from cpaas_cli.errors import Conflict, InvalidInput, Problem, require
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import CHANNELS, SENDER_KINDS, SenderId
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref
from cpaas_cli.tenancy.service import company as company_by_ref
from cpaas_cli.timeutil import iso

_ALPHA = re.compile(r"^[A-Za-z0-9 ._&+\-]{1,11}$")
_GENERIC = re.compile(r"^[A-Za-z0-9 ._&+\-@]{1,32}$")

# Which status changes each command makes.
TRANSITIONS = {"activate": ("draft", "disabled"), "disable": ("draft", "active")}


def check_sender(channel: str, kind: str, text: str) -> tuple[str | None, Problem | None]:
    """The stored form of a sender text, or a problem. SMS senders follow the kind's format."""
    value = (text or "").strip()
    if channel == "sms":
        if kind == "alphanumeric":
            if not _ALPHA.match(value) or value.isdigit():
                return None, Problem(
                    "sender", f"{text!r}: an alphanumeric sender has 1-11 letters/digits, not only digits"
                )
            return value, None
        if kind == "short_code":
            if not is_short_code(value):
                return None, Problem(
                    "sender", f"{text!r}: a short code has {SHORT_CODE_DIGITS[0]}-{SHORT_CODE_DIGITS[1]} digits"
                )
            return value, None
        try:
            return normalise(value), None
        except PhoneError as exc:
            return None, Problem("sender", f"{text!r}: a long code is a phone number; it {exc}")
    if not _GENERIC.match(value):
        return None, Problem("sender", f"{text!r}: 1-32 letters, digits, spaces or ._&+-@")
    return value, None


def get(session: Session, ref: str | int, *, company_id: int | None = None) -> SenderId:
    where = [SenderId.company_id == company_id] if company_id is not None else []
    return by_ref(session, SenderId, ref, field="sender", what="sender ID", where=where)


def add(
    session: Session,
    *,
    company: str | int,
    agreement: str | int,
    sender: str,
    channel: str = "sms",
    kind: str = "alphanumeric",
    name: str | None = None,
    connection: str | int | None = None,
    active: bool = False,
    description: str | None = None,
) -> SenderId:
    problems: list[Problem] = []
    comp = client_company(session, company)
    if channel not in CHANNELS:
        problems.append(Problem("channel", f"{channel!r} is not one of {', '.join(CHANNELS)}"))
    if kind not in SENDER_KINDS:
        problems.append(Problem("type", f"{kind!r} is not one of {', '.join(SENDER_KINDS)}"))
    ag = agreements.get(session, agreement)
    if ag.company_id != comp.id or ag.direction != "CLIENT":
        problems.append(Problem("agreement", f"{ag.code!r} is not a client agreement of {comp.name!r}"))
    value = None
    if not problems:
        value, problem = check_sender(channel, kind, sender)
        if problem:
            problems.append(problem)
    if not problems:
        problem = _delegation_problem(session, ag, channel, value)
        if problem:
            problems.append(problem)
    conn_id = by_ref(session, VendorConnection, connection, what="connection").id if connection is not None else None
    require(problems)
    require_gateway(channel)  # exit 5 until a gateway serves the channel
    return _insert(session, comp, ag, channel, value, kind, name, active, description, conn_id)


def _delegation_problem(session: Session, ag: Agreement, channel: str, value: str | None) -> Problem | None:
    """SID-15: a reseller's client uses the sender IDs the tenant delegated to that
    reseller (``delegate``); a delegation the tenant disabled gives no new ones."""
    seller = session.get(Company, ag.seller_company_id)
    if seller is None or seller.kind != "reseller":
        return None
    status = session.exec(
        select(SenderId.status).where(
            SenderId.company_id == seller.id, SenderId.channel == channel, SenderId.sender == value
        )
    ).first()
    if status is None:
        return Problem(
            "sender",
            f"{value!r} is not a {channel} sender ID delegated to {seller.name!r}, which sells {ag.code!r} "
            "(SID-15: the tenant delegates it first: cpaas sender delegate)",
        )
    if status == "disabled":
        return Problem("sender", f"the delegation of {value!r} to {seller.name!r} is disabled")
    return None


def _insert(
    session: Session,
    comp: Company,
    ag: Agreement,
    channel: str,
    value: str | None,
    kind: str,
    name: str | None,
    active: bool,
    description: str | None,
    conn_id: int | None = None,
) -> SenderId:
    """A checked sender ID row of ``comp`` on ``ag``; a text the company has on the channel is a Conflict."""
    clash = session.exec(
        select(SenderId.id).where(SenderId.company_id == comp.id, SenderId.channel == channel, SenderId.sender == value)
    ).first()
    if clash is not None:
        raise Conflict(f"{comp.name!r} already has the {channel} sender ID {value!r} (#{clash})")
    row = SenderId(
        company_id=comp.id,
        agreement_id=ag.id,
        channel=channel,
        sender=value,
        name=(name or value or "").strip(),
        kind=kind,
        status="active" if active else "draft",
        connection_id=conn_id,
        description=description,
    )
    session.add(row)
    session.flush()
    return row


def check_new(channel: str, kind: str, sender: str, *, prefix: str = "") -> tuple[str | None, list[Problem]]:
    """The stored form of a new sender ID's text, and the problems of its channel, kind and
    text (fields named after ``prefix``, e.g. ``sender_ids[0].``); no database needed."""
    problems: list[Problem] = []
    if channel not in CHANNELS:
        problems.append(Problem(f"{prefix}channel", f"{channel!r} is not one of {', '.join(CHANNELS)}"))
    if kind not in SENDER_KINDS:
        problems.append(Problem(f"{prefix}type", f"{kind!r} is not one of {', '.join(SENDER_KINDS)}"))
    if problems:
        return None, problems
    value, problem = check_sender(channel, kind, sender)
    if problem is not None:
        problems.append(Problem(f"{prefix}{problem.field}", problem.message))
    return value, problems


def delegate(
    session: Session,
    *,
    reseller: Company,
    agreement: Agreement,
    sender: str,
    channel: str = "sms",
    kind: str = "alphanumeric",
    name: str | None = None,
    active: bool = False,
    description: str | None = None,
) -> SenderId:
    """SID-15: a sender ID the tenant hands to a reseller, bound to the reseller's
    purchase agreement (``agreement``: company = the reseller). The reseller may then
    add the same text for its clients (`sender add`); the row itself never sends."""
    if reseller.kind != "reseller":
        raise InvalidInput(f"sender IDs are delegated to resellers; {reseller.name!r} is a {reseller.kind}")
    if agreement.company_id != reseller.id or agreement.direction != "CLIENT":
        raise InvalidInput(f"agreement {agreement.code!r} is not a purchase agreement of {reseller.name!r}")
    value, problems = check_new(channel, kind, sender)
    require(problems)
    require_gateway(channel)
    return _insert(session, reseller, agreement, channel, value, kind, name, active, description)


def set_status(session: Session, row: SenderId, action: str) -> SenderId:
    locking.lock_row(session, row)  # of two racing changes, the second sees the first's
    allowed = TRANSITIONS[action]
    if row.status not in allowed:
        raise Conflict(f"sender ID {row.sender!r} is {row.status}; {action} needs {' or '.join(allowed)}")
    row.status = "active" if action == "activate" else "disabled"
    session.flush()
    if action == "disable":
        from cpaas_cli.campaigns.sender_fees import end_usage_rules

        end_usage_rules(session, row)  # no usage fee for a disabled sender ID
    return row


def list_senders(
    session: Session, *, company: str | int | None = None, channel: str | None = None, status: str | None = None
) -> list[SenderId]:
    q = select(SenderId).order_by(col(SenderId.id))
    if company is not None:  # a client's own, or the ones delegated to a reseller (SID-15)
        q = q.where(SenderId.company_id == company_by_ref(session, company).id)
    if channel:
        q = q.where(SenderId.channel == channel)
    if status:
        q = q.where(SenderId.status == status)
    return list(session.exec(q))


def usable(session: Session, ref: str | int, *, company_id: int, channel: str | None = None) -> SenderId:
    """The active sender ID of this company (and channel) that a campaign or template may use;
    Conflict (exit 5) when no gateway serves its channel."""
    row = get(session, ref, company_id=company_id)
    owner = session.get(Company, row.company_id)
    if owner is not None and owner.kind == "reseller":
        problem = Problem(
            "sender", f"{row.sender!r} is delegated to the reseller {owner.name!r}: a reseller sends no traffic of its "
            "own (TEN-11); its clients send with it (sender add)"
        )  # fmt: skip
        raise InvalidInput(str(problem), problems=[problem])
    if channel is not None and row.channel != channel:
        problem = Problem("sender", f"{row.sender!r} is a {row.channel} sender ID, not {channel}")
        raise InvalidInput(str(problem), problems=[problem])
    if row.status != "active":
        problem = Problem("sender", f"sender ID {row.sender!r} is {row.status}; only an active one can be used")
        raise InvalidInput(str(problem), problems=[problem])
    require_gateway(row.channel)  # a sender ID added before channels without a gateway were refused
    return row


def sender_dict(session: Session, row: SenderId) -> dict[str, Any]:
    comp = session.get(Company, row.company_id)
    ag = session.get(Agreement, row.agreement_id)
    conn = session.get(VendorConnection, row.connection_id) if row.connection_id else None
    return {
        "id": row.id,
        "company_id": row.company_id,
        "company": comp.name if comp else None,
        "channel": row.channel,
        "sender": row.sender,
        "name": row.name,
        "type": row.kind,
        "status": row.status,
        "agreement": ag.code if ag else None,
        "connection": conn.name if conn else None,
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
