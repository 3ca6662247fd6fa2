"""The charges an invoice covers, one row each with its EDR's fields (`invoice charges`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr, EdrLevel
from cpaas_cli.models.invoices import Invoice, InvoiceCharge
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

CHG = Charge.__table__
IC = InvoiceCharge.__table__
EDR = Edr.__table__
LEVEL = EdrLevel.__table__

CHARGE_COLUMNS = [
    "charge_id",
    "kind",
    "at",
    "amount",
    "currency",
    "correction",
    "edr_id",
    "external_id",
    "service_id",
    "channel",
    "direction",
    "country",
    "network",
    "sender",
    "destination",
    "segments",
    "rate_path",
    "unit_price",
    "details",
]


def charge_rows(session: Session, inv: Invoice) -> Iterator[dict[str, Any]]:
    """Every charge the invoice covers, with its EDR's fields (streamed)."""
    q = (
        sa.select(
            CHG.c.id.label("charge_id"),
            CHG.c.kind,
            CHG.c.at,
            CHG.c.amount,
            CHG.c.currency,
            CHG.c.edr_id,
            CHG.c.details,
            EDR.c.external_id,
            EDR.c.service_id,
            EDR.c.channel,
            EDR.c.direction,
            EDR.c.country,
            EDR.c.network,
            EDR.c.sender,
            EDR.c.destination,
            EDR.c.segments,
            # a reseller level's charge shows its own price (its reseller CDR), not the client's
            sa.func.coalesce(LEVEL.c.rate_path, EDR.c.rate_path).label("rate_path"),
            sa.case((LEVEL.c.id.isnot(None), LEVEL.c.unit_price), else_=EDR.c.unit_price).label("unit_price"),
        )
        .select_from(
            IC.join(CHG, CHG.c.id == IC.c.charge_id)
            .outerjoin(EDR, EDR.c.id == CHG.c.edr_id)
            .outerjoin(LEVEL, sa.and_(LEVEL.c.edr_id == CHG.c.edr_id, LEVEL.c.agreement_id == CHG.c.agreement_id))
        )
        .where(IC.c.invoice_id == inv.id)
        .order_by(CHG.c.id)
    )
    for r in session.execute(q).mappings():
        d = dict(r)
        d["correction"] = d["at"] < inv.period_start
        d["at"] = iso(d["at"])
        d["amount"] = format_micros(d["amount"])
        d["unit_price"] = format_micros(d["unit_price"])
        yield d
