"""The e-mail channel of 2FA integrations (issue 28; SPEC OTP-08 "send over email or SMS").

An integration with channel ``email`` sends its code by e-mail through the
configured SMTP server (``[smtp]``, ``mail.py``): the subject is the
integration's ``subject`` (``{{code}}`` may appear there too), the body its
text with the code in place of ``{{code}}``, the From address ``[smtp] from``
with the integration's sender ID as its display name.

The code rules are the SMS ones (``otp/requests.py``, ``otp/codes.py``): a code
from ``secrets``, kept only as its keyed hash, checked in constant time by
``requests.verify`` at most ``max_checks`` times, once, until it expires; a
send passes ``requests.guard`` first (the integration's state, ``max_sends``
per address per window, and the fraud guard's per-address hourly limit: an
address has no prefix or country, so the other guard checks do not apply),
and cancels the address's pending code. Addresses are compared lower-cased.

Money: an e-mail code is an EDR of channel ``email`` (``external_id``
``otp:<request id>``), rated by the charging core with the ``submitted``
event against the agreement of the integration's sender ID, i.e. priced by the
rate tree's ``email`` domain (resource ``email_message``), and charged under the
credit check *before* the e-mail leaves. A request the tree cannot price (no
``email`` node, blocked, no agreement in force, or a node that bills on
delivery, which an e-mail never reports) is refused (409 ``otp-not-priced``)
and one that does not fit the funds is refused (402): nothing is written, nothing
sent. A free price must be written in the tree (``price_type: free``).

Sending: :func:`prepare` writes the request and the charged EDR in the caller's
transaction (the code stays in memory only); after the commit :func:`deliver`
talks SMTP (blocking: the API runs it in a worker thread, never in the event
loop) and records the result in a transaction of its own (:func:`record`):
SENT, or FAILED with the charge refunded through ``charging/refunds.py``
(EDR failed, request failed); the SENT/FAILED callback goes through the
outbox like the SMS ones, VERIFIED is written by ``requests.verify``. A crash
between the commit and the SMTP answer leaves the request charged with no
result; it is not sent again (the code is not stored).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli import clock, mail
from cpaas_cli.callbacks import outbox
from cpaas_cli.charging import rater as charging
from cpaas_cli.charging.plans import Plans
from cpaas_cli.charging.refunds import refund_unsent
from cpaas_cli.db import bulk
from cpaas_cli.db.engine import session_scope
from cpaas_cli.errors import Conflict, CpaasError, InsufficientCredit, InvalidInput, Problem, refusal
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import MAX_ADDRESS, OtpIntegration, OtpRequest
from cpaas_cli.otp import codes, results
from cpaas_cli.otp import requests as otp
from cpaas_cli.otp.integrations import DEFAULT_SUBJECT

log = logging.getLogger("cpaas.otp.email")

R = OtpRequest.__table__
E = Edr.__table__
I = OtpIntegration.__table__  # noqa: E741
CHANNEL = "email"
# dot-atom local part (RFC 5322, without quoted strings) and a domain of LDH labels with a dot
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
EDR_DESTINATION = 32  # edr.destination: a longer address is kept cut, the request has it whole


@dataclass
class Prepared:
    """A request written and charged, its e-mail not sent yet (the code only here)."""

    request_id: str
    address: str
    subject: str
    body: str = field(repr=False)
    sender_name: str | None = None


def check_address(text: str | None, field_name: str = "email") -> str:
    """A well-formed e-mail address, lower-cased; InvalidInput naming ``field_name`` otherwise."""
    raw = (text or "").strip()
    local, at, domain = raw.rpartition("@")
    labels = domain.split(".")
    why = None
    if not raw:
        why = "required"
    elif len(raw) > MAX_ADDRESS:
        why = f"at most {MAX_ADDRESS} characters"
    elif not at or not local or len(local) > 64 or not _LOCAL.match(local):
        why = "not an e-mail address (name@domain.example)"
    elif len(labels) < 2 or not all(_LABEL.match(p) for p in labels) or labels[-1].isdigit():
        why = "not an e-mail address: the domain must be a host name such as domain.example"
    if why:
        problem = Problem(field_name, why)
        raise InvalidInput(str(problem), problems=[problem])
    return raw.lower()


def smtp_settings(section: dict[str, Any]) -> mail.SmtpSettings:
    """The ``[smtp]`` settings (with their environment overrides); InvalidInput when none is configured."""
    return mail.SmtpSettings.from_config(section)


def _refused(reason: str | None, note: str | None) -> CpaasError:
    if reason == "insufficient_credit":
        return refusal(InsufficientCredit, note or "insufficient credit for the e-mail code", "insufficient-credit")
    why = {
        "no_rate": "the agreement's rate tree has no e-mail price (an email / email_message node)",
        "blocked": "the agreement's rate tree blocks e-mail",
        "no_agreement": "the integration's sender ID has no agreement in force",
        "no_period": "the agreement has no billing period in force",
        None: "the e-mail price bills on delivery, which an e-mail never reports (use billing rule submitted)",
    }.get(reason, f"rating refused it ({reason})")
    return refusal(Conflict, f"the e-mail code cannot be priced: {why}; nothing was sent", "otp-not-priced",
                   reason=reason)  # fmt: skip


def _charged_edr(
    session: Session, sender: SenderId, address: str, request_id: str, now: datetime
) -> None:  # fmt: skip
    """The request's EDR, rated with the submitted event and charged (credit checked under the
    agreement's lock), or the refusal raised (the caller's transaction then writes nothing)."""
    (edr_id,) = bulk.writer(session).reserve_ids(E, 1)
    rec: dict[str, Any] = {c.name: None for c in E.columns}
    cut = address if len(address) <= EDR_DESTINATION else address[: EDR_DESTINATION - 1] + "…"
    rec.update(
        id=edr_id, external_id=f"otp:{request_id}", company_id=sender.company_id, agreement_id=sender.agreement_id,
        sender=sender.sender, channel=CHANNEL, direction="mt", source=sender.sender, destination=cut, segments=1,
        status="submitted", event_at=now, prepared_at=now, submitted_at=now, rating_state="unrated",
        ingested_at=now, label="OTP e-mail",
    )  # fmt: skip
    (decision,), charges = charging.Rater(session, Plans(session), now=now).decide([rec])
    if decision is None or decision.state != "rated":
        raise _refused(getattr(decision, "reason", None), getattr(decision, "note", None))
    rec.update(charging.result(decision, now))
    bulk.writer(session).insert_rows(E, [rec])
    charging.post_charges(session, charges)


def prepare(
    session: Session,
    keys: IdentityKeys,
    integration: OtpIntegration,
    *,
    address: str,
    code: str | None = None,
    now: datetime | None = None,
    test: bool = False,
    status_url: str | None = None,
) -> Prepared:
    """Write an e-mail request to ``address`` and charge it: a new code (platform side) or the
    client's ``code`` (client side). Nothing is written when anything refuses; no commit."""
    now = now or clock.now()
    if integration.channel != CHANNEL:
        raise refusal(Conflict, "this integration sends by SMS: use the number", "otp-wrong-channel")
    otp.check_code_given(integration, code, "address")
    addr = check_address(address)
    otp.guard(session, integration, addr, now=now, test=test)
    sender = session.get(SenderId, integration.sender_id)
    if sender is None:
        raise Conflict(f"2FA integration {integration.name!r} has no sender ID")
    session.execute(
        sa.update(R)
        .where(R.c.integration_id == integration.id, R.c.number == addr, R.c.state == "pending")
        .values(state="cancelled", closed_at=now)
    )
    request_id = codes.new_request_id()
    code, digest = otp.code_and_hash(keys, integration, request_id, code)
    _charged_edr(session, sender, addr, request_id, now)
    session.add(
        OtpRequest(
            request_id=request_id, integration_id=integration.id, company_id=integration.company_id,  # type: ignore[arg-type]
            number=addr, channel=CHANNEL, country=None, mode=integration.mode, code_hash=digest, created_at=now,
            expires_at=now + timedelta(seconds=integration.validity_s), callback_url=status_url,
        )
    )  # fmt: skip
    session.flush()
    subject = codes.render(integration.subject or DEFAULT_SUBJECT, code)  # type: ignore[arg-type]
    return Prepared(request_id, addr, subject, codes.render(integration.template, code), sender.sender)  # type: ignore[arg-type]


def deliver(engine: Engine, prepared: Prepared, smtp: mail.SmtpSettings, *, actor: str = "api 2fa") -> str:
    """Send the prepared e-mail (blocking SMTP: call it from a worker thread) and record the
    result in a transaction of its own. Returns SENT or FAILED."""
    why = None
    try:
        mail.send(smtp, to=[prepared.address], subject=prepared.subject, body=prepared.body,
                  sender_name=prepared.sender_name)  # fmt: skip
    except CpaasError as exc:
        why = exc.message
        log.warning("otp e-mail request %s not sent: %s", prepared.request_id, why)
    status = "FAILED" if why else "SENT"
    with session_scope(engine, actor=actor, command="otp e-mail result") as s:
        record(s, prepared.request_id, status, now=clock.now())
    return status


def record(session: Session, request_id: str, status: str, *, now: datetime) -> bool:
    """The SMTP server's answer to an e-mail request, once (a conditional UPDATE of
    ``sent_status`` from NULL owns it): SENT; or FAILED, the request failed and its charge
    refunded. The result callback when the integration or the test request has a URL.
    Returns whether this call recorded it. No commit."""
    values: dict[str, Any] = {"sent_status": status, "sent_at": now}
    if status == "FAILED":
        values.update(state=sa.case((R.c.state == "pending", sa.literal("failed")), else_=R.c.state), closed_at=now)
    row = session.execute(
        sa.update(R)
        .where(R.c.request_id == request_id, R.c.channel == CHANNEL, R.c.sent_status.is_(None))
        .values(values)
        .returning(R.c.request_id, R.c.integration_id, R.c.number, R.c.channel, R.c.created_at, R.c.callback_url)
    ).first()
    if row is None:
        return False
    key = f"otp:{request_id}"
    if status == "FAILED":
        edr_ids = session.execute(sa.select(E.c.id).where(E.c.external_id == key)).scalars().all()
        refund_unsent(session, edr_ids, Plans(session), now=now, why="refused by the SMTP server")
        session.execute(
            sa.update(E).where(E.c.external_id == key).values(status="failed", failed_at=now, vendor_error="smtp")
        )
    url = session.execute(sa.select(I.c.callback_url).where(I.c.id == row.integration_id)).scalar()
    if url or row.callback_url:
        charge = session.execute(sa.select(E.c.rating_state, E.c.cost).where(E.c.external_id == key)).first()
        outbox.record_otp(
            session, integration_id=row.integration_id, request_id=row.request_id, number=row.number,
            status=status, payload=results.payload(row, status, results.billable_of(charge)), now=now,
            channel="EMAIL",
        )  # fmt: skip
    return True
