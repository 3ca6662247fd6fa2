"""`rates import`: build a rate subtree under a node from a CSV/XLSX sheet.

Columns are declared with ``--map ATTR=COLUMN``: attributes (country, network,
mccmnc, mcc) shape the tree, in the order the columns appear in the file;
properties (price, billing_rule, quantity_rule) fill its leaves. The whole
subtree under the target node is replaced, in one transaction (the command's).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit import service as audit
from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.catalog.vocab import OTHERS
from cpaas_cli.errors import InvalidInput, NotFound
from cpaas_cli.imports.readers import read_rows
from cpaas_cli.models.catalog import BILLING_RULES, QUANTITY_RULES, RateNode
from cpaas_cli.money import MoneyError, to_micros

ATTRIBUTES = ("country", "network", "mccmnc", "mcc")
PROPERTIES = ("price", "billing_rule", "quantity_rule")
DUPLICATES = ("first", "last", "error")
WHOLE_COUNTRY = {"", "others", "all", "all networks", "all operators", "*", "rest"}


@dataclass
class ImportResult:
    service: str
    scope: int
    node: str
    levels: list[str]
    rows_read: int = 0
    rows_imported: int = 0
    rows_skipped: int = 0
    leaves: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False
    import_id: int | None = None
    preview: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def parse_maps(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, column = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not column.strip():
            raise InvalidInput(f"--map: expected ATTR=COLUMN, got {item!r}")
        if key not in ATTRIBUTES + PROPERTIES:
            raise InvalidInput(f"--map: unknown attribute {key!r} (use {', '.join(ATTRIBUTES + PROPERTIES)})")
        if key in out:
            raise InvalidInput(f"--map: {key} is mapped twice")
        out[key] = column.strip()
    if not any(k in out for k in ATTRIBUTES):
        raise InvalidInput("no attribute column is mapped; map at least one of country, network, mccmnc, mcc")
    if "price" not in out:
        raise InvalidInput("no price column is mapped (--map price=COLUMN)")
    return out


def parse_price(text: str) -> int:
    """A price cell: '0.05', '0,05', ' 1 000.5 '; negatives become positive."""
    raw = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError("not a price") from exc
    if not value.is_finite():
        raise ValueError("not a price")
    try:
        return abs(to_micros(value))
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


def _rule_index(values: tuple[str, ...]) -> dict[str, list[str]]:
    return {v.replace("_", " "): [v] for v in values}


_BR = _rule_index(BILLING_RULES)
_QR = _rule_index(QUANTITY_RULES)


def run(
    session: Session,
    *,
    path: str | Path,
    service_ref: str,
    scope_id: int | None,
    node_path: str,
    maps: dict[str, str],
    start_row: int = 2,
    duplicates: str = "error",
    sheet: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor: str = "unknown",
) -> ImportResult:
    if duplicates not in DUPLICATES:
        raise InvalidInput(f"--duplicates must be one of {', '.join(DUPLICATES)}")
    file = Path(path)
    svc = catalog.get(session, service_ref)
    sc = catalog.pick_scope(session, svc, scope_id)
    roots = tr.load(session, sc.id)
    parts = [p for p in node_path.strip("/").split("/") if p]
    target = tr.find(roots, node_path)
    if target is None:
        raise NotFound(f"node {node_path!r} not found in service {svc.name!r} scope #{sc.id}")
    if len(parts) < 2:
        raise InvalidInput("import into a node from the second level down (a resource or below), not a domain")
    br, qr = tr.inherited_rules(roots, node_path)
    if not br or not qr:
        raise InvalidInput(f"set the billing rule and the quantity rule of {node_path!r} (or above) before importing")

    rows = read_rows(file, sheet=sheet)
    first = next(rows, None)
    if first is None:
        raise InvalidInput(f"{file.name}: no data rows")
    header = list(first[1].keys())
    missing = [c for c in maps.values() if c not in header]
    if missing:
        raise InvalidInput(
            f"{file.name}: no column named {', '.join(map(repr, missing))} (columns: {', '.join(header)})"
        )
    attrs = sorted((a for a in ATTRIBUTES if a in maps), key=lambda a: header.index(maps[a]))
    # network and mccmnc together make one level keyed by MCCMNC, labelled with the network name
    levels: list[str] = []
    for a in attrs:
        level = "network" if a in ("network", "mccmnc") else a
        if level not in levels:
            levels.append(level)
    result = ImportResult(service=svc.name, scope=sc.id, node="/".join(parts), levels=levels)

    def bad(row: int, attr: str, value: str, reason: str) -> None:
        result.errors.append({"row": row, "column": maps[attr], "value": value, "reason": reason})

    # key tuple → (row number, label, price, br, qr)
    chosen: dict[tuple[str, ...], tuple[int, str | None, int, str | None, str | None]] = {}
    dup_rows: dict[tuple[str, ...], list[int]] = {}
    invalid_rows: set[int] = set()

    def rows_from_start():
        yield first
        yield from rows

    for number, row in rows_from_start():
        if number < start_row:
            continue
        result.rows_read += 1
        ok = True
        country = None
        key: dict[str, str] = {}
        label = None
        if "country" in maps:
            text = row.get(maps["country"], "")
            if text.strip().lower() in ("others", "rest of world", "rest of the world", "*"):
                country = OTHERS
            else:
                country = dic.match_country(text)
                if country is None:
                    bad(number, "country", text, "no country matches" if text else "empty")
                    ok = False
            key["country"] = country or ""
        if "mcc" in maps:
            text = row.get(maps["mcc"], "")
            try:
                m = dic.normalise_mccmnc(text)
                key["mcc"] = m.mcc
                if country and country != OTHERS and dic.mcc_country(m.mcc) != country:
                    bad(number, "mcc", text, f"MCC {m.mcc} is {dic.mcc_country(m.mcc)}, not {country}")
                    ok = False
            except dic.MccmncError as exc:
                bad(number, "mcc", text, str(exc))
                ok = False
        if "mccmnc" in maps:
            text = row.get(maps["mccmnc"], "")
            label = row.get(maps["network"], "") or None if "network" in maps else None
            if text.strip().lower() in WHOLE_COUNTRY:
                key["network"] = OTHERS
            else:
                try:
                    m = dic.normalise_mccmnc(text)
                    key["network"] = m.key
                    if country and country != OTHERS and dic.mcc_country(m.mcc) != country:
                        bad(number, "mccmnc", text, f"MCC {m.mcc} is {dic.mcc_country(m.mcc)}, not {country}")
                        ok = False
                    if label is None:
                        label = dic.network_name(m.key)
                except dic.MccmncError as exc:
                    bad(number, "mccmnc", text, str(exc))
                    ok = False
        elif "network" in maps:
            text = row.get(maps["network"], "")
            if text.strip().lower() in WHOLE_COUNTRY:
                key["network"] = OTHERS
            else:
                mcc = None
                found = None
                if country and country != OTHERS:
                    for cand in _mccs_of(country):
                        found = dic.match_network(text, mcc=cand)
                        if found:
                            break
                else:
                    found = dic.match_network(text, mcc=mcc)
                if found is None:
                    bad(number, "network", text, "no network in the MCC/MNC dictionary matches")
                    ok = False
                else:
                    key["network"], label = found, text
        price_text = row.get(maps["price"], "")
        price = 0
        try:
            price = parse_price(price_text)
        except ValueError as exc:
            bad(number, "price", price_text, str(exc) if price_text else "empty")
            ok = False
        row_br = row_qr = None
        if "billing_rule" in maps and row.get(maps["billing_rule"], "").strip():
            row_br = dic.match_best(row[maps["billing_rule"]], _BR)
            if row_br is None:
                bad(number, "billing_rule", row[maps["billing_rule"]], f"not one of {', '.join(BILLING_RULES)}")
                ok = False
        if "quantity_rule" in maps and row.get(maps["quantity_rule"], "").strip():
            row_qr = dic.match_best(row[maps["quantity_rule"]], _QR)
            if row_qr is None:
                bad(number, "quantity_rule", row[maps["quantity_rule"]], f"not one of {', '.join(QUANTITY_RULES)}")
                ok = False
        if not ok:
            invalid_rows.add(number)
            continue
        k = tuple(key[level] for level in levels)
        if k in chosen:
            dup_rows.setdefault(k, [chosen[k][0]]).append(number)
            if duplicates == "last":
                chosen[k] = (number, label, price, row_br, row_qr)
            continue
        chosen[k] = (number, label, price, row_br, row_qr)

    for k, nums in dup_rows.items():
        if duplicates == "error":
            for n in nums:
                result.errors.append(
                    {
                        "row": n,
                        "column": None,
                        "value": "/".join(k),
                        "reason": f"duplicate of rows {', '.join(map(str, nums))}",
                    }
                )
                invalid_rows.add(n)
            chosen.pop(k, None)
        else:
            result.rows_skipped += len(nums) - 1
    result.errors.sort(key=lambda e: (e["row"], e["column"] or ""))
    result.rows_skipped += len(invalid_rows)

    # Build the subtree in memory, in file order.
    children: list[tr.Node] = []
    index: dict[tuple[str, ...], tr.Node] = {}
    for k, (_n, label, price, row_br, row_qr) in chosen.items():
        level_nodes = children
        for depth, level in enumerate(levels):
            prefix = k[: depth + 1]
            node = index.get(prefix)
            if node is None:
                last = depth == len(levels) - 1
                node = tr.Node(level=level, value=k[depth])
                if last:
                    node.price_type, node.price = "flat", price
                    node.billing_rule, node.quantity_rule = row_br, row_qr
                    node.label = label if level == "network" else None
                else:
                    node.depends_on = levels[depth + 1]
                index[prefix] = node
                level_nodes.append(node)
            level_nodes = node.children
    _others_last(children)
    result.rows_imported = len(chosen)
    result.leaves = len(chosen)
    preview_root = tr.Node(level=target.level, value=target.value, depends_on=levels[0], children=children)
    result.preview = tr.render_text([preview_root], svc.currency)

    if dry_run or (result.errors and not skip_invalid):
        return result
    if not chosen:
        raise InvalidInput("no valid row to import; nothing was written")
    row = session.get(RateNode, target.id)
    assert row is not None
    removed = tr.delete_children(session, sc.id, row.id)
    row.depends_on, row.price_type, row.price, row.scale, row.counter_group = levels[0], "depends", None, None, None
    session.add(row)
    session.flush()
    inserted = tr.insert_subtree(session, sc.id, row.id, children)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    rec = catalog.record_import(
        session,
        service_id=svc.id,
        scope_id=sc.id,
        node_path=result.node,
        file_name=file.name,
        sha256=digest,
        rows_read=result.rows_read,
        rows_imported=result.rows_imported,
        rows_skipped=result.rows_skipped,
        leaves=result.leaves,
        actor=actor,
        at=clock.now(),
    )
    audit.record(
        session,
        action="import",
        object_type="rate_node",
        object_id=row.id,
        new={"file": file.name, "sha256": digest, "removed": removed, "inserted": inserted, "import_id": rec.id},
    )
    result.written = True
    result.import_id = rec.id
    return result


def _others_last(nodes: list[tr.Node]) -> None:
    nodes.sort(key=lambda n: n.value == OTHERS)
    for n in nodes:
        _others_last(n.children)


def _mccs_of(country: str) -> list[str]:
    countries, _ = dic.mcc_table()
    return [m for m, c in countries.items() if c == country]
