"""The outbound queue's states and every change of them.

A queue row (``outbound_message``, one per message of a running campaign)
moves through :class:`QueueState`::

    queued -> claimed -> sending -> submitted -> done
                  \\          \\           \\
                   failed      unknown     done (no receipt: expired)

* ``queued``: waiting for a worker (``claim``); a campaign's queued rows fail
  together when its credit runs out (:func:`fail_queued`).
* ``claimed``: a worker created (and charged) its EDR; nothing was sent.
* ``sending``: released to the gateway (recorded before the submit leaves);
  its submit_sm_resp is not stored yet (``flow.py``).
* ``submitted``: the SMSC accepted it; waiting for a receipt.
* ``unknown``: a ``sending`` row of a crashed worker on a connection with
  ``after_crash = hold``, for the operator to release or fail (``aftercrash.py``).
* ``done`` / ``failed``: final.

Every UPDATE of the ``state`` column goes through a function of this module
(each one conditional on the states it may leave where a race is possible),
so the life of a queue row can be read in one place. None commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.models.campaigns import OutboundMessage as QueueRow

Q = QueueRow.__table__
CHUNK = 5000  # ids per statement


class QueueState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    SENDING = "sending"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"
    DONE = "done"
    FAILED = "failed"


# A row of a dead worker: claimed (never sent) or sending (may have been sent).
IN_FLIGHT = (QueueState.CLAIMED, QueueState.SENDING)


def external_id(queue_id: int) -> str:
    """The ``external_id`` of a queue row's EDR (unique: one EDR per message)."""
    return f"om:{queue_id}"


def _chunks(ids: Sequence[int]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# ---------------------------------------------------------------- claiming


def claim(session: Session, ids: Sequence[int], *, worker: str, now: datetime, columns: Sequence[Any]) -> list:
    """queued -> claimed for the rows ``ids`` still queued; returns ``columns`` of those claimed."""
    return session.execute(
        sa.update(Q)
        .where(Q.c.id.in_(ids), Q.c.state == QueueState.QUEUED)
        .values(state=QueueState.CLAIMED, claimed_by=worker, claimed_at=now, attempts=Q.c.attempts + 1, updated_at=now)
        .returning(*columns)
    ).all()


def settle_reclaimed(session: Session, queue_id: int, edr_status: str) -> None:
    """A recovered claim whose EDR went further (its submit_sm_resp was stored:
    ``submitted``; or final): the row follows its EDR and is not sent again."""
    if edr_status == "submitted":
        state = QueueState.SUBMITTED
    else:
        state = QueueState.DONE if edr_status != "failed" else QueueState.FAILED
    session.execute(sa.update(Q).where(Q.c.id == queue_id).values(state=state))


def mark_sending(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    """claimed -> sending: released to the gateway once this commits (``flow.py``)."""
    session.execute(
        sa.update(Q)
        .where(Q.c.id.in_(ids), Q.c.state == QueueState.CLAIMED)
        .values(state=QueueState.SENDING, updated_at=now)
    )


def give_back(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    """claimed -> queued: claimed messages never released (a clean stop)."""
    for chunk in _chunks(ids):
        session.execute(
            sa.update(Q)
            .where(Q.c.id.in_(chunk), Q.c.state == QueueState.CLAIMED)
            .values(state=QueueState.QUEUED, claimed_by=None, updated_at=now)
        )


# ---------------------------------------------------------------- results


def mark_submitted(session: Session, accepted: Sequence[tuple[int, str]], *, now: datetime) -> None:
    """claimed/sending -> submitted, with the vendor message id: (queue id, vendor id) pairs."""
    session.execute(
        sa.update(Q)
        .where(Q.c.id == sa.bindparam("b_q"), sa.or_(Q.c.state == QueueState.CLAIMED, Q.c.state == QueueState.SENDING))
        .values(state=QueueState.SUBMITTED, vendor_message_id=sa.bindparam("b_v"), updated_at=now),
        [{"b_q": q, "b_v": v} for q, v in accepted],
    )


def fail(session: Session, queue_id: int, error: str, *, now: datetime) -> None:
    """A message that is not (or no longer) sent: -> failed with the reason."""
    session.execute(sa.update(Q).where(Q.c.id == queue_id).values(state=QueueState.FAILED, error=error, updated_at=now))


def fail_queued(session: Session, campaign_id: int, error: str, *, now: datetime) -> None:
    """queued -> failed for every queued message of a campaign."""
    session.execute(
        sa.update(Q)
        .where(Q.c.campaign_id == campaign_id, Q.c.state == QueueState.QUEUED)
        .values(state=QueueState.FAILED, error=error, updated_at=now)
    )


def mark_done(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    """-> done for messages whose EDR became final (not for rows final already)."""
    session.execute(
        sa.update(Q)
        .where(Q.c.id == sa.bindparam("b_q"), Q.c.state != QueueState.DONE, Q.c.state != QueueState.FAILED)
        .values(state=QueueState.DONE, updated_at=now),
        [{"b_q": q} for q in ids],
    )


def expire(session: Session, ids: Sequence[int]) -> None:
    """submitted -> done: the receipt never came (the EDR is closed as undelivered)."""
    session.execute(
        sa.update(Q).where(Q.c.id.in_(ids), Q.c.state == QueueState.SUBMITTED).values(state=QueueState.DONE)
    )


# ---------------------------------------------------------------- after a crash


def recover(session: Session, ids: Sequence[int], state: QueueState, *, now: datetime) -> int:
    """claimed/sending rows of a dead worker -> ``state`` (queued or unknown); returns the count."""
    got = 0
    for chunk in _chunks(ids):
        got += session.execute(
            sa.update(Q)
            .where(Q.c.id.in_(chunk), Q.c.state.in_(IN_FLIGHT))
            .values(state=state, claimed_by=None, updated_at=now)
        ).rowcount
    return got


def release_unknown(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    """unknown -> queued: held messages sent again."""
    for chunk in _chunks(ids):
        session.execute(
            sa.update(Q)
            .where(Q.c.id.in_(chunk), Q.c.state == QueueState.UNKNOWN)
            .values(state=QueueState.QUEUED, updated_at=now)
        )


def fail_unknown(session: Session, ids: Sequence[int], error: str, *, now: datetime) -> None:
    """unknown -> failed: held messages the operator gave up."""
    session.execute(
        sa.update(Q)
        .where(Q.c.id.in_(ids), Q.c.state == QueueState.UNKNOWN)
        .values(state=QueueState.FAILED, error=error, updated_at=now)
    )
