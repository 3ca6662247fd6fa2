"""Rating of stored EDRs: `edr rate` (``rate_pending``), the dispatch worker's
final states and receipts (``rate_rows``, ``rate_and_charge``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.billing import ledger
from cpaas_cli.charging import vendor
from cpaas_cli.charging.plans import Plans
from cpaas_cli.charging.rater import RESULT_COLUMNS, Rater
from cpaas_cli.db import bulk
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.edr import Edr

EDR = Edr.__table__
CHUNK = 20_000  # EDRs per committed chunk of `edr rate`


def rate_rows(session: Session, rows: list[dict[str, Any]], plans: Plans | None = None) -> dict[str, int]:
    """Rate stored EDR rows (dicts with ``id``) and write everything; no commit."""
    rater = Rater(session, plans or Plans(session))
    results, charges = rater.rate(rows)
    done = [(r["id"], res) for r, res in zip(rows, results, strict=True) if res is not None]
    if done:
        bulk.writer(session).update_by_id(
            EDR,
            [i for i, _ in done],
            {k: [res[k] for _, res in done] for k in RESULT_COLUMNS},
            EDR.c.rating_state == "unrated",
        )
    # The vendor cost of rated EDRs of a connection that have none yet (ingested with --no-rate)
    costed = [r for r, res in zip(rows, results, strict=True) if res is not None and r.get("connection_id")]
    costed = [r for r in costed if r.get("vendor_cost") is None]
    if costed:
        got = vendor.row_costs(rater.plans.vendor, costed)
        bulk.writer(session).update_by_id(EDR, [r["id"] for r in costed], got)
    for c in charges:
        c.pop("_row")
    ledger.post(session, charges, check_credit=False)  # credit was checked under the lock
    return _count(results)


def _count(results: list[dict[str, Any] | None]) -> dict[str, int]:
    out = {"rated": 0, "rejected": 0, "pending": 0}
    for r in results:
        out["pending" if r is None else r["rating_state"]] += 1
    return out


def _select_rows(session: Session, where: list[Any], limit: int) -> list[dict[str, Any]]:
    q = sa.select(EDR).where(*where).order_by(EDR.c.event_at, EDR.c.id).limit(limit)
    return [dict(m) for m in session.execute(q).mappings()]


def rate_pending(session: Session, *, agreement_id: int | None = None, chunk: int = CHUNK) -> dict[str, int]:
    """Rate every unrated EDR (of one agreement when given). Commits per chunk
    (restartable: a chunk is applied whole or not at all)."""
    total = {"rated": 0, "rejected": 0, "pending": 0}
    plans = Plans(session)
    last = (datetime.min.replace(tzinfo=UTC), 0)
    while True:
        where = [
            EDR.c.rating_state == "unrated",
            sa.or_(EDR.c.event_at > last[0], sa.and_(EDR.c.event_at == last[0], EDR.c.id > last[1])),
        ]
        if agreement_id is not None:
            where.append(EDR.c.agreement_id == agreement_id)
        # Peek, lock the agreements, then re-read: another process may have rated some.
        peek = _select_rows(session, where, chunk)
        if not peek:
            break
        ledger.lock(session, {r["agreement_id"] for r in peek if r["agreement_id"]})
        ids = [r["id"] for r in peek]
        rows = [
            dict(m)
            for m in session.execute(
                sa.select(EDR)
                .where(EDR.c.id.in_(ids), EDR.c.rating_state == "unrated")
                .order_by(EDR.c.event_at, EDR.c.id)
            ).mappings()
        ]
        last = (peek[-1]["event_at"], peek[-1]["id"])
        if rows:
            got = rate_rows(session, rows, plans)
            for k, v in got.items():
                total[k] += v
        session.commit()
    return total


def rate_and_charge(
    session: Session, edrs: Iterable[int], *, event: str | None = None, at: datetime | None = None
) -> dict[str, int]:
    """For the dispatch worker (a receipt, a close without one): mark ``event``
    (submitted|delivered) on the EDRs that lack its time, then rate those
    still unrated. No commit."""
    ids = list(edrs)
    if event not in (None, "submitted", "delivered"):
        raise InvalidInput("event must be submitted or delivered")
    now = at or clock.now()
    if event:
        col = EDR.c[f"{event}_at"]
        session.execute(sa.update(EDR).where(EDR.c.id.in_(ids), col.is_(None)).values({col.name: now, "status": event}))
    peek = session.execute(sa.select(EDR.c.agreement_id).where(EDR.c.id.in_(ids))).scalars()
    ledger.lock(session, {a for a in peek if a})
    rows = [
        dict(m)
        for m in session.execute(
            sa.select(EDR).where(EDR.c.id.in_(ids), EDR.c.rating_state == "unrated").order_by(EDR.c.event_at, EDR.c.id)
        ).mappings()
    ]
    return rate_rows(session, rows)
