"""Reseller CDRs (``edr_level``): what a message cost each reseller level above
its client agreement (RAT-10). The rater makes them with the EDR's own rating
(``charging/rater.py``); rerate rewrites them (``rerate/levels.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.db import bulk
from cpaas_cli.models.edr import EdrLevel
from cpaas_cli.rating import engine as en

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


def row(ev: en.Event, level: int, agreement_id: int, d: en.Decision, now: datetime) -> dict[str, Any]:
    """The reseller CDR of one accepted level decision."""
    return {
        "edr_id": ev.key,
        "level": level,
        "agreement_id": agreement_id,
        "event_at": ev.at,
        "rate_path": (d.path or "")[:300] or None,
        "service_id": d.service_id,
        "billing_rule": d.billing_rule,
        "unit_price": d.unit_price,
        "quantity": d.quantity,
        "cost": d.amount,
        "currency": d.currency,
        "pack_enabled_id": d.pack_id,
        "pack_units": d.pack_units or None,
        "rated_at": now,
    }


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert reseller CDRs through the bulk writer (one statement for the lot)."""
    if rows:
        bulk.writer(session).insert(LEVEL, {c: [r[c] for r in rows] for c in COLUMNS})


def of_edrs(session: Session, edr_ids: list[int]) -> list[dict[str, Any]]:
    """The reseller CDRs of these EDRs, level order."""
    if not edr_ids:
        return []
    q = sa.select(LEVEL).where(LEVEL.c.edr_id.in_(edr_ids)).order_by(LEVEL.c.edr_id, LEVEL.c.level)
    return [dict(m) for m in session.execute(q).mappings()]
