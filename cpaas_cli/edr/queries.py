"""Browsing EDRs: one EDR with its charges and how it was rated, and lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.billing import packs
from cpaas_cli.errors import NotFound
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

EDR = Edr.__table__


def edr_dict(r: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in r.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif k in ("unit_price", "cost", "vendor_cost") and v is not None:
            v = format_micros(v)
        out[k] = v
    return out


def get(session: Session, ref: str) -> dict[str, Any]:
    q = sa.select(EDR)
    q = q.where(EDR.c.id == int(ref)) if ref.isdecimal() else q.where(EDR.c.external_id == ref)
    row = session.execute(q).mappings().first()
    if row is None and ref.isdecimal():
        row = session.execute(sa.select(EDR).where(EDR.c.external_id == ref)).mappings().first()
    if row is None:
        raise NotFound(f"EDR {ref!r} not found")
    return dict(row)


def show(session: Session, ref: str) -> dict[str, Any]:
    r = get(session, ref)
    out = edr_dict(r)
    ch = session.execute(sa.select(Charge.__table__).where(Charge.__table__.c.edr_id == r["id"])).mappings()
    out["charges"] = [
        {
            "id": c["id"],
            "kind": c["kind"],
            "amount": format_micros(c["amount"]),
            "currency": c["currency"],
            "at": iso(c["at"]),
            "period_start": iso(c["period_start"]),
            "details": c["details"],
        }
        for c in ch
    ]
    pid = r["pack_enabled_id"]
    took = packs.usage_text(session, pid, r["pack_units"], r["currency"]) if pid else None
    out["explanation"] = explain(r, out["charges"], took)
    return out


def explain(r: dict[str, Any], charges: list[dict[str, Any]], pack: str | None = None) -> str:
    """One line on how an EDR was rated; ``pack`` says what it took from a pack
    (``billing.packs.usage_text``)."""
    st = r["rating_state"]
    if st == "unrated":
        return "not rated yet" + (f" ({r['rating_note']})" if r.get("rating_note") else "")
    if st == "rejected":
        return f"rejected: {r['rating_reason']}" + (f" ({r['rating_note']})" if r.get("rating_note") else "")
    parts = [f"matched {r['rate_path']}" if r.get("rate_path") else "rated"]
    if r.get("billing_rule"):
        parts.append(f"billed when {r['billing_rule']}")
    if r.get("pack_enabled_id"):
        parts.append(pack or f"taken from pack #{r['pack_enabled_id']}")
    if r.get("unit_price") is not None:
        parts.append(f"{r['quantity']} × {format_micros(r['unit_price'])} → {format_micros(r['cost'])} {r['currency']}")
    if r.get("rating_note") and r["rating_note"] not in (pack or ""):
        parts.append(r["rating_note"])
    for c in charges:
        if c["kind"] == "scale_adjustment":
            parts.append(f"back-to-first adjustment {c['amount']} {c['currency']}")
    return "; ".join(parts)


def list_edrs(
    session: Session,
    *,
    agreement_id: int | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    till: datetime | None = None,
    state: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    destination: str | None = None,
    campaign_id: int | None = None,
    limit: int = 150,
) -> list[dict[str, Any]]:
    where = _filters(
        agreement_id=agreement_id,
        company_id=company_id,
        since=since,
        till=till,
        state=state,
        reason=reason,
        status=status,
        destination=destination,
        campaign_id=campaign_id,
    )
    q = sa.select(EDR).where(*where).order_by(EDR.c.event_at.desc(), EDR.c.id.desc()).limit(limit)
    return [edr_dict(dict(m)) for m in session.execute(q).mappings()]


def _filters(
    *,
    agreement_id: int | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    till: datetime | None = None,
    state: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    destination: str | None = None,
    campaign_id: int | None = None,
) -> list[Any]:
    where: list[Any] = []
    for colname, val in (
        ("agreement_id", agreement_id),
        ("company_id", company_id),
        ("rating_state", state),
        ("rating_reason", reason),
        ("status", status),
        ("destination", destination),
        ("campaign_id", campaign_id),
    ):
        if val is not None:
            where.append(EDR.c[colname] == val)
    if since is not None:
        where.append(EDR.c.event_at >= since)
    if till is not None:
        where.append(EDR.c.event_at < till)
    return where
