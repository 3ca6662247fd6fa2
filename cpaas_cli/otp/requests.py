"""OTP requests (SPEC OTP-03..06, RAT-12): send a code, check it, look it up.

A send is an ordinary API send (``sending.service.send``): a one-message
campaign started at once, so the message is checked against the funds,
claimed by a ``serve`` worker, written as an EDR and charged by the charging
core like any other; a send refused for credit writes nothing and costs
nothing. Every send passes :func:`guard` before anything is written: the
integration must be Active, and a number gets at most ``max_sends`` codes per
``send_window_s`` (the place where a fraud guard will check too).

A new send for the same number and integration cancels the code before it.
A code is checked at most ``max_checks`` times, succeeds once, and expires
after the integration's validity. The code is in clear only in the message
text until the vendor took it: ``otp/results.record`` then masks it in the
queue row and the campaign; the request keeps only its keyed hash
(``otp/codes.py``). The OTP send is left out of the audit trail (its text has
the code); the request row is its record.

Results are called back through the callback outbox (kind ``otp``): SENT or
FAILED when the vendor answered the submit, VERIFIED when the code came back.
SENT/FAILED and the masking are written by the dispatch worker in the
transaction that stores the vendor's answer (``otp/results.py``); the send
path's sync wait (:func:`settle`) and a lookup only fill in a result no worker
recorded, through the same conditional UPDATE, so each is written once. None
of these commits, except :func:`settle`, in a transaction of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.callbacks import outbox
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.db import locking
from cpaas_cli.db.engine import session_scope
from cpaas_cli.dispatch import doorbell
from cpaas_cli.dispatch.queue import QueueState
from cpaas_cli.errors import Conflict, CpaasError, Denied, InvalidInput, NotFound, Problem, TooMany, refusal
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.models.campaigns import Campaign, OutboundMessage, SenderId
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.money import format_micros
from cpaas_cli.otp import codes, results
from cpaas_cli.otp import guard as fraud_guard
from cpaas_cli.otp.results import billable_of
from cpaas_cli.sending import batch, views
from cpaas_cli.sending import service as sending

R = OtpRequest.__table__
Q = OutboundMessage.__table__
E = Edr.__table__
C = Campaign.__table__
S = SenderId.__table__
GOALS = ["NUMBER_VERIFIED"]
# The request's message status, as the lookup names it (the seed's SUBMIT for a submitted message).
STATUS_NAMES = {
    "queued": "QUEUED",
    "prepared": "PREPARED",
    "billed": "BILLED",
    "submitted": "SUBMIT",
    "delivered": "DELIVERED",
    "undelivered": "UNDELIVERED",
    "failed": "FAILED",
    "seen": "SEEN",
}


# A send's statements, made once (no statement building per send).
_SEND_TIMES = (
    sa.select(R.c.created_at)
    .where(R.c.integration_id == sa.bindparam("b_iid"), R.c.number == sa.bindparam("b_num"),
           R.c.created_at > sa.bindparam("b_from", type_=R.c.created_at.type))
    .order_by(R.c.created_at)
)  # fmt: skip
_SEND_INSERT = sa.insert(R).returning(R.c.id)


@dataclass
class Accepted:
    request_id: str
    number: str
    queue_id: int | None
    pending_moderation: bool = False


@dataclass
class Checked:
    """The answer to a check: ``number``/``verified_at`` when right, else ``error`` (raised by the
    caller once the check itself is committed: a wrong code still counts)."""

    number: str
    verified_at: datetime | None = None
    error: CpaasError | None = None
    channel: str = "sms"  # email: ``number`` is the e-mail address


def check_number(text: str | None) -> str:
    """E.164 digits (a leading '+' is allowed), normalised; InvalidInput otherwise."""
    raw = (text or "").strip()
    digits = raw[1:] if raw.startswith("+") else raw
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        problem = Problem("number", "E.164 digits expected (6 to 15, without '+')")
        raise InvalidInput(str(problem), problems=[problem])
    try:
        return normalise("+" + digits)
    except PhoneError as exc:
        problem = Problem("number", f"not a valid number: {exc}")
        raise InvalidInput(str(problem), problems=[problem]) from None


def guard(session: Session, integration: OtpIntegration, number: str, *, now: datetime, test: bool = False) -> None:
    """The one check every send passes before anything is written: the integration is
    Active (or Draft, for a test send), and the number has had fewer than ``max_sends``
    codes in ``send_window_s``. The count holds a lock on (integration, number) until the
    caller's transaction ends, so a concurrent send to the number waits for this one's
    row (or its rollback) before it counts: at most ``max_sends`` pass, whatever the timing."""
    if integration.state != "active" and not (test and integration.state == "draft"):
        raise refusal(
            Denied, f"2FA integration {integration.name!r} is {integration.state}, not active", "integration-inactive"
        )
    # Alone, the fraud guard goes first: it writes its blocks and refusal counts in a transaction
    # of its own, which on SQLite must not wait for the write lock that the lock below takes. In
    # a group (otp/group.py) its writes wait for the group's transaction: it goes after the lock
    # and reads the number's recent sends with the per-number limit, in one query.
    grouped = session.info.get(fraud_guard.DEFERRED) is not None
    if not grouped:
        fraud_guard.check(session, integration, number, now=now)  # issue 28 item 4: otp/guard.py
    locking.serialise(session, f"otp-send:{integration.id}:{number}")
    since = now - timedelta(seconds=integration.send_window_s)
    read_from = min(since, now - timedelta(seconds=fraud_guard.HOUR)) if grouped else since
    times = (
        session.execute(_SEND_TIMES, {"b_iid": integration.id, "b_num": number, "b_from": read_from}).scalars().all()
    )
    if grouped:
        fraud_guard.check(session, integration, number, now=now, number_times=list(times))
    recent = [t for t in times if t > since]
    if len(recent) >= integration.max_sends:
        free_at = recent[len(recent) - integration.max_sends] + timedelta(seconds=integration.send_window_s)
        # (a send that waited for the lock may count rows made after its own `now`: never more than the window)
        wait = min(integration.send_window_s, max(1, int((free_at - now).total_seconds() + 0.999)))
        raise TooMany(
            f"{integration.max_sends} codes were sent to {number} in the last {integration.send_window_s} s; "
            f"try again in {wait} s",
            retry_after=wait,
            problem_type="otp-send-limit",
        )


def send(
    session: Session,
    keys: IdentityKeys,
    integration: OtpIntegration,
    *,
    number: str,
    code: str | None = None,
    now: datetime | None = None,
    test: bool = False,
    status_url: str | None = None,
) -> Accepted:
    """Queue a code to ``number``: a new one (platform side) or the client's ``code`` (client side).
    CreditShort (402) when the message does not fit the funds: nothing is written.
    ``test``: a test send (`otp integration test`), allowed on a Draft integration too;
    ``status_url``: where its result callbacks go instead of the integration's URL.
    (The HTTP API writes many sends in one transaction by the same three steps: ``otp/group.py``.)"""
    now = now or clock.now()
    pending = prepare(session, keys, integration, number=number, code=code, now=now, test=test, status_url=status_url)
    (got,) = finish(session, [pending], queue(session, [pending]), now=now)
    if isinstance(got, Exception):
        raise got
    return got


@dataclass
class Pending:
    """A send that passed every check, its request row written without its message yet."""

    row_id: int
    request_id: str
    number: str
    integration: OtpIntegration
    sender: str
    text: str  # the message, the code in clear
    actor: str


def prepare(
    session: Session,
    keys: IdentityKeys,
    integration: OtpIntegration,
    *,
    number: str,
    code: str | None,
    now: datetime,
    test: bool = False,
    status_url: str | None = None,
) -> Pending:
    """Step 1 of a send: check it (the code's shape, the number, :func:`guard`), make the code
    and write the request row (no message yet: :func:`queue`, then :func:`finish`)."""
    if integration.channel != "sms":  # e-mail codes: otp/email_channel.py
        raise refusal(Conflict, f"this integration sends by {integration.channel}, not SMS", "otp-wrong-channel")
    check_code_given(integration, code, "number")
    phone = check_number(number)
    guard(session, integration, phone, now=now, test=test)
    sender_name = _sender_name(session, integration)
    request_id = codes.new_request_id()
    code, digest = code_and_hash(keys, integration, request_id, code)
    from cpaas_cli.campaigns.destinations import destination

    row_id = session.execute(_SEND_INSERT, {
        "request_id": request_id, "integration_id": integration.id, "company_id": integration.company_id,
        "number": phone, "country": destination(phone)[0], "mode": integration.mode, "code_hash": digest,
        "state": "pending", "checks": 0, "created_at": now,
        "expires_at": now + timedelta(seconds=integration.validity_s), "callback_url": status_url,
    }).scalar_one()  # fmt: skip
    text = codes.render(integration.template, code)  # type: ignore[arg-type]
    actor = str(session.info.get("actor") or "api 2fa")
    return Pending(row_id, request_id, phone, integration, sender_name, text, actor)


def check_code_given(integration: OtpIntegration, code: str | None, destination: str) -> None:
    """A platform-side integration makes its own codes; a client-side one needs the client's
    (4 to 10 letters or digits). ``destination``: what the send names (number, address)."""
    if integration.mode == "platform" and code is not None:
        raise refusal(
            InvalidInput, f"this integration makes its own codes: send only the {destination}", "otp-wrong-mode"
        )
    if integration.mode == "client" and (code is None or not codes.CLIENT_CODE.match(code)):
        problem = Problem("code", ("required: " if code is None else "") + "4 to 10 letters or digits")
        raise InvalidInput(str(problem), problems=[problem])


def code_and_hash(
    keys: IdentityKeys, integration: OtpIntegration, request_id: str, code: str | None
) -> tuple[str, str | None]:
    """(the code to send, its keyed hash): a new code and its hash on the platform side, the
    client's code and no hash on the client side (nothing to check here)."""
    if integration.mode != "platform":
        return code, None  # type: ignore[return-value]
    made = codes.new_code(integration.digits, integration.code_type)
    return made, codes.code_hash(keys, request_id, codes.normal(made, integration.code_type))


def queue(session: Session, pendings: list[Pending]) -> list[sending.Sent | Exception]:
    """Step 2: the codes' messages on the queue by the HTTP API's own path (``sending.batch``:
    the sends of one integration in a group share one light campaign started at once, with the
    same sender-ID, hold, stop-list, moderation and credit rules; a send that does not fit gets
    the lone path's exact error). The codes' texts stay out of the audit trail."""
    if not pendings:
        return []
    requests = [
        batch.Request(
            company_id=p.integration.company_id,
            api_key_id=None,  # type: ignore[arg-type]  # no API key: the integration's results have their own callbacks
            messages=[batch.Message(sender=p.sender, to=[p.number], text=p.text, label=f"OTP {p.integration.id}")],
            actor=p.actor,
        )
        for p in pendings
    ]
    audit = session.info.get("audit")
    session.info["audit"] = False  # the campaign's text holds the code: not in the audit trail
    try:
        got = batch.send_requests(session, requests, answer=lambda _sent: {}, lookups=_lookups())
    finally:
        if audit is None:
            session.info.pop("audit", None)
        else:
            session.info["audit"] = audit
    return [g if isinstance(g, Exception) else g.sent[0] for g in got]  # type: ignore[union-attr]


def finish(
    session: Session, pendings: list[Pending], sents: list[sending.Sent | Exception], *, now: datetime
) -> list[Accepted | Exception]:
    """Step 3: the request rows of the sends that went on the queue get their message, and each
    cancels the codes sent before it to the same number; a send that did not go (credit, stop
    list…) loses its row and answers its error."""
    out: list[Accepted | Exception] = []
    gone: list[int] = []
    kept: list[dict[str, Any]] = []
    for p, sent in zip(pendings, sents, strict=True):
        if not isinstance(sent, Exception) and sent.refused:
            (_n, why), *_ = sent.refused
            problem = Problem("number", why)
            sent = InvalidInput(str(problem), problems=[problem])
        if isinstance(sent, Exception):
            gone.append(p.row_id)
            out.append(sent)
            continue
        qid = sent.queued[0][0] if sent.queued else None
        kept.append({"rid": p.row_id, "cid": sent.campaign_id, "qid": qid, "iid": p.integration.id, "num": p.number})
        out.append(Accepted(p.request_id, p.number, qid, pending_moderation=not sent.queued))
    if gone:
        session.execute(sa.delete(R).where(R.c.id.in_(gone)))
    if kept:
        session.execute(
            sa.update(R).where(R.c.id == sa.bindparam("rid"))
            .values(campaign_id=sa.bindparam("cid"), queue_id=sa.bindparam("qid")), kept,
        )  # fmt: skip
        session.execute(
            sa.update(R)
            .where(R.c.integration_id == sa.bindparam("iid"), R.c.number == sa.bindparam("num"),
                   R.c.state == "pending", R.c.id < sa.bindparam("rid"))
            .values(state="cancelled", closed_at=now), kept,
        )  # fmt: skip
    return out


_LOOKUPS = threading.local()


def _lookups() -> batch.Lookups:
    """This thread's cache of sender IDs, holds, moderation and rate trees (1 s, as the API's writer)."""
    got = getattr(_LOOKUPS, "value", None)
    if got is None:
        got = _LOOKUPS.value = batch.Lookups(ttl=1.0)
    return got


def _sender_name(session: Session, integration: OtpIntegration) -> str:
    cache = session.info.setdefault("otp.senders", {})  # read once per transaction (a group's sends)
    name = cache.get(integration.sender_id)
    if name is None:
        name = cache[integration.sender_id] = session.execute(
            sa.select(S.c.sender).where(S.c.id == integration.sender_id)
        ).scalar()
    if name is None:
        raise Conflict(f"2FA integration {integration.name!r} has no sender ID")
    return name


def _charge(session: Session, row: Any) -> Any:
    """The request's EDR (``results.edr_key``: its queue row's, or an e-mail request's own)."""
    if getattr(row, "channel", "sms") != "email" and row.queue_id is None:
        return None
    return session.execute(
        sa.select(E.c.status, E.c.unit_price, E.c.cost, E.c.currency, E.c.segments, E.c.rating_state)
        .where(E.c.external_id == results.edr_key(row))
    ).first()  # fmt: skip


def _callback(session: Session, integration_id: int, row: Any, status: str, billable: bool | None, now: datetime):
    outbox.record_otp(
        session,
        integration_id=integration_id,
        request_id=row.request_id,
        number=row.number,
        status=status,
        payload=results.payload(row, status, billable),
        now=now,
        channel="EMAIL" if row.channel == "email" else "SMS",
    )


def record_result(session: Session, request: OtpRequest, queue_state: str | None, *, now: datetime) -> str | None:
    """Store the vendor's answer to the request's message unless a worker did
    (``otp/results.record``: once, whoever comes first): SENT or FAILED. Returns the
    status stored, or None while the answer is not known."""
    if request.sent_status is not None:
        return request.sent_status
    if queue_state in (QueueState.SUBMITTED, QueueState.DONE):
        status = "SENT"
    elif queue_state == QueueState.FAILED:
        status = "FAILED"
    else:
        return None
    if request.queue_id is not None:
        results.record(session, [request.queue_id], status, now=now)
    session.refresh(request)
    return request.sent_status


def settle(engine: Engine, request_id: str, queue_id: int | None, *, timeout: float) -> str | None:
    """Wait (at most ``timeout`` s) until a worker stored the vendor's answer to the request's
    message, then record it (:func:`record_result`, committed). Returns SENT, FAILED or None."""
    if queue_id is None:
        return None
    doorbell.ring()  # an idle worker of this process claims it now, not after its pause
    got = views.wait_submitted(engine, [queue_id], timeout=timeout)
    state = (got.get(queue_id) or {}).get("state")
    if state not in (QueueState.SUBMITTED, QueueState.DONE, QueueState.FAILED):
        return None
    with session_scope(engine, actor="api", command="api otp settle") as s:
        row = s.exec(select(OtpRequest).where(OtpRequest.request_id == request_id)).first()
        if row is None:
            return None
        return record_result(s, row, state, now=clock.now())


def _find(session: Session, integration: OtpIntegration, request_id: str) -> OtpRequest:
    text = (request_id or "").strip()
    row = None
    if 0 < len(text) <= codes.REQUEST_ID_LEN:
        row = session.exec(
            select(OtpRequest).where(OtpRequest.request_id == text, OtpRequest.integration_id == integration.id)
        ).first()
    if row is None:
        raise NotFound(f"request {text[:40]!r} not found")
    return row


def _queue_state(session: Session, queue_id: int | None) -> str | None:
    if queue_id is None:
        return None
    return session.execute(sa.select(Q.c.state).where(Q.c.id == queue_id)).scalar()


def verify(
    session: Session,
    keys: IdentityKeys,
    integration: OtpIntegration,
    *,
    request_id: str,
    code: str | None,
    now: datetime | None = None,
) -> Checked:
    """Check ``code`` for the request. A malformed code or an unknown request raises (nothing
    counts); otherwise the check is counted and the answer says whether it passed. The
    check is counted and its outcome written by one conditional UPDATE (pending, fewer than
    ``max_checks`` checks so far), so two checks of one request at once count twice and
    only one of them can verify it."""
    now = now or clock.now()
    text_id = (request_id or "").strip()
    row = None
    if 0 < len(text_id) <= codes.REQUEST_ID_LEN:
        row = session.execute(_CHECK_FIND, {"b_rid": text_id, "b_iid": integration.id}).first()
    if row is None:
        raise NotFound(f"request {text_id[:40]!r} not found")
    if row.mode != "platform" or row.code_hash is None:
        raise refusal(Conflict, "a client-side request has no code to check here", "otp-wrong-mode")
    text = (code or "").strip()
    why = "required" if not text else codes.shape_problem(text, integration.digits, integration.code_type)
    if why:
        problem = Problem("code", why)
        raise InvalidInput(str(problem), problems=[problem])
    out = Checked(row.number, channel=row.channel)
    if row.state in _CLOSED:
        cls, message, kind = _CLOSED[row.state]
        raise refusal(cls, message, kind)
    if row.state == "locked":
        raise TooMany(f"the code was checked {row.checks} times; send a new one", problem_type="otp-check-limit")
    if now >= row.expires_at:
        session.execute(_CHECK_CLOSE, {"b_id": row.id, "b_state": "expired", "b_now": now})
        out.error = refusal(Conflict, "the code expired", "otp-expired")
        return out
    most = integration.max_checks
    args = {"b_id": row.id, "b_most": most, "b_now": now}
    if codes.code_matches(keys, row.request_id, codes.normal(text, integration.code_type), row.code_hash):
        if session.execute(_CHECK_PASS, args).rowcount:
            out.verified_at = now
            if integration.callback_url or row.callback_url:
                _callback(session, integration.id, row, "VERIFIED", billable_of(_charge(session, row)), now)  # type: ignore[arg-type]
            return out
        state = session.execute(sa.select(R.c.state).where(R.c.id == row.id)).scalar()
        if state in _CLOSED:  # a check of the same request at the same moment won
            cls, message, kind = _CLOSED[state]
            out.error = refusal(cls, message, kind)
            return out
    else:
        checks = session.execute(_CHECK_MISS, args).scalar()
        if checks is not None:
            out.error = refusal(InvalidInput, "wrong code", "otp-code-mismatch", attemptsLeft=max(0, most - checks))
            return out
    session.execute(_CHECK_CLOSE, {"b_id": row.id, "b_state": "locked", "b_now": now})
    out.error = TooMany(f"the code was checked {most} times; send a new one", problem_type="otp-check-limit")
    return out


# A check's statements, made once (a check is the API's busiest write: no statement building per call).
_NOW = sa.bindparam("b_now", type_=R.c.closed_at.type)
_PENDING = sa.and_(R.c.id == sa.bindparam("b_id"), R.c.state == "pending")
_ROOM = sa.and_(_PENDING, R.c.checks < sa.bindparam("b_most"))
_LAST = R.c.checks + 1 >= sa.bindparam("b_most")
_CHECK_FIND = sa.select(
    R.c.id, R.c.request_id, R.c.number, R.c.mode, R.c.code_hash, R.c.state, R.c.checks, R.c.expires_at,
    R.c.queue_id, R.c.created_at, R.c.channel, R.c.callback_url,
).where(R.c.request_id == sa.bindparam("b_rid"), R.c.integration_id == sa.bindparam("b_iid"))  # fmt: skip
_CHECK_PASS = sa.update(R).where(_ROOM).values(checks=R.c.checks + 1, state="verified", verified_at=_NOW)
_CHECK_MISS = (
    sa.update(R).where(_ROOM)
    .values(checks=R.c.checks + 1, state=sa.case((_LAST, "locked"), else_=R.c.state),
            closed_at=sa.case((_LAST, _NOW), else_=R.c.closed_at))
    .returning(R.c.checks)
)  # fmt: skip
_CHECK_CLOSE = sa.update(R).where(_PENDING).values(state=sa.bindparam("b_state"), closed_at=_NOW)

_CLOSED = {  # a request's closed state -> how a check of it is refused
    "verified": (Conflict, "the code was already used", "otp-used"),
    "cancelled": (Conflict, "a newer code was sent to this number; this one is void", "otp-cancelled"),
    "expired": (Conflict, "the code expired", "otp-expired"),
    "failed": (Conflict, "the code could not be sent", "otp-failed"),
}


def lookup(session: Session, integration: OtpIntegration, request_id: str, *, now: datetime | None = None) -> dict:
    """The request as the seed shows it (id, number, rate, billable, status, sender, goals,
    createdAt in epoch ms, payload) and the verification state beside it."""
    now = now or clock.now()
    row = _find(session, integration, request_id)
    if row.sent_status is None:
        record_result(session, row, _queue_state(session, row.queue_id), now=now)
    charge = _charge(session, row)
    sender = session.get(SenderId, integration.sender_id)
    if charge is not None:
        status = STATUS_NAMES.get(charge.status, charge.status.upper())
    else:
        status = "FAILED" if _queue_state(session, row.queue_id) == QueueState.FAILED else "QUEUED"
    state = row.state
    if state == "pending" and row.mode == "platform" and now >= row.expires_at:
        state = "expired"
    unit = charge.unit_price if charge is not None and charge.rating_state == "rated" else None
    return {
        "id": row.request_id,
        **results.destination(row),  # number, or email for an e-mail request
        "rate": format_micros(unit) if unit is not None else None,
        "billable": billable_of(charge),
        "status": status,
        "sender": sender.sender if sender else None,
        "goals": list(GOALS),
        "createdAt": int(row.created_at.timestamp() * 1000),
        "payload": results.destination(row),
        "channel": row.channel,
        "cost": format_micros(charge.cost) if charge is not None and charge.cost is not None else None,
        "currency": charge.currency if charge is not None else None,
        "segments": charge.segments if charge is not None else None,
        "verification": state,
        "checks": row.checks,
        "expiresAt": int(row.expires_at.timestamp()),
        "verifiedAt": int(row.verified_at.timestamp()) if row.verified_at else None,
    }
