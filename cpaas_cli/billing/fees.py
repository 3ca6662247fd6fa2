"""Additional fees (FEE-01): a fixed amount, or volume × the rate of an
enabled additional-services tree; either way the fee is a charge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.catalog import service as catalog
from cpaas_cli.errors import InvalidInput, NotFound, Problem, require
from cpaas_cli.money import MoneyError, format_micros, round_event, to_micros
from cpaas_cli.rating import lookup as lk
from cpaas_cli.timeutil import iso


def add(
    session: Session,
    *,
    agreement_ref: str,
    description: str | None = None,
    amount: str | None = None,
    service_ref: str | None = None,
    resource: str | None = None,
    volume: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    ag = agreements.get(session, agreement_ref)
    at = at or clock.now()
    problems: list[Problem] = []
    by_tariff = amount is None
    if not by_tariff and (volume is not None or service_ref or resource):
        problems.append(Problem("amount", "give either a fixed amount or a volume by tariff, not both"))
    details: dict[str, Any] = {"description": description, "fee_type": "tariff" if by_tariff else "fixed"}
    micros = 0
    if not by_tariff:
        try:
            micros = to_micros(amount or "")
        except MoneyError as exc:
            problems.append(Problem("amount", str(exc)))
    elif volume is None or volume <= 0:
        problems.append(Problem("volume", "a fee by tariff needs a volume of 1 or more"))
    require(problems, "the fee")
    if by_tariff:
        res = None
        for _e, svc in catalog.enabled(session, ag, at=at):
            if svc.archived_at is not None or svc.type != "payg" or "additional" not in catalog.channels(session, svc):
                continue
            if service_ref and str(svc.id) != service_ref and svc.name != service_ref:
                continue
            sc = catalog.current_scope(session, svc, at)
            if sc is None:
                continue
            q = {"domain": "additional", "resource": resource or "additional_service"}
            got = lk.resolve(catalog.snapshot(session, svc, sc), q)
            if got.status in (lk.RATE, lk.FREE) and got.price_type != "scale":
                res = got
                break
        if res is None:
            raise NotFound(
                f"no additional-services service enabled on {ag.code!r} at {iso(at)} prices "
                f"{resource or 'additional_service'}"
            )
        micros = (res.price or 0) * volume  # type: ignore[operator]
        details.update(
            service_id=res.service_id,
            scope_id=res.scope_id,
            unit_price=format_micros(res.price or 0),
            volume=volume,
            path="/".join(p["value"] for p in res.path),
        )
    charged = round_event(micros, ag.currency)
    if charged == 0 and not by_tariff:
        raise InvalidInput("a fixed fee must not be zero")
    ledger.lock(session, [ag.id])
    ledger.post(
        session,
        [
            {
                "agreement_id": ag.id,
                "kind": "fee",
                "amount": charged,
                "currency": ag.currency,
                "at": at,
                "details": details,
            }
        ],
        check_credit=False,
    )
    fee_id = session.execute(
        sa.select(sa.func.max(ledger.CHG.c.id)).where(ledger.CHG.c.agreement_id == ag.id, ledger.CHG.c.kind == "fee")
    ).scalar()
    return {
        "id": fee_id,
        "agreement": ag.code,
        "amount": format_micros(charged),
        "currency": ag.currency,
        "at": iso(at),
        **details,
    }


def list_fees(session: Session, *, agreement_ref: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(ledger.CHG).where(ledger.CHG.c.kind == "fee").order_by(ledger.CHG.c.id)
    if agreement_ref:
        q = q.where(ledger.CHG.c.agreement_id == agreements.get(session, agreement_ref).id)
    return [
        {
            "id": c["id"],
            "agreement_id": c["agreement_id"],
            "amount": format_micros(c["amount"]),
            "currency": c["currency"],
            "at": iso(c["at"]),
            **c["details"],
        }
        for c in session.execute(q).mappings()
    ]
