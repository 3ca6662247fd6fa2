"""A rerate unit's stored state around its period: the scale counters of later periods
(read, never rewritten), and at the unit's end the period's counters and pack usage.
Shared by the EDR units (``loop.py``) and the reseller-level units (``levels.py``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.billing.periods import Period
from cpaas_cli.models.billing import PackUsage, ScaleCounter
from cpaas_cli.rating import engine as en

SCALE_COUNTERS = ScaleCounter.__table__
PCK = PackUsage.__table__


def later_counters(session: Session, ag_id: int, p: Period) -> dict[tuple, int]:
    """The agreement's scale counters of periods after ``p``: read, not rewritten, by a unit;
    they serve an event charged more than STRADDLE_LAG after it was prepared, which stays
    in the unit of ``p``."""
    c = SCALE_COUNTERS.c
    q = sa.select(c.node_key, c.group_value, c.period_start, c.quantity).where(
        c.agreement_id == ag_id, c.period_start > p.start
    )
    return {(node, grp, start): qty for node, grp, start, qty in session.execute(q)}


def write_period_state(session: Session, ag_id: int, p: Period, st: en.State, pack_ids: list[int]) -> None:
    """A unit's end: the period's scale counters replaced by the recomputed ones, pack usage set."""
    session.execute(
        sa.delete(SCALE_COUNTERS).where(
            SCALE_COUNTERS.c.agreement_id == ag_id, SCALE_COUNTERS.c.period_start == p.start
        )
    )
    fresh = [
        {"agreement_id": ag_id, "node_key": k[0], "group_value": k[1], "period_start": k[2], "quantity": q}
        for k, q in st.counters.items()
        if k[2] == p.start and q
    ]
    if fresh:
        session.execute(sa.insert(SCALE_COUNTERS), fresh)
    for pid in pack_ids:
        used = st.pack_used.get(pid, 0)
        if session.execute(sa.update(PCK).where(PCK.c.enabled_service_id == pid).values(used=used)).rowcount == 0:
            session.execute(sa.insert(PCK).values(enabled_service_id=pid, used=used))
