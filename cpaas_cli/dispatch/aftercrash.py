"""What happens to the messages of a worker that died (SIGKILL, power loss).

A dead worker's queue rows are in one of two states (see ``flow.py``):

* ``claimed``: an EDR exists and is charged, nothing was sent. Back to
  ``queued``; the next claim reuses the EDR and its charge.
* ``sending``: the submit may have reached the SMSC, but its submit_sm_resp
  was not stored. SMPP 3.4 has no idempotency, so the connection decides
  (``after_crash``, SPEC AMB-27):

  - ``resend`` (default, at least once, for OTP and transactional traffic):
    back to ``queued``; it is sent again and may reach the handset twice.
    These are the run's ``possible_duplicates``, at most one window per worker.
  - ``hold`` (marketing traffic, where a duplicate is worse than a delay):
    ``unknown``. The campaign does not complete while it has such messages;
    the operator releases them (sent again, ``cpaas campaign release-unknown``)
    or fails them (``cpaas campaign fail-unknown``: the EDR fails and its
    submitted-rule charge is given back, as for a submit the SMSC refused).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.charging import refunds
from cpaas_cli.dispatch import queue
from cpaas_cli.dispatch.queue import QueueState
from cpaas_cli.models.campaigns import OutboundMessage as QueueRow
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.edr import Edr
from cpaas_cli.otp import results as otp_results

Q = QueueRow.__table__
E = Edr.__table__
VC = VendorConnection.__table__
FINAL = ("delivered", "undelivered", "failed", "seen")
CHUNK = 5000

log = logging.getLogger("cpaas.serve")


def host_id() -> str:
    return socket.gethostname()[:60]


def _modes(session: Session) -> tuple[dict[int, str], str]:
    """after_crash per connection id, and the mode for rows without a connection
    (the default route: the only enabled SMPP connection; else resend)."""
    rows = session.execute(sa.select(VC.c.id, VC.c.after_crash, VC.c.enabled, VC.c.kind)).all()
    modes = {i: m or "resend" for i, m, _e, _k in rows}
    enabled = [m for _i, m, e, k in rows if e and k == "smpp"]
    return modes, (enabled[0] or "resend") if len(enabled) == 1 else "resend"


def settle(session: Session, dead: list[int], now: datetime) -> dict[str, int]:
    """Put the dead workers' rows ``dead`` (queue ids) back, or hold them (see the
    module docstring). Returns counts; no commit."""
    out = {"recovered": 0, "unsent": 0, "unacknowledged": 0, "held": 0}
    if not dead:
        return out
    modes, default = _modes(session)
    claimed, resend, hold = [], [], []
    for start in range(0, len(dead), CHUNK):
        for qid, state, conn in session.execute(
            sa.select(Q.c.id, Q.c.state, Q.c.connection_id).where(Q.c.id.in_(dead[start : start + CHUNK]))
        ):
            if state == QueueState.CLAIMED:
                claimed.append(qid)
            elif state == QueueState.SENDING:
                (hold if modes.get(conn, default) == "hold" else resend).append(qid)
    for ids, state, key in (
        (claimed, QueueState.QUEUED, "unsent"),
        (resend, QueueState.QUEUED, "unacknowledged"),
        (hold, QueueState.UNKNOWN, "held"),
    ):
        got = queue.recover(session, ids, state, now=now)
        out[key] += got
        out["recovered"] += got
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(session: Session, *, stale_after: float = 600.0, now: datetime | None = None) -> dict[str, int]:
    """Take back the rows of dead workers: those of this host whose process is
    gone, and any claim older than ``stale_after`` seconds; :func:`settle`
    requeues them or holds them (per connection). Returns counts: ``unsent``
    (claimed, never sent), ``unacknowledged`` (sent again without a stored
    submit_sm_resp: possible duplicates), ``held`` (state unknown). No commit."""
    now = now or clock.now()
    me = host_id()
    rows = session.execute(
        sa.select(Q.c.id, Q.c.claimed_by, Q.c.claimed_at).where(Q.c.state.in_(queue.IN_FLIGHT))
    ).all()
    dead = []
    for qid, who, at in rows:
        host, _, rest = (who or "").partition(":")
        pid = rest.partition(":")[0]
        if host == me and pid.isdigit() and int(pid) == os.getpid():
            continue
        if (host == me and pid.isdigit() and not _alive(int(pid))) or (
            at is not None and at < now - timedelta(seconds=stale_after)
        ):
            dead.append(qid)
    got = settle(session, dead, now)
    if not dead:
        return got
    record(session, action="recover", object_type="outbound_message", new={"rows": len(dead), **got})
    log.warning(
        "recovered %d messages of dead workers: %d never sent, %d sent again without submit_sm_resp, %d held as unknown",
        got["recovered"],
        got["unsent"],
        got["unacknowledged"],
        got["held"],
    )
    return got


def _unknown(session: Session, campaign_id: int) -> list[int]:
    return list(
        session.execute(
            sa.select(Q.c.id).where(Q.c.campaign_id == campaign_id, Q.c.state == QueueState.UNKNOWN).order_by(Q.c.id)
        ).scalars()
    )


def release_unknown(session: Session, campaign_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Held messages of a campaign back to the queue: sent again (possible
    duplicates), never charged again. No commit."""
    now = now or clock.now()
    ids = _unknown(session, campaign_id)
    queue.release_unknown(session, ids, now=now)
    if ids:
        record(session, action="release_unknown", object_type="campaign", object_id=campaign_id, new={"rows": len(ids)})
    return {"campaign": campaign_id, "released": len(ids)}


def fail_unknown(
    session: Session,
    campaign_id: int,
    *,
    now: datetime | None = None,
    why: str = "held after a crash, failed by the operator",
) -> dict[str, Any]:
    """Held messages of a campaign fail: queue row and EDR ``failed``, and the
    submitted-rule charge given back (``charging/refunds.py``). No commit."""
    from cpaas_cli.charging.plans import Plans

    now = now or clock.now()
    ids = _unknown(session, campaign_id)
    edr_ids: list[int] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        queue.fail_unknown(session, chunk, f"not sent: {why}"[:200], now=now)
        exts = [queue.external_id(q) for q in chunk]
        edr_ids += list(
            session.execute(sa.select(E.c.id).where(E.c.external_id.in_(exts), E.c.status.notin_(FINAL))).scalars()
        )
        session.execute(
            sa.update(E)
            .where(E.c.external_id.in_(exts), E.c.status.notin_(FINAL))
            .values(status="failed", failed_at=now, vendor_error="after_crash")
        )
        callbacks.record_edrs(session, external_ids=exts, now=now, status="failed", changed=True)
    got = refunds.refund_unsent(session, edr_ids, Plans(session), now=now, why=why) if edr_ids else {}
    otp_results.record(session, ids, "FAILED", now=now)  # after the refund: not billable
    if ids:
        record(
            session,
            action="fail_unknown",
            object_type="campaign",
            object_id=campaign_id,
            new={"rows": len(ids), "refunded": got.get("refunded", 0)},
        )
    return {"campaign": campaign_id, "failed": len(ids), "refunded": got.get("refunded", 0)}
