"""The vendor's answer to OTP messages (SPEC OTP-06): SENT or FAILED, stored once.

Whoever stores a queue row's submit result calls :func:`record` with the queue
ids in the same transaction: the dispatch worker for a batch (``dispatch/
results.py``, ``dispatch/claim.py``, ``dispatch/aftercrash.py``), and the API's
sync wait or a lookup for one request (``requests.record_result``) in case no
worker stored it. The one owner of "the result was recorded" is a conditional
UPDATE of the request's ``sent_status`` from NULL: only the rows it moves get
their code masked (queue row and campaign) and their result callback (kind
``otp``), so a result is written once whoever comes second. One statement per
batch finds the OTP requests among the queue rows (indexed on ``queue_id``); a
batch of campaign messages pays that probe and writes nothing. No commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.callbacks import outbox
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.otp import codes

R = OtpRequest.__table__
I = OtpIntegration.__table__  # noqa: E741
Q = OutboundMessage.__table__
C = Campaign.__table__
E = Edr.__table__
CHUNK = 5000  # queue ids per statement (a worker's batch is at most a few hundred)
STATUSES = ("SENT", "FAILED")


def destination(row: Any) -> dict[str, str]:
    """The request's destination as the API names it: ``number`` (SMS) or ``email``."""
    return {"email" if getattr(row, "channel", "sms") == "email" else "number": row.number}


def edr_key(row: Any) -> str:
    """The external id of the request's EDR: ``om:<queue id>`` (written by the dispatch claim)
    or, for an e-mail request, ``otp:<request id>`` (``otp/email_channel.py``)."""
    if getattr(row, "channel", "sms") == "email":
        return f"otp:{row.request_id}"
    return f"om:{row.queue_id}"


def payload(row: Any, status: str, billable: bool | None) -> dict[str, Any]:
    """The seed's callback body: the request, its number (``email`` for an e-mail request),
    the status, when the request came (epoch s)."""
    return {
        "requestId": row.request_id,
        **destination(row),
        "status": status,
        "timestamp": int(row.created_at.timestamp()),
        "billable": billable,
    }


def billable_of(charge: Any) -> bool | None:
    """True once the message was charged, False when rating refused it or it was refunded; None until known."""
    if charge is None or charge.rating_state == "unrated":
        return None
    if charge.rating_state == "rejected":
        return False
    return bool(charge.cost)


def record(session: Session, queue_ids: Sequence[int], status: str, *, now: datetime) -> list[int]:
    """The result ``status`` (SENT or FAILED) of the OTP requests whose message is one of
    ``queue_ids`` and whose result is not recorded yet: ``sent_status``/``sent_at`` (FAILED
    also closes a pending request as failed), the code masked in the queue row and the
    campaign, and the result callback when the integration (or the test request) has a
    callback URL. Returns
    the ids of the requests it recorded (none for rows recorded already)."""
    if status not in STATUSES:
        raise ValueError(f"an OTP send result is one of {STATUSES}, not {status!r}")
    ids = sorted(set(queue_ids))
    values: dict[str, Any] = {"sent_status": status, "sent_at": now}
    if status == "FAILED":
        pending = R.c.state == "pending"
        values["state"] = sa.case((pending, sa.literal("failed")), else_=R.c.state)
        values["closed_at"] = sa.case((pending, sa.literal(now, R.c.closed_at.type)), else_=R.c.closed_at)
    got: list[Any] = []
    for start in range(0, len(ids), CHUNK):
        got += session.execute(
            sa.update(R)
            .where(R.c.queue_id.in_(ids[start : start + CHUNK]), R.c.sent_status.is_(None))
            .values(values)
            .returning(R.c.id, R.c.request_id, R.c.integration_id, R.c.number, R.c.created_at, R.c.queue_id,
                       R.c.campaign_id, R.c.callback_url)
        ).all()  # fmt: skip
    if not got:
        return []
    got.sort(key=lambda r: r.id)
    ints = {
        r.id: r
        for r in session.execute(
            sa.select(I.c.id, I.c.template, I.c.digits, I.c.callback_url).where(
                I.c.id.in_({r.integration_id for r in got})
            )
        )
    }
    hidden: dict[str, tuple[list[int], list[int]]] = {}  # masked text -> (queue ids, campaign ids)
    for r in got:
        integration = ints.get(r.integration_id)
        if integration is not None:
            qs, cs = hidden.setdefault(codes.masked(integration.template, integration.digits), ([], []))
            qs.append(r.queue_id)
            if r.campaign_id is not None:
                cs.append(r.campaign_id)
    for text, (qs, cs) in hidden.items():
        session.execute(sa.update(Q).where(Q.c.id.in_(qs)).values(text=text))
        if cs:
            session.execute(sa.update(C).where(C.c.id.in_(cs)).values(text=text))
    # to the integration's callback URL, or a test request's own status URL
    told = [r for r in got if r.callback_url or (ints.get(r.integration_id) is not None
                                                 and ints[r.integration_id].callback_url)]  # fmt: skip
    if told:
        charges = {
            c.external_id: c
            for c in session.execute(
                sa.select(E.c.external_id, E.c.rating_state, E.c.cost).where(
                    E.c.external_id.in_([f"om:{r.queue_id}" for r in told])
                )
            )
        }
        rows = [(r, billable_of(charges.get(f"om:{r.queue_id}"))) for r in told]
        outbox.record_otps(
            session,
            [(r.integration_id, r.request_id, r.number, status, payload(r, status, b)) for r, b in rows],
            now=now,
        )
    return [r.id for r in got]
