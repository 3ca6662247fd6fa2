"""Reseller CDRs (``edr_level``): what a message cost each reseller level above
its client agreement (RAT-10). The rater makes them with the EDR's own rating
(``charging/rater.py``); rerate rewrites them (``rerate/levels.py``)."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.db import bulk
from cpaas_cli.models.edr import EdrLevel

LEVEL = EdrLevel.__table__
COLUMNS = (
    "edr_id",
    "level",
    "agreement_id",
    "event_at",
    "rate_path",
    "service_id",
    "billing_rule",
    "unit_price",
    "quantity",
    "cost",
    "currency",
    "pack_enabled_id",
    "pack_units",
    "rated_at",
)


def write(session: Session, rows: list[tuple], *, times: bulk.TimeText | None = None) -> None:
    """Insert reseller CDRs (tuples in ``COLUMNS`` order, as the rater makes them;
    a path longer than the column is cut) through the bulk writer, one statement."""
    if not rows:
        return
    if len({r[1] for r in rows[:2]}) > 1 or rows[0][1] != rows[-1][1]:
        # one level after the other (stable: event order kept within a level), so that a
        # level's CDRs lie together in the table: its rerate then rewrites half the pages
        rows = sorted(rows, key=itemgetter(1))
    cols = dict(zip(COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    paths = cols["rate_path"]
    if "" in set(paths) or any(len(p) > 300 for p in set(paths) if p is not None):
        cols["rate_path"] = [(p or "")[:300] or None for p in paths]
    bulk.writer(session).insert(LEVEL, cols, times=times)


def of_edrs(session: Session, edr_ids: list[int]) -> list[dict[str, Any]]:
    """The reseller CDRs of these EDRs, level order."""
    if not edr_ids:
        return []
    q = sa.select(LEVEL).where(LEVEL.c.edr_id.in_(edr_ids)).order_by(LEVEL.c.edr_id, LEVEL.c.level)
    return [dict(m) for m in session.execute(q).mappings()]
