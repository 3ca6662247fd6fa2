"""OTP sends and checks of the HTTP API, many in one transaction (``db/groupcommit.py``).

The 2FA routes hand their work to the process's OTP writer, which takes every
request waiting and runs this module's :func:`handle` on them in one session,
then commits once and answers each request. So the requests do not queue one
by one for SQLite's single write lock beside the dispatch workers, and the
sends of one integration in a group share one light campaign (the send path's
``sending.batch``).

Each send runs in a savepoint of its own: a refused send or a malformed
check leaves nothing. A send goes in three steps (``otp.requests``): every
send is checked and its request row written (``prepare``: the per-number limit
and the fraud guard see the sends of the group before it), then the group's
messages go on the queue together (``queue``), then each row gets its message
(``finish``: a send that did not go, e.g. for credit, loses its row and
answers its error). A check (``verify``) raises only before it writes, so it
needs no savepoint; it is counted and answered after the commit, right or wrong.

The fraud guard writes what it must keep even for a refused send (a block,
the count of refused sends); in a group those writes are made in the group's
transaction once the refused send's savepoint is rolled back
(``guard.DEFERRED``), and a block's e-mail goes after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.db import locking
from cpaas_cli.errors import Conflict, CpaasError, Denied, refusal
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.models.otp import OtpIntegration
from cpaas_cli.otp import guard
from cpaas_cli.otp import requests as otp

log = logging.getLogger("cpaas.otp.group")


@dataclass(frozen=True)
class Send:
    """``POST /api/v1/2fa/{verify,send}/sms``: a code to ``number`` (the client's ``code``, client side)."""

    integration_id: int
    key_hash: str  # the hash of the secret the caller's key was checked against
    side: str  # the route's side: platform or client
    number: str
    code: str | None = None


@dataclass(frozen=True)
class Check:
    """``POST /api/v1/2fa/verify``: the code a user typed for a request."""

    integration_id: int
    key_hash: str
    request_id: str
    code: str | None


def handle(session: Session, items: Sequence[Send | Check], *, keys: IdentityKeys) -> list[Any]:
    """One answer per item, in order: ``otp.Accepted`` for a send, ``otp.Checked`` for a check,
    or the error to raise to its caller. Does not commit (the group writer does)."""
    # SQLite: the write lock before the first read, or a write committed meanwhile by another
    # connection (a worker, a guard notice) would make this transaction's first write fail
    locking.write_lock(session)
    now = clock.now()
    session.info.setdefault("actor", "api 2fa")
    out: list[Any] = [None] * len(items)
    pending: list[otp.Pending] = []
    where: list[int] = []
    for i, item in enumerate(items):
        if isinstance(item, Check):  # raises only before it writes: no savepoint needed
            try:
                integration = _active(session, item.integration_id, item.key_hash)
                out[i] = otp.verify(session, keys, integration, request_id=item.request_id, code=item.code, now=now)
            except CpaasError as exc:
                out[i] = exc
            continue
        deferred: list = []
        session.info[guard.DEFERRED] = deferred
        try:
            with session.begin_nested():
                integration = _active(session, item.integration_id, item.key_hash)
                if integration.mode != item.side:
                    other = "verify" if integration.mode == "platform" else "send"
                    raise refusal(Conflict, f"this integration is {integration.mode} side: "
                                  f"POST /api/v1/2fa/{other}/sms", "otp-wrong-mode")  # fmt: skip
                pending.append(otp.prepare(session, keys, integration, number=item.number, code=item.code, now=now))
                where.append(i)
        except CpaasError as exc:
            out[i] = exc
        finally:
            session.info.pop(guard.DEFERRED, None)
        for work in deferred:  # the guard's writes for a refused send: kept, in the group's transaction
            try:
                with session.begin_nested():
                    work(session)
            except Exception:  # noqa: BLE001 - a lost refusal count must not cost the group its sends
                log.exception("otp guard: a deferred write failed")
    if pending:
        sent = otp.queue(session, pending)
        for i, got in zip(where, otp.finish(session, pending, sent, now=now), strict=True):
            out[i] = got
    return out


class StaleKey(Denied):
    """The caller's key was replaced or its integration deleted since the key was checked (HTTP 401)."""


def _active(session: Session, integration_id: int, key_hash: str) -> OtpIntegration:
    """The integration as this transaction sees it: a key replaced or an integration disabled a
    moment ago (the API's key cache is a second old at most) is refused here."""
    row = session.get(OtpIntegration, integration_id)
    if row is None or row.secret_hash != key_hash:
        raise StaleKey("unknown API key")
    if row.state != "active":
        raise refusal(Denied, f"the 2FA integration is {row.state}, not active", "integration-inactive")
    return row
