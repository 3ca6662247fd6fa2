"""Margin report: revenue (client charges), vendor cost and margin per group of EDRs.

One aggregate query in the database (grouped by the chosen dimension and the
two currencies); Python folds the small result and formats money exactly from
micro-units (integers only; the margin percentage is a Decimal rounded once).

What counts (issue 29, item 3):

* messages: the EDRs of the window, but those that never left (status
  ``failed`` without a submit: refused by rating or by the SMSC);
* revenue: Σ of the EDRs' rated charge (``cost``, the client's price; also
  what a monetary pack paid), in the charge's currency;
* vendor cost: Σ of the known ``vendor_cost``; a message whose cost is unknown
  (no vendor plan on its connection, no vendor price for its destination, no
  connection) or in another currency than its charge is counted in
  ``cost_unknown`` and never taken as zero;
* margin: revenue of the messages whose cost is known − their vendor cost;
  ``margin_pct`` = margin / that revenue × 100 (2 decimals, half-up); None
  when no message of the group has a known cost;
* ``negative``: the margin is below zero (table output shows the row in red).

Revenue per level (RAT-10): ``revenue`` stays the client's charge, and
``margin`` the whole chain's (client price − vendor cost). ``owner_revenue``
is what the system owner charged for the same messages: the top reseller
level's charge (its reseller CDR, ``edr_level``) for a reseller's client, the
client's charge for the owner's own clients; ``owner_margin`` = that − the
vendor cost, and ``negative`` flags a negative owner margin (the operator
loses money at the vendor). The resellers' share is ``margin − owner_margin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cpaas_cli.edr.export import EDR, EdrFilter
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.edr import EdrLevel
from cpaas_cli.models.tenancy import Company
from cpaas_cli.money import format_micros

BY = ("company", "country", "network", "connection", "sender")
LEVEL = EdrLevel.__table__
# The charge of each revenue level (see the module docstring): the client's, and the owner's
# (the top reseller CDR of the EDR, or the client's charge when no reseller sold it).
_TOP = (
    sa.select(LEVEL.c.cost).where(LEVEL.c.edr_id == EDR.c.id).order_by(LEVEL.c.level.desc()).limit(1).scalar_subquery()
)
LEVELS = {"client": EDR.c.cost, "owner": sa.func.coalesce(_TOP, EDR.c.cost)}

_GROUP_COLUMNS = {
    "company": (EDR.c.company_id,),
    "country": (EDR.c.country,),
    "network": (EDR.c.mcc, EDR.c.mnc, EDR.c.network),
    "connection": (EDR.c.connection_id,),
    "sender": (EDR.c.sender,),
    None: (),
}
_LABELS = {
    "company": ("company_id", "company"),
    "country": ("country",),
    "network": ("mccmnc", "network"),
    "connection": ("connection_id", "connection"),
    "sender": ("sender",),
    None: (),
}
MONEY = ("revenue", "vendor_cost", "margin", "owner_revenue", "owner_margin")
# The columns of one level first, as before resellers (a narrow table keeps the margin), then the owner's.
TAIL = ["currency", "messages", "revenue", "vendor_cost", "margin", "margin_pct", "owner_revenue", "owner_margin",
        "cost_unknown", "negative"]  # fmt: skip


def columns(by: str | None) -> list[str]:
    return [*_LABELS[by], *TAIL]


def check_by(by: str | None) -> str | None:
    if by is None:
        return None
    v = by.strip().lower()
    if v not in BY:
        raise InvalidInput(f"--by: {by!r} is not one of {', '.join(BY)}")
    return v


@dataclass(slots=True)
class _Sums:
    messages: int = 0
    revenue: int = 0
    revenue_costed: int = 0
    owner: int = 0
    owner_costed: int = 0
    vendor_cost: int = 0
    costed: int = 0
    unknown: int = 0


def _pct(margin: int, base: int) -> str | None:
    if base == 0:
        return None
    return str((Decimal(margin) * 100 / Decimal(base)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def margin(conn: Connection, flt: EdrFilter, *, by: str | None = None) -> list[dict[str, Any]]:
    """The margin rows of the EDRs ``flt`` selects, one per group and currency."""
    c = EDR.c
    keys = _GROUP_COLUMNS[by]
    revenue, owner = LEVELS["client"], LEVELS["owner"]
    known = c.vendor_cost.isnot(None)
    q = (
        sa.select(
            *keys,
            c.currency,
            c.vendor_currency,
            sa.func.count().label("messages"),
            sa.func.sum(revenue).label("revenue"),
            sa.func.sum(sa.case((known, sa.func.coalesce(revenue, 0)))).label("revenue_costed"),
            sa.func.sum(owner).label("owner"),
            sa.func.sum(sa.case((known, sa.func.coalesce(owner, 0)))).label("owner_costed"),
            sa.func.sum(c.vendor_cost).label("vendor_cost"),
            sa.func.count(c.vendor_cost).label("costed"),
        )
        .where(*flt.where(), sa.not_(sa.and_(c.status == "failed", c.submitted_at.is_(None))))
        .group_by(*keys, c.currency, c.vendor_currency)
    )
    groups: dict[tuple, _Sums] = {}
    currencies: dict[tuple, set[str]] = {}
    raw = conn.execute(q).all()
    n = len(keys)
    for row in raw:
        key = tuple(row[:n])
        cur = row[n]
        if cur is not None:
            currencies.setdefault(key, set()).add(cur)
    for row in raw:
        key = tuple(row[:n])
        cur, vcur, messages, rev, rev_costed, own, own_costed, vcost, costed = row[n:]
        # An unrated group (no charge currency yet) joins its group's one currency, else the vendor's.
        seen = currencies.get(key, set())
        cur = cur or (next(iter(seen)) if len(seen) == 1 else vcur)
        s = groups.setdefault((*key, cur), _Sums())
        s.messages += messages
        s.revenue += int(rev or 0)
        s.owner += int(own or 0)
        if costed and vcur is not None and vcur != cur:
            s.unknown += messages  # cost in another currency than the charge: not added
            continue
        s.revenue_costed += int(rev_costed or 0)
        s.owner_costed += int(own_costed or 0)
        s.vendor_cost += int(vcost or 0)
        s.costed += costed
        s.unknown += messages - costed
    names = _names(conn, by, {k[0] for k in groups})
    out = []
    for key in sorted(groups, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        s = groups[key]
        m = s.revenue_costed - s.vendor_cost if s.costed else None
        om = s.owner_costed - s.vendor_cost if s.costed else None
        row: dict[str, Any] = _label(by, key[:-1], names)
        row.update(
            {
                "currency": key[-1],
                "messages": s.messages,
                "revenue": format_micros(s.revenue),
                "vendor_cost": format_micros(s.vendor_cost) if s.costed else None,
                "margin": format_micros(m),
                "margin_pct": _pct(m, s.revenue_costed) if m is not None else None,
                "owner_revenue": format_micros(s.owner),
                "owner_margin": format_micros(om),
                "cost_unknown": s.unknown,
                "negative": om is not None and om < 0,
            }
        )
        out.append(row)
    return out


def _names(conn: Connection, by: str | None, ids: set[Any]) -> dict[Any, str]:
    ids = {i for i in ids if i is not None}
    if not ids or by not in ("company", "connection"):
        return {}
    t = (Company if by == "company" else VendorConnection).__table__
    return dict(conn.execute(sa.select(t.c.id, t.c.name).where(t.c.id.in_(sorted(ids)))).all())


def _label(by: str | None, key: Sequence[Any], names: dict[Any, str]) -> dict[str, Any]:
    if by in ("company", "connection"):
        return {f"{by}_id": key[0], by: names.get(key[0])}
    if by == "network":
        mcc, mnc, network = key
        return {"mccmnc": (mcc or "") + (mnc or "") or None, "network": network}
    if by is None:
        return {}
    return {by: key[0]}


def negative(row: dict[str, Any]) -> str | None:
    """The table style of a row (red when its margin is negative)."""
    return "bold red" if row.get("negative") else None
