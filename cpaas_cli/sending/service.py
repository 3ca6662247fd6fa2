"""Sending messages one request at a time (the HTTP API), on the campaigns' queue.

An API request becomes a small campaign of its own (name ``API <label>``,
``sources.api``) that starts at once: the same sender-ID rules
(``campaigns.senders.usable``), the same stop list, the same start
(``campaigns.lifecycle.send``: queue rows materialised, the estimate checked
against the agreement's available funds, pre-moderation), the same claim and
charging core when a ``serve`` worker sends it, and the campaign completes
when its messages are final. So an API message is checked and charged exactly
as a campaign message is; nothing here prices or charges.

The text of an API message is literal (never a template). Recipients are
E.164 digits without '+' (SPEC CMP-24); a number that is not valid, is a
duplicate, or is blocked by the stop list is reported per recipient and not
sent. The request's transaction commits the queue rows before the caller
answers (DESIGN.md: anything received is committed before it is acknowledged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.campaigns import holds, lifecycle, senders
from cpaas_cli.campaigns.destinations import destination
from cpaas_cli.campaigns.recipients import insert_recipients
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.contacts.stoplist import blocked_phones
from cpaas_cli.errors import InsufficientCredit, InvalidInput, Problem
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import Campaign, OutboundMessage, SenderId
from cpaas_cli.money import format_micros
from cpaas_cli.sending import mo

MAX_RECIPIENTS = 700  # per request (SPEC CMP-24)
MAX_TEXT = 10_000  # characters of one message
MAX_LABEL = 100
_DIGITS = re.compile(r"^[0-9]{1,15}$")

Q = OutboundMessage.__table__


class CreditShort(InsufficientCredit):
    """The messages do not fit the agreement's available funds (HTTP 402, exit 7)."""

    def __init__(self, message: str, *, required: int, available: int | None, currency: str):
        super().__init__(message)
        self.problem_fields = {
            "required": format_micros(required),
            "available": None if available is None else format_micros(available),
            "currency": currency,
        }


@dataclass
class Sent:
    """What a send request did: queued messages (queue id, number) and refused recipients."""

    campaign_id: int | None = None
    state: str | None = None  # the campaign's: in_progress, or pending_moderation
    label: str | None = None
    queued: list[tuple[int, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # accepted, waiting for moderation (no message yet)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (number as given, reason)


def default_label(now: datetime | None = None) -> str:
    """A request without a label is labelled with its UTC date, yyyy-MM-dd (SPEC CMP-24)."""
    return (now or clock.now()).strftime("%Y-%m-%d")


def check_text(text: str | None, field_: str = "message") -> str:
    if text is None or not text.strip():
        problem = Problem(field_, "the message is empty" if text is not None else "required")
        raise InvalidInput(str(problem), problems=[problem])
    if len(text) > MAX_TEXT:
        problem = Problem(field_, f"at most {MAX_TEXT} characters")
        raise InvalidInput(str(problem), problems=[problem])
    return text


def check_label(label: str | None) -> str:
    if label is None or not label.strip():
        return default_label()
    if len(label) > MAX_LABEL:
        problem = Problem("label", f"at most {MAX_LABEL} characters")
        raise InvalidInput(str(problem), problems=[problem])
    return label.strip()


def flash_problem() -> InvalidInput:
    problem = Problem("flash", "flash messages are SMS only")
    return InvalidInput(str(problem), problems=[problem])


def sender_of(session: Session, sender: str, *, company_id: int, channel: str = "sms") -> SenderId:
    """The active sender ID of the company for the channel (NotFound, InvalidInput or Conflict otherwise)."""
    if not sender or not str(sender).strip():
        problem = Problem("from", "required")
        raise InvalidInput(str(problem), problems=[problem])
    return senders.usable(session, str(sender).strip(), company_id=company_id, channel=channel)


def recipients(raw: list[str], limit: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Numbers normalised in the given order (duplicates dropped; the first ``limit`` kept)
    and the refused ones with the reason."""
    out: list[str] = []
    seen: set[str] = set()
    refused: list[tuple[str, str]] = []
    for item in raw:
        text = str(item).strip()
        if not _DIGITS.match(text):
            refused.append((text[:20], "invalid number: E.164 digits without '+' expected"))
            continue
        try:
            number = normalise("+" + text)
        except PhoneError as exc:
            refused.append((text, f"invalid number: {exc}"))
            continue
        if number in seen:
            continue
        if len(out) >= limit:
            continue  # beyond the limit: not sent (the seed's rule for /api/send_sms)
        seen.add(number)
        out.append(number)
    return out, refused


def api_campaign(
    ag: Agreement,
    sender: SenderId,
    *,
    company_id: int,
    label: str,
    text: str | None,
    flash: bool,
    api_key_id: int | None,
    accept_mo: bool,
    recipients: int,
) -> Campaign:
    """The campaign (not yet added) an API send writes: ``API <label>``, literal text, the key,
    label and acceptMO flag in ``sources.api`` (materialisation copies them onto the queue rows)."""
    return Campaign(
        company_id=company_id,
        name=f"API {label}"[:200],
        channel=sender.channel,
        sender_id=sender.id,  # type: ignore[arg-type]
        agreement_id=ag.id,  # type: ignore[arg-type]
        text=text,
        personalised=False,  # an API text is literal
        flash=flash,
        currency=ag.currency,
        recipients=recipients,
        sources={"api": {"api_key_id": api_key_id, "label": label, "accept_mo": accept_mo}, "numbers": recipients},
    )


def send(
    session: Session,
    *,
    company_id: int,
    sender: SenderId,
    numbers: list[str],
    text: str,
    label: str,
    flash: bool = False,
    api_key_id: int | None = None,
    accept_mo: bool = False,
) -> Sent:
    """Queue ``text`` to ``numbers`` (normalised, distinct) from ``sender``; no commit.
    ``accept_mo``: the handset's replies are called back (``sending/mo.py`` says when it is allowed).

    CreditShort (402) when the messages do not fit the available funds: nothing is written."""
    holds.refuse_if_held(session, company_id, "send")
    if flash and sender.channel != "sms":
        raise flash_problem()
    if accept_mo:
        mo.check(session, company_id, flash=flash)
    out = Sent(label=label)
    blocked = {r[0] for r in session.connection().execute(blocked_phones(company_id, sender.sender, numbers))}
    order: dict[str, tuple] = {}
    for number in numbers:
        if number in blocked:
            out.refused.append((number, "blocked by the stop list"))
        else:
            order[number] = (*destination(number), None, None)
    if not order:
        return out
    ag = session.get(Agreement, sender.agreement_id)
    assert ag is not None
    c = api_campaign(ag, sender, company_id=company_id, label=label, text=text, flash=flash,
                     api_key_id=api_key_id, accept_mo=accept_mo, recipients=len(order))  # fmt: skip
    session.add(c)
    session.flush()
    insert_recipients(session, c.id, order)  # type: ignore[arg-type]
    outcome = lifecycle.send(session, c)
    out.campaign_id, out.state = c.id, c.state
    if not outcome.started and c.state == "failed":
        e = outcome.estimate
        up = e.short_level() if e else None  # a reseller level's funds (RAT-10): its own figures
        raise CreditShort(
            outcome.reason or "insufficient credit",
            required=up.cost if up else e.cost if e else 0,
            available=up.available if up else e.available if e else None,
            currency=up.currency if up else c.currency,
        )
    if not outcome.started:
        out.pending = list(order)
        return out
    out.queued = [
        (qid, phone)
        for qid, phone in session.connection().execute(
            sa.select(Q.c.id, Q.c.phone).where(Q.c.campaign_id == c.id).order_by(Q.c.id)
        )
    ]
    return out
