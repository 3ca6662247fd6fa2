"""Many send requests in one transaction (the group commit of ``POST /v1/messages``).

``db.groupcommit`` hands the requests waiting for the writer to
:func:`send_requests` together. Each request keeps its own rules and answer:

* a request of one message is planned alone (its ``Idempotency-Key`` looked up
  and reserved, its sender ID, its company's hold, its numbers), then written
  with the other one-message requests of the same key, sender, label, flag and acceptMO
  as ONE API campaign: one campaign row, one estimate against the agreement's
  funds, one materialisation, whatever the number of requests. Each request
  still gets its own queue ids, its own refused numbers and its own answer.
* when such a shared campaign cannot start as a whole (not enough credit for
  all of them, or any error), its requests are written again one by one, each
  in its own savepoint, exactly as :func:`cpaas_cli.sending.service.send` does
  for a lone request: those that fit are queued, the others get their own
  error (402 …). A shared campaign is only a cheaper way to the same result.
* a request of several messages, and a request whose key was already used by
  an earlier request of the same group, is written alone in its savepoint.

Nothing here commits: the caller commits once for the whole group.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.campaigns import holds, lifecycle, materialise
from cpaas_cli.campaigns.destinations import destination
from cpaas_cli.catalog import service as catalog
from cpaas_cli.contacts.stoplist import blocked_phones
from cpaas_cli.db import bulk, locking
from cpaas_cli.errors import Conflict, CpaasError
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import Campaign, CampaignRecipient, OutboundMessage, SenderId
from cpaas_cli.sending import idempotency, mo
from cpaas_cli.sending import service as sending

Q = OutboundMessage.__table__


@dataclass
class Message:
    """One message of a request, its text and label already checked (``service.check_*``)."""

    sender: str
    to: list[str]  # as given: E.164 digits without '+'
    text: str
    label: str
    channel: str = "sms"
    flash: bool = False
    accept_mo: bool = False  # the handset's replies are called back (sending/mo.py)


@dataclass
class Request:
    """One API request: its messages, its caller and its ``Idempotency-Key`` (when given)."""

    company_id: int
    api_key_id: int
    messages: list[Message]
    actor: str = "api"  # the key's user, for the audit trail of what the request writes
    where: str = ""  # a prefix for error messages: "messages[{}]: " for a batch body
    key: str | None = None
    digest: str = ""


@dataclass
class Done:
    """A request's outcome: its messages sent, or the stored answer of its key (a replay)."""

    sent: list[sending.Sent] = field(default_factory=list)
    answer: dict[str, Any] | None = None
    replay: tuple[int, dict[str, Any]] | None = None


Answer = Callable[[list[sending.Sent]], dict[str, Any]]


class _Shared(Exception):
    """A shared campaign could not start as a whole: its requests go one by one."""


@dataclass
class _Plan:
    index: int
    sender: SenderId
    numbers: list[str]
    refused: list[tuple[str, str]]


class Lookups:
    """What the requests ask the same, read once and kept ``ttl`` seconds: sender IDs,
    company holds, MO modes, moderation and the agreements' rate trees (for the credit
    estimate; the charge itself is rated by dispatch on the trees of the moment). A
    writer keeps one for its life, so a change to these reaches the API within ``ttl``
    seconds in any process (as the API-key cache does); ``ttl=0`` reads them once per
    group. Errors are kept too (a sender ID that does not exist)."""

    def __init__(self, ttl: float = 1.0, clock=time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self.session: Session | None = None
        self._kept: dict[tuple, tuple[float, Any]] = {}

    def bind(self, session: Session) -> Lookups:
        self.session = session
        if self.ttl <= 0:
            self._kept.clear()
        return self

    def _get(self, key: tuple, read: Callable[[], Any]) -> Any:
        now = self.clock()
        hit = self._kept.get(key)
        if hit is None or now - hit[0] >= self.ttl:
            try:
                value: Any = read()
            except CpaasError as exc:
                value = exc
            hit = self._kept[key] = (now, value)
            if len(self._kept) > 100_000:
                self._kept.clear()
        if isinstance(hit[1], CpaasError):
            raise copy.copy(hit[1])  # a copy: the caller may prefix its message
        return hit[1]

    def sender(self, company_id: int, name: str, channel: str) -> SenderId:
        s = self.session

        def read() -> SenderId:
            sid = sending.sender_of(s, name, company_id=company_id, channel=channel)
            s.expunge(sid)  # kept beyond this session: a rollback of it must not expire the cached row
            return sid

        return self._get(("sender", company_id, name, channel), read)

    def refuse_if_held(self, company_id: int) -> None:
        s = self.session

        def read() -> None:
            try:
                holds.refuse_if_held(s, company_id, "send")
            except CpaasError as exc:
                raise Conflict(exc.message) from None

        self._get(("held", company_id), read)

    def check_mo(self, company_id: int, flash: bool) -> None:
        """acceptMO allowed for the company's message (``sending.mo.check``)."""
        s = self.session
        self._get(("mo", company_id, flash), lambda: mo.check(s, company_id, flash=flash))

    def moderated(self, c: Campaign) -> bool:
        s = self.session
        return self._get(("moderated", c.company_id), lambda: lifecycle.moderated(s, c))

    def has_callback(self, api_key_id: int) -> bool:
        """The key has a callback URL (its PREPARED callbacks are written with the queue rows).
        A URL set just now is seen within ``ttl``; until then a group's PREPARED events are not
        called back (its later events are: they look at the key's row when they happen)."""
        s = self.session
        return self._get(("callback", api_key_id), lambda: callbacks.has_callback(s, api_key_id))

    def snapshots(self, ag: Agreement, at) -> list:
        s = self.session
        return self._get(("snapshots", ag.id), lambda: catalog.agreement_snapshots(s, ag, at))


def send_requests(
    session: Session, requests: Sequence[Request], *, answer: Answer, lookups: Lookups | None = None
) -> list[Done | Exception]:
    """Write the requests (see the module text); one :class:`Done` or error per request, in order."""
    out: list[Done | Exception | None] = [None] * len(requests)
    # SQLite: the write lock first, so that another writer (serve's workers, the API-key
    # cache's last-use times) is waited for; a transaction that read first could not upgrade
    locking.write_lock(session)
    look = (lookups or Lookups(ttl=0)).bind(session)
    reserved: set[int] = set()  # requests whose key this transaction holds (a placeholder row)
    keys: set[tuple[int, str]] = set()
    groups: dict[tuple, list[_Plan]] = {}
    alone: list[int] = []
    later: list[int] = []
    for i, r in enumerate(requests):
        if r.key is not None:
            if (r.api_key_id, r.key) in keys:
                later.append(i)  # answered from the first one's record, once written
                continue
            keys.add((r.api_key_id, r.key))
            try:
                with session.begin_nested():
                    stored = idempotency.replay(session, api_key_id=r.api_key_id, key=r.key, digest=r.digest)
                    if stored is None:
                        idempotency.store(
                            session, api_key_id=r.api_key_id, key=r.key, digest=r.digest, status=0, response={}
                        )
            except IntegrityError:
                later.append(i)  # another process holds the key: read its answer after this group
                continue
            except CpaasError as exc:
                out[i] = exc
                continue
            if stored is not None:
                out[i] = Done(replay=stored)
                continue
            reserved.add(i)
        if len(r.messages) != 1:
            alone.append(i)
            continue
        try:
            plan = _plan(look, r, i)
        except CpaasError as exc:
            out[i] = _failed(session, r, i in reserved, exc)
            continue
        m = r.messages[0]
        gkey = (r.company_id, plan.sender.id, m.label, m.flash, m.accept_mo, r.api_key_id)
        groups.setdefault(gkey, []).append(plan)
    for plans in groups.values():
        session.info["actor"] = requests[plans[0].index].actor  # one key, so one user, per group
        try:
            with session.begin_nested():
                sent = _send_shared(session, [requests[p.index] for p in plans], plans, look)
        except (_Shared, CpaasError, IntegrityError):
            alone.extend(p.index for p in plans)
            continue
        for p, s in zip(plans, sent, strict=True):
            out[p.index] = _done(session, requests[p.index], [s], answer)
    for i in sorted(alone) + later:
        out[i] = _send_alone(session, requests[i], answer, reserved=i in reserved)
    return out  # type: ignore[return-value]


def _plan(look: Lookups, r: Request, index: int) -> _Plan:
    m = r.messages[0]
    try:
        sender = look.sender(r.company_id, m.sender, m.channel)
    except CpaasError as exc:
        exc.message = f"{r.where.format(0)}{exc.message}"
        raise
    look.refuse_if_held(r.company_id)
    if m.flash and sender.channel != "sms":
        raise sending.flash_problem()
    if m.accept_mo:
        look.check_mo(r.company_id, m.flash)
    numbers, refused = sending.recipients(m.to, sending.MAX_RECIPIENTS)
    return _Plan(index, sender, numbers, refused)


def _send_shared(session: Session, requests: list[Request], plans: list[_Plan], look: Lookups) -> list[sending.Sent]:
    """One campaign for requests of the same key, sender, label and flags; Sent per request."""
    first, sender = requests[0], plans[0].sender
    m0 = first.messages[0]
    wanted = {n for p in plans for n in p.numbers}
    blocked = {row[0] for row in session.connection().execute(blocked_phones(first.company_id, sender.sender, wanted))}
    sent: list[sending.Sent] = []
    rows: list[tuple] = []
    owners: list[int] = []
    texts = {r.messages[0].text for r in requests}
    shared_text = next(iter(texts)) if len(texts) == 1 else None
    for k, (r, p) in enumerate(zip(requests, plans, strict=True)):
        s = sending.Sent(label=m0.label, refused=list(p.refused))
        for number in p.numbers:
            if number in blocked:
                s.refused.append((number, "blocked by the stop list"))
            else:
                rows.append((number, destination(number), r.messages[0].text))
                owners.append(k)
        sent.append(s)
    if not rows:
        return sent
    ag = session.get(Agreement, sender.agreement_id)
    assert ag is not None
    c = sending.api_campaign(
        ag, sender, company_id=first.company_id, label=m0.label, text=shared_text, flash=m0.flash,
        api_key_id=first.api_key_id, accept_mo=m0.accept_mo, recipients=len(rows),
    )  # fmt: skip
    if look.moderated(c):  # held for the moderator: the campaigns' own path says so
        session.add(c)
        session.flush()
        names = ["phone", "country", "mcc", "mnc", "network", "values", "text"]
        flat = [(phone, *dest, None, text) for phone, dest, text in rows]
        columns = dict(zip(names, zip(*flat, strict=True), strict=True))
        bulk.writer(session).insert(CampaignRecipient.__table__, {**columns, "campaign_id": [c.id] * len(rows)})
        outcome = lifecycle.send(session, c)
    else:
        now = clock.now()
        outcome = materialise.start_literal(
            session, c, sender, rows, now, snaps=look.snapshots(ag, now), prepared=look.has_callback(first.api_key_id)
        )
    if not outcome.started and c.state in ("failed", "draft"):
        raise _Shared(outcome.reason or "insufficient credit")  # (start_literal wrote nothing)
    for s in sent:
        s.campaign_id, s.state = c.id, c.state
    if not outcome.started:
        for k, row in zip(owners, rows, strict=True):
            sent[k].pending.append(row[0])
        return sent
    queued = (
        session.connection().execute(sa.select(Q.c.id, Q.c.phone).where(Q.c.campaign_id == c.id).order_by(Q.c.id)).all()
    )
    if [p for _q, p in queued] != [row[0] for row in rows]:
        raise _Shared("queue rows do not follow the recipients' order")  # never seen; the lone path is exact
    for k, (qid, phone) in zip(owners, queued, strict=True):
        sent[k].queued.append((qid, phone))
    return sent


def _send_alone(session: Session, r: Request, answer: Answer, *, reserved: bool) -> Done | Exception:
    """One request in its own savepoint, as a lone request would be written."""
    session.info["actor"] = r.actor
    try:
        with session.begin_nested():
            if r.key is not None and not reserved:
                stored = idempotency.replay(session, api_key_id=r.api_key_id, key=r.key, digest=r.digest)
                if stored is not None:
                    return Done(replay=stored)
            sent = [_send_one(session, r, m, j) for j, m in enumerate(r.messages)]
            return _done(session, r, sent, answer, reserved=reserved)
    except IntegrityError:
        if r.key is None:
            raise
        stored = idempotency.replay(session, api_key_id=r.api_key_id, key=r.key, digest=r.digest)
        if stored is None:
            return Conflict(f"Idempotency-Key {r.key!r} is being used by a request in progress")
        return Done(replay=stored)
    except CpaasError as exc:
        return _failed(session, r, reserved, exc)


def _send_one(session: Session, r: Request, m: Message, j: int) -> sending.Sent:
    where = r.where.format(j)
    try:
        sid = sending.sender_of(session, m.sender, company_id=r.company_id, channel=m.channel)
    except CpaasError as exc:
        exc.message = f"{where}{exc.message}"
        raise
    numbers, refused = sending.recipients(m.to, sending.MAX_RECIPIENTS)
    out = sending.send(
        session, company_id=r.company_id, sender=sid, numbers=numbers, text=m.text, label=m.label, flash=m.flash,
        api_key_id=r.api_key_id, accept_mo=m.accept_mo,
    )  # fmt: skip
    out.refused = refused + out.refused
    return out


def _done(session: Session, r: Request, sent: list[sending.Sent], answer: Answer, *, reserved: bool = True) -> Done:
    body = answer(sent)
    if r.key is not None:
        if reserved:
            idempotency.update(session, api_key_id=r.api_key_id, key=r.key, status=202, response=body)
        else:
            idempotency.store(session, api_key_id=r.api_key_id, key=r.key, digest=r.digest, status=202, response=body)
    return Done(sent=sent, answer=body)


def _failed(session: Session, r: Request, reserved: bool, exc: CpaasError) -> CpaasError:
    """An error is not kept under the key: the same key may be tried again."""
    if reserved and r.key is not None:
        idempotency.forget(session, api_key_id=r.api_key_id, key=r.key)
    return exc
