"""A rate import as a change of destinations: merging a sheet's subtree into the
one stored under the import's node, and the diff between the two (added,
removed, price old → new), counted per country.

A destination is a leaf of the subtree under the node (a country, a network,
``others``); its path is relative to the node (``ES/21401``).
"""

from __future__ import annotations

import copy
from typing import Any

from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import tree as tr
from cpaas_cli.catalog.vocab import OTHERS
from cpaas_cli.errors import InvalidInput
from cpaas_cli.money import format_micros

MODES = ("merge", "replace")
COMPARED = ("price_type", "price", "scale", "counter_group", "billing_rule", "quantity_rule", "label")
CHANGE_COLUMNS = [
    "op",
    "path",
    "country",
    "label",
    "old_price",
    "new_price",
    "old_price_type",
    "new_price_type",
    "fields",
]
COUNT_KEYS = ("added", "changed", "removed", "unchanged")


def merge(node_path: str, depends_on: str | None, old: list[tr.Node], new: list[tr.Node]) -> list[tr.Node]:
    """``old`` with the destinations of ``new`` added or updated (copies; stored ids kept).

    Where the stored tree is priced by another level than the sheet (a country
    with one price where the sheet prices its networks), merging would drop
    destinations: InvalidInput naming the path, pointing at ``--mode replace``.
    """
    if old and new and depends_on != new[0].level:
        raise InvalidInput(
            f"{node_path} is priced by {depends_on}, the sheet by {new[0].level}: merging cannot keep both; "
            "import with --mode replace to rebuild the subtree (--dry-run shows what it removes)"
        )
    out = copy.deepcopy(old)
    _merge_into(out, new, node_path)
    _others_last(out)
    return out


def _merge_into(siblings: list[tr.Node], new: list[tr.Node], where: str) -> None:
    index = {n.value: n for n in siblings}
    for n in new:
        path = f"{where}/{n.value}"
        have = index.get(n.value)
        if have is None:
            siblings.append(copy.deepcopy(n))
            continue
        if n.children or have.children:
            if not (n.children and have.children) or have.depends_on != n.depends_on:
                stored = f"by {have.depends_on}" if have.children else f"one {have.price_type} price"
                sheet = f"by {n.depends_on}" if n.children else "one price"
                raise InvalidInput(
                    f"{path} is priced {stored}, the sheet prices it {sheet}: merging cannot keep both; "
                    "import with --mode replace to rebuild the subtree (--dry-run shows what it removes)"
                )
            _merge_into(have.children, n.children, path)
            continue
        for attr in ("price_type", "price", "scale", "counter_group", "billing_rule", "quantity_rule"):
            setattr(have, attr, getattr(n, attr))
        if n.label is not None:
            have.label = n.label


def others_last(nodes: list[tr.Node]) -> None:
    """``others`` after the named values, at every level."""
    _others_last(nodes)


def _others_last(nodes: list[tr.Node]) -> None:
    nodes.sort(key=lambda n: n.value == OTHERS)
    for n in nodes:
        _others_last(n.children)


def destinations(children: list[tr.Node]) -> dict[str, tuple[str, tr.Node]]:
    """path → (country, leaf) of every destination under a node."""
    out: dict[str, tuple[str, tr.Node]] = {}

    def visit(n: tr.Node, parts: tuple[str, ...], country: str | None) -> None:
        parts = (*parts, n.value)
        if n.level == "country":
            country = n.value
        elif country is None and n.value[:3].isdigit():
            country = dic.mcc_country(n.value[:3])
        if not n.children:
            out["/".join(parts)] = (country or OTHERS, n)
        for c in n.children:
            visit(c, parts, country)

    for n in children:
        visit(n, (), None)
    return out


def _price_text(n: tr.Node | None) -> str | None:
    if n is None:
        return None
    if n.price_type == "flat" and n.price is not None:
        return format_micros(n.price)
    return n.price_type


def diff(old: list[tr.Node], new: list[tr.Node]) -> dict[str, Any]:
    """Destinations added, removed and changed from ``old`` to ``new`` with
    counts in all and per country (``others`` for destinations of no country)."""
    a, b = destinations(old), destinations(new)
    changes: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}

    def count(country: str, what: str) -> None:
        counts.setdefault(country, dict.fromkeys(COUNT_KEYS, 0))[what] += 1

    def row(op: str, path: str, country: str, o: tr.Node | None, n: tr.Node | None, fields: list[str]) -> None:
        changes.append(
            {
                "op": op,
                "path": path,
                "country": country,
                "label": (n or o).label if (n or o) else None,
                "old_price": _price_text(o),
                "new_price": _price_text(n),
                "old_price_type": o.price_type if o else None,
                "new_price_type": n.price_type if n else None,
                "fields": " ".join(fields),
            }
        )

    for path, (country, n) in b.items():
        if path not in a:
            row("add", path, country, None, n, [])
            count(country, "added")
            continue
        o = a[path][1]
        fields = [f for f in COMPARED if getattr(o, f) != getattr(n, f) and not (f == "label" and n.label is None)]
        if fields:
            row("change", path, country, o, n, fields)
            count(country, "changed")
        else:
            count(country, "unchanged")
    for path, (country, o) in a.items():
        if path not in b:
            row("remove", path, country, o, None, [])
            count(country, "removed")
    order = {"remove": 0, "change": 1, "add": 2}
    changes.sort(key=lambda c: (c["country"] == OTHERS, c["country"], c["path"], order[c["op"]]))
    summary = {k: sum(c[k] for c in counts.values()) for k in COUNT_KEYS}
    by_country = [{"country": k, **v} for k, v in sorted(counts.items(), key=lambda kv: (kv[0] == OTHERS, kv[0]))]
    return {"changes": changes, "summary": summary, "by_country": by_country}


def change_line(c: dict[str, Any], currency: str | None) -> str:
    """One line of the terraform-style diff: ``+``, ``-`` or ``~``, the path, the price."""
    name = c["path"] + (f" ({c['label']})" if c["label"] else "")
    unit = f" {currency}" if currency else ""
    if c["op"] == "add":
        return f"+ {name}: {c['new_price']}{unit}"
    if c["op"] == "remove":
        return f"- {name}: {c['old_price']}{unit}"
    what = f"{c['old_price']} → {c['new_price']}{unit}" if c["old_price"] != c["new_price"] else c["new_price"]
    others = [f for f in c["fields"].split() if f not in ("price", "price_type")]
    return f"~ {name}: {what}" + (f" ({', '.join(others)} changed)" if others else "")


def count_line(r: dict[str, Any]) -> str:
    return f"{r['country']}: +{r['added']} ~{r['changed']} -{r['removed']} ({r['unchanged']} unchanged)"
