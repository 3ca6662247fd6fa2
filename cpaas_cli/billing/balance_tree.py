"""Balances down a reseller's tree (PAY-08, `cpaas balance tree RESELLER`).

One row per agreement a company of the tree buys on (company = that company):
the reseller's own purchase agreement(s) first, then every company below it,
depth first (sub-resellers and their clients too). A company with no
agreement still gets a row, with no figures.

``at_risk`` is the negative part of the balance: what the company owes its
seller on that agreement (0 when it is in credit). Below the reseller it is
money the reseller (or a sub-reseller) has not collected from its clients,
while the same traffic is charged to it one level up on its own purchase
agreement; on the reseller's own row it is what the reseller owes its tenant.
:func:`risk_below` sums it per currency for the companies under the reseller.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.billing import ledger
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.tenancy import service as tenancy


def rows(session: Session, root: str | int, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """The tree under ``root`` (a reseller, or the owner), with figures in micro-units
    (``credit_limit`` and ``available`` None = unlimited). With ``at``, agreements that
    had not started by then are left out and the balances are those at ``at``."""
    company = tenancy.company(session, root)
    out: list[dict[str, Any]] = []
    for node in tenancy.tree(session, company.id):
        q = select(Agreement).where(Agreement.company_id == node["id"], Agreement.direction == "CLIENT")
        if at is not None:
            q = q.where(Agreement.effective_from <= at)
        base = {
            "depth": node["depth"],
            "company_id": node["id"],
            "company": node["name"],
            "type": node["type"],
            "parent_id": node["parent_id"],
            "parent": node["parent"],
        }
        found = list(session.exec(q.order_by(col(Agreement.id))))
        if not found:
            out.append(
                {
                    **base,
                    "agreement_id": None,
                    "agreement": None,
                    "currency": None,
                    "balance": None,
                    "credit_limit": None,
                    "available": None,
                    "at_risk": None,
                }
            )
        for ag in found:
            b = ledger.balance(session, ag, at=at)
            out.append(
                {
                    **base,
                    "agreement_id": ag.id,
                    "agreement": ag.code,
                    "currency": ag.currency,
                    "balance": b["balance"],
                    "credit_limit": b["credit_limit"],
                    "available": b["available"],
                    "at_risk": max(0, -(b["balance"] or 0)),
                }
            )
    return out


def risk_below(items: list[dict[str, Any]]) -> dict[str, int]:
    """What the companies under the root owe their sellers, per currency (micro-units)."""
    sums: dict[str, int] = defaultdict(int)
    for item in items:
        if item["depth"] > 0 and item["agreement_id"] is not None:
            sums[item["currency"]] += item["at_risk"]
    return dict(sums)
