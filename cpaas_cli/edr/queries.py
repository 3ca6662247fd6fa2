"""Browsing EDRs: one EDR with its charges and how it was rated, and lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.billing import packs
from cpaas_cli.charging import levels
from cpaas_cli.errors import NotFound
from cpaas_cli.models.agreements import Agreement
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


AG = Agreement.__table__


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
    ch = list(session.execute(sa.select(Charge.__table__).where(Charge.__table__.c.edr_id == r["id"])).mappings())
    ch.sort(key=lambda c: (c["agreement_id"] != r["agreement_id"], c["id"]))  # the client's own first
    ups = levels.of_edrs(session, [r["id"]])
    ag_ids = {r["agreement_id"], *(c["agreement_id"] for c in ch), *(x["agreement_id"] for x in ups)} - {None}
    codes = dict(session.execute(sa.select(AG.c.id, AG.c.code).where(AG.c.id.in_(ag_ids))).all()) if ag_ids else {}
    out["charges"] = [
        {
            "id": c["id"],
            "agreement": codes.get(c["agreement_id"], c["agreement_id"]),
            "kind": c["kind"],
            "amount": format_micros(c["amount"]),
            "currency": c["currency"],
            "at": iso(c["at"]),
            "period_start": iso(c["period_start"]),
            "details": c["details"],
        }
        for c in ch
    ]
    # The reseller levels above the client (RAT-10): what the message cost each of them.
    out["levels"] = [
        {
            "level": x["level"],
            "agreement": codes.get(x["agreement_id"], x["agreement_id"]),
            "rate_path": x["rate_path"],
            "unit_price": format_micros(x["unit_price"]),
            "quantity": x["quantity"],
            "cost": format_micros(x["cost"]),
            "currency": x["currency"],
        }
        for x in ups
    ]
    pid = r["pack_enabled_id"]
    took = packs.usage_text(session, pid, r["pack_units"], r["currency"]) if pid else None
    own = [c for c in out["charges"] if c["agreement"] == codes.get(r["agreement_id"], r["agreement_id"])]
    out["explanation"] = explain(r, own, took)
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
