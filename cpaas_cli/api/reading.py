"""Reading: the balance of the key's company and the price of the next message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlmodel import col, select

from cpaas_cli.api.auth import CallerDep, require, session
from cpaas_cli.billing import ledger
from cpaas_cli.errors import NotFound
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.money import format_micros

router = APIRouter(tags=["reading"])


def balance_dict(ag: Agreement, b: dict[str, int | None]) -> dict[str, Any]:
    """The same figures as ``cpaas balance show`` (decimal strings; a blank credit limit is unlimited)."""
    out: dict[str, Any] = {"agreement": ag.code, "currency": ag.currency}
    for k, v in b.items():
        out[k] = format_micros(v) if v is not None else ("unlimited" if k in ("credit_limit", "available") else None)
    return out


@router.get("/v1/balance", summary="Balances of the key's company (one per agreement)")
def balance(request: Request, c: CallerDep, agreement: str | None = Query(None, max_length=64)) -> dict:
    require(c, c.pick("payment.view", "finance.view"), c.company_id)
    with session(request, c) as s:
        q = select(Agreement).where(Agreement.company_id == c.company_id).order_by(col(Agreement.id))
        if agreement is not None:
            q = q.where(Agreement.code == agreement)
        rows = list(s.exec(q))
        if agreement is not None and not rows:
            raise NotFound(f"agreement {agreement!r} not found")
        return {"balances": [balance_dict(ag, ledger.balance(s, ag)) for ag in rows]}


@router.get("/v1/rate", summary="The price of the next message from a sender ID to a number (as `cpaas rates lookup`)")
def rate(
    request: Request,
    c: CallerDep,
    to: str = Query(max_length=20, description="E.164 digits without '+'."),
    sender: str = Query(alias="from", max_length=32, description="A sender ID of the key's company."),
) -> dict:
    from cpaas_cli.sending.rate import next_price

    require(c, "campaign.view", c.company_id)
    with session(request, c) as s:
        return next_price(s, company_id=c.company_id, sender=sender, to=to)
