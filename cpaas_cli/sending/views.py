"""Reading messages back: one by id (status history, parts, cost), a page by
label / time / status, and waiting for a message's submit result (sync sends).

A message is its queue row (``outbound_message``) and, once a worker claimed
it, its EDR (``external_id = "om:<queue id>"``). Its ``status`` is the EDR's
(prepared … seen) or ``queued`` before the claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli.dispatch.queue import QueueState
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.edr import STATUSES, Edr
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

Q = OutboundMessage.__table__
E = Edr.__table__
C = Campaign.__table__
HISTORY = ("prepared", "billed", "submitted", "delivered", "undelivered", "failed", "seen")
MESSAGE_STATUSES = ("queued", *STATUSES)
MAX_PAGE = 1000
# The queue states whose submit result is known (a sync send stops waiting).
SETTLED = (QueueState.SUBMITTED, QueueState.DONE, QueueState.FAILED, QueueState.UNKNOWN)

_EDR_COLS = (
    E.c.status,
    E.c.vendor_message_id.label("edr_vendor_id"),
    E.c.vendor_error,
    E.c.cost,
    E.c.currency,
    E.c.rating_state,
    E.c.rating_reason,
    *[E.c[f"{h}_at"] for h in HISTORY],
)
_COLS = (
    Q.c.id,
    Q.c.campaign_id,
    C.c.company_id,
    Q.c.phone,
    Q.c.sender,
    Q.c.text,
    Q.c.encoding,
    Q.c.segments,
    Q.c.flash,
    Q.c.label,
    Q.c.api_key_id,
    Q.c.state,
    Q.c.vendor_message_id,
    Q.c.error,
    Q.c.created_at,
    *_EDR_COLS,
)


def _joined() -> Any:
    on = E.c.external_id == sa.literal("om:") + sa.cast(Q.c.id, sa.String)
    return Q.join(C, C.c.id == Q.c.campaign_id).outerjoin(E, on)


def message_dict(r: Any, *, with_text: bool = True) -> dict[str, Any]:
    m = r._mapping
    history = [{"status": h, "at": iso(m[f"{h}_at"])} for h in HISTORY if m[f"{h}_at"] is not None]
    history.sort(key=lambda x: x["at"])
    out = {
        "id": str(m["id"]),
        "to": m["phone"],
        "from": m["sender"],
        "label": m["label"],
        "status": m["status"] or ("failed" if m["state"] == QueueState.FAILED else "queued"),
        "queue_state": m["state"],
        "campaign_id": m["campaign_id"],
        "encoding": m["encoding"],
        "parts": m["segments"],
        "flash": m["flash"],
        "vendor_message_id": m["edr_vendor_id"] or m["vendor_message_id"],
        "error": m["error"] or m["vendor_error"] or (m["rating_reason"] if m["rating_state"] == "rejected" else None),
        "cost": format_micros(m["cost"]) if m["cost"] is not None else None,
        "currency": m["currency"],
        "created_at": iso(m["created_at"]),
        "history": history,
    }
    if with_text:
        out["text"] = m["text"]
    return out


def get_message(session: Session, message_id: str) -> tuple[int, dict[str, Any]]:
    """(company id, message) of a queue id; NotFound otherwise."""
    if not message_id.isdigit() or len(message_id) > 18:
        raise NotFound(f"message {message_id[:30]!r} not found")
    row = (
        session.connection().execute(sa.select(*_COLS).select_from(_joined()).where(Q.c.id == int(message_id))).first()
    )
    if row is None:
        raise NotFound(f"message {message_id!r} not found")
    return row.company_id, message_dict(row)


def list_messages(
    session: Session,
    *,
    company_id: int,
    label: str | None = None,
    since: datetime | None = None,
    till: datetime | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the company's API messages, newest first; returns (messages, next cursor)."""
    problems = []
    if status is not None and status not in MESSAGE_STATUSES:
        problems.append(Problem("status", f"one of {', '.join(MESSAGE_STATUSES)}"))
    if cursor is not None and (not cursor.isdigit() or len(cursor) > 18):
        problems.append(Problem("cursor", "not a cursor of this list"))
    if not 1 <= limit <= MAX_PAGE:
        problems.append(Problem("limit", f"1 to {MAX_PAGE}"))
    if problems:
        raise InvalidInput(str(problems[0]), problems=problems)
    q = sa.select(*_COLS).select_from(_joined()).where(Q.c.api_key_id.isnot(None), C.c.company_id == company_id)
    if label is not None:
        q = q.where(Q.c.label == label)
    if since is not None:
        q = q.where(Q.c.created_at >= since)
    if till is not None:
        q = q.where(Q.c.created_at < till)
    if status == "queued":
        q = q.where(E.c.id.is_(None), Q.c.state != QueueState.FAILED)
    elif status is not None:
        q = q.where(E.c.status == status)
    if cursor is not None:
        q = q.where(Q.c.id < int(cursor))
    rows = session.connection().execute(q.order_by(Q.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [message_dict(r, with_text=False) for r in rows], (str(rows[-1].id) if more else None)


def submit_results(engine: Engine, ids: Sequence[int]) -> tuple[dict[int, dict], bool]:
    """One look at the queue rows of ``ids``: {id: {state, vendor_message_id, error}}, and
    whether every one has its submit result."""
    got: dict[int, dict] = {}
    with engine.connect() as conn:
        for qid, state, vid, err, verr in conn.execute(
            sa.select(Q.c.id, Q.c.state, Q.c.vendor_message_id, Q.c.error, E.c.vendor_error)
            .select_from(Q.outerjoin(E, E.c.external_id == sa.literal("om:") + sa.cast(Q.c.id, sa.String)))
            .where(Q.c.id.in_(list(ids)))
        ):
            got[qid] = {"state": state, "vendor_message_id": vid, "error": err or verr}
    return got, all(got.get(i, {}).get("state") in SETTLED for i in ids)


def wait_submitted(engine: Engine, ids: Sequence[int], *, timeout: float, poll: float = 0.02) -> dict[int, dict]:
    """Wait until every queue row of ``ids`` has its submit result (a ``serve`` worker
    of any process sends it and stores the vendor's submit_sm_resp), at most ``timeout``
    seconds; returns {id: {state, vendor_message_id, error}} (state still queued/claimed/sending
    for those not settled in time)."""
    deadline = time.monotonic() + timeout
    while True:
        got, settled = submit_results(engine, ids)
        if settled or time.monotonic() >= deadline:
            return got
        time.sleep(poll)
        poll = min(poll * 1.5, 0.2)
