"""`rates compare PLAN_A PLAN_B`: the price of each destination in two plans.

The destinations are the priced leaves of both trees, keyed as the trees key
them (domain/resource/direction, then country, network MCCMNC or country row,
sender type, ... and ``others``). Each destination is looked up in BOTH plans
with the same lookup as rating (``rating/lookup.resolve``), so a destination
one plan prices only through its country row or ``others`` shows that price
(``match`` = fallback) rather than nothing; ``only_in`` names the plan that
has the destination as a leaf of its own when the other does not.

``difference`` = price A − price B: with a sale plan as A and a vendor plan as
B, the margin per unit; ``negative`` flags the destinations sold below cost.
No pandas here: an outer join of two small lists of leaves is a dict lookup.
"""

from __future__ import annotations

from typing import Any

from cpaas_cli.catalog.dictionary import mcc_country
from cpaas_cli.money import format_micros
from cpaas_cli.rating import lookup as lk

COLUMNS = [
    "destination",
    "country",
    "mccmnc",
    "sender_type",
    "price_a",
    "price_b",
    "difference",
    "match_a",
    "match_b",
    "only_in",
    "negative",
]
Path = tuple[tuple[str, str], ...]


def leaves(snap: lk.Snapshot) -> list[Path]:
    """Every leaf of the tree as its (level, value) pairs from the domain down."""
    out: list[Path] = []

    def visit(n: lk.SNode, path: Path) -> None:
        path = (*path, (n.level, n.value))
        kids = [*n.children.values(), *([n.others] if n.others is not None else [])]
        if n.price_type != "depends" or not kids:
            out.append(path)
            return
        for c in kids:
            visit(c, path)

    for root in snap.domains.values():
        visit(root, ())
    return out


def query_of(path: Path) -> dict[str, Any]:
    """The lookup query of a leaf path (``others`` = no value for that level)."""
    q: dict[str, Any] = {"domain": None, "resource": None, "direction": None, "mccmnc": None, "mcc": None}
    for level, value in path:
        v = None if value == lk.OTHERS else value
        if level in lk.MCCMNC_LEVELS:
            if v is not None and len(v) > 3:
                q["mccmnc"], q["mcc"] = v, v[:3]
            elif v is not None:
                q["mcc"] = v
        else:
            q[level] = v
    if q.get("country") is None and q["mcc"]:
        q["country"] = mcc_country(q["mcc"])
    return q


def _price(res: lk.Result, exact: bool) -> tuple[int | None, str]:
    """(flat price or None, how the plan matched: exact, fallback, scale, blocked, none)."""
    if not res.found or res.status == lk.INCLUDED:
        return None, "blocked" if res.status == lk.BLOCKED else "none"
    if res.price_type == "scale":
        return None, "scale"
    return (0 if res.status == lk.FREE else res.price), "exact" if exact else "fallback"


def compare(a: lk.Snapshot, b: lk.Snapshot) -> list[dict[str, Any]]:
    """One row per destination of either tree (see the module docstring)."""
    la, lb = leaves(a), leaves(b)
    in_a, in_b = set(la), set(lb)
    same_currency = a.currency == b.currency
    rows = []
    for path in sorted(in_a | in_b):
        q = query_of(path)
        pa, ma = _price(lk.resolve(a, q), path in in_a)
        pb, mb = _price(lk.resolve(b, q), path in in_b)
        diff = pa - pb if pa is not None and pb is not None and same_currency else None
        rows.append(
            {
                "destination": "/".join(v for _l, v in path),
                "country": q.get("country"),
                "mccmnc": q["mccmnc"] or q["mcc"],
                "sender_type": q.get("sender_type"),
                "price_a": format_micros(pa),
                "price_b": format_micros(pb),
                "difference": format_micros(diff),
                "match_a": ma,
                "match_b": mb,
                "only_in": None if (path in in_a) == (path in in_b) else ("A" if path in in_a else "B"),
                "negative": diff is not None and diff < 0,
                "currency_a": a.currency,
                "currency_b": b.currency,
            }
        )
    return rows
