"""`rates import`: rates from a CSV/XLSX sheet into the subtree under a node.

Columns are declared with ``--map ATTR=COLUMN``: attributes (country, network,
mccmnc, mcc, mnc) shape the tree, in the order the columns appear in the file;
properties (price, billing_rule, quantity_rule) fill its leaves. Reading the
sheet (header row, MCC/MNC) is ``catalog.sheet``'s.

Two modes: ``merge`` (the default: a rate change notice) adds or updates the
destinations the sheet names and keeps the others; ``replace`` makes the
subtree exactly the sheet's, removing the destinations it does not name. Either
way the result carries the destination diff (``catalog.rate_diff``). Rows for
one destination with the same price and rules are repeats, not errors (the
first row's network name is kept); rows with different ones follow
``duplicates``. All in one transaction (the command's).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.audit import service as audit
from cpaas_cli.catalog import ownership, rate_diff, templates
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import sheet as sh
from cpaas_cli.catalog import tree as tr
from cpaas_cli.catalog.sheet import ATTRIBUTES, parse_maps, parse_price
from cpaas_cli.catalog.vocab import OTHERS
from cpaas_cli.db import bulk
from cpaas_cli.errors import InvalidInput, NotFound
from cpaas_cli.models.catalog import RateImport, RateNode

if TYPE_CHECKING:
    from cpaas_cli.identity.access import Principal

DUPLICATES = ("first", "last", "error")
MODES = rate_diff.MODES


@dataclass
class ImportResult:
    service: str
    scope: int
    node: str
    levels: list[str]
    mode: str = "merge"
    header_row: int | None = None
    header_detected: bool = False
    rows_read: int = 0
    rows_imported: int = 0
    rows_skipped: int = 0
    rows_repeated: int = 0
    leaves: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False
    import_id: int | None = None
    created_nodes: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    by_country: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    preview: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def run(
    session: Session,
    *,
    path: str | Path,
    service_ref: str,
    scope_id: int | None,
    node_path: str,
    maps: dict[str, str],
    header_row: int | None = None,
    duplicates: str = "error",
    sheet: str | None = None,
    mode: str = "merge",
    create_node: bool = False,
    billing_rule: str = templates.DEFAULT_BILLING_RULE,
    quantity_rule: str = templates.DEFAULT_QUANTITY_RULE,
    dry_run: bool = False,
    skip_invalid: bool = False,
    confirm_removal=None,
    actor: str = "unknown",
    principal: Principal | None = None,
) -> ImportResult:
    """Import a sheet. ``confirm_removal(n)`` is called before a replace that
    removes ``n`` destinations is written (it raises to stop)."""
    if duplicates not in DUPLICATES:
        raise InvalidInput(f"--duplicates must be one of {', '.join(DUPLICATES)}")
    if mode not in MODES:
        raise InvalidInput(f"--mode must be one of {', '.join(MODES)}")
    file = Path(path)
    svc = catalog.get(session, service_ref, seen=ownership.seen_by(session, principal))
    ownership.may_import(session, principal, svc)  # RIM-14: only into a service the user's company owns
    sc = catalog.pick_scope(session, svc, scope_id)
    roots = tr.load(session, sc.id)
    created: list[str] = []
    if create_node:
        br_, qr_ = templates.check_rules(billing_rule, quantity_rule)
        created = templates.with_node(roots, node_path, billing_rule=br_, quantity_rule=qr_)
        if created:
            tr.save(session, sc.id, roots)
            roots = tr.load(session, sc.id)
    parts = [p for p in node_path.strip("/").split("/") if p]
    target = tr.find(roots, node_path)
    if target is None:
        hint = "; --create-node builds it" if not create_node else ""
        raise NotFound(f"node {node_path!r} not found in service {svc.name!r} scope #{sc.id}{hint}")
    if len(parts) < 2:
        raise InvalidInput("import into a node from the second level down (a resource or below), not a domain")
    br, qr = tr.inherited_rules(roots, node_path)
    if not br or not qr:
        raise InvalidInput(f"set the billing rule and the quantity rule of {node_path!r} (or above) before importing")

    book = sh.open_sheet(file, maps, header_row=header_row, sheet=sheet)
    levels = sh.levels_of(maps, book.columns)
    result = ImportResult(
        service=svc.name,
        scope=sc.id,
        node="/".join(parts),
        levels=levels,
        mode=mode,
        header_row=book.header_row,
        header_detected=book.detected,
        created_nodes=created,
    )
    chosen = _read_entries(book, maps, levels, duplicates, result)
    children = _subtree(chosen, levels)
    result.rows_imported = len(chosen)
    result.leaves = len(chosen)
    preview_root = tr.Node(level=target.level, value=target.value, depends_on=levels[0], children=children)
    result.preview = tr.render_text([preview_root], svc.currency)

    old = target.children
    new = children if mode == "replace" else rate_diff.merge(result.node, target.depends_on, old, children)
    d = rate_diff.diff(old, new)
    result.changes, result.summary, result.by_country = d["changes"], d["summary"], d["by_country"]

    if dry_run or (result.errors and not skip_invalid):
        return result
    if not chosen:
        raise InvalidInput("no valid row to import; nothing was written")
    if result.summary["removed"] and confirm_removal is not None:
        confirm_removal(result.summary["removed"])
    row = session.get(RateNode, target.id)
    assert row is not None
    if mode == "replace":
        removed = tr.delete_children(session, sc.id, row.id)
        inserted = tr.insert_subtree(session, sc.id, row.id, children)
        updated = 0
    else:
        removed = 0
        inserted, updated = _write_merge(session, sc.id, row.id, old, new)
    row.depends_on, row.price_type, row.price, row.scale, row.counter_group = levels[0], "depends", None, None, None
    session.add(row)
    session.flush()
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    rec = record_import(
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
        new={
            "file": file.name,
            "sha256": digest,
            "mode": mode,
            "removed": removed,
            "inserted": inserted,
            "updated": updated,
            "destinations": result.summary,
            "import_id": rec.id,
        },
    )
    result.written = True
    result.import_id = rec.id
    return result


def _read_entries(
    book: sh.Sheet, maps: dict[str, str], levels: list[str], duplicates: str, result: ImportResult
) -> dict[tuple[str, ...], sh.Entry]:
    """The valid rows by destination; errors, repeats and skips counted in ``result``."""

    def bad(row: int, attr: str, value: str, reason: str) -> None:
        result.errors.append({"row": row, "column": book.names[attr], "value": value, "reason": reason})

    chosen: dict[tuple[str, ...], sh.Entry] = {}
    conflicts: dict[tuple[str, ...], list[sh.Entry]] = {}
    invalid_rows: set[int] = set()
    for number, row in book.rows:
        result.rows_read += 1
        entry = sh.parse_row(number, row, maps, levels, bad)
        if entry is None:
            invalid_rows.add(number)
            continue
        have = chosen.get(entry.key)
        if have is None:
            chosen[entry.key] = entry
        elif have.rate() == entry.rate() and entry.key not in conflicts:
            result.rows_repeated += 1
        else:
            conflicts.setdefault(entry.key, [have]).append(entry)
            if duplicates == "last":
                chosen[entry.key] = entry
    for key, entries in conflicts.items():
        if duplicates == "error":
            rows = [e.row for e in entries]
            for e in entries:
                others = [x for x in entries if x is not e]
                attrs = sorted({a for x in others for a in sh.conflict_attrs(e, x)}, key=book.columns.__getitem__)
                columns = [book.names[a] for a in attrs]
                result.errors.append(
                    {
                        "row": e.row,
                        "column": ", ".join(columns),
                        "value": ", ".join(e.cells.get(a, "") for a in attrs),
                        "reason": (
                            f"{'/'.join(key)} is in rows {', '.join(map(str, rows))} "
                            f"with different {' and '.join(columns)}"
                        ),
                    }
                )
                invalid_rows.add(e.row)
            chosen.pop(key, None)
        else:
            result.rows_skipped += len(entries) - 1
    result.errors.sort(key=lambda e: (e["row"], e["column"] or ""))
    result.rows_skipped += len(invalid_rows) + result.rows_repeated
    return chosen


def _subtree(chosen: dict[tuple[str, ...], sh.Entry], levels: list[str]) -> list[tr.Node]:
    """The sheet's subtree in memory, in file order (``others`` last)."""
    children: list[tr.Node] = []
    index: dict[tuple[str, ...], tr.Node] = {}
    for k, e in chosen.items():
        level_nodes = children
        for depth, level in enumerate(levels):
            prefix = k[: depth + 1]
            node = index.get(prefix)
            if node is None:
                node = tr.Node(level=level, value=k[depth])
                if depth == len(levels) - 1:
                    node.price_type, node.price = "flat", e.price
                    node.billing_rule, node.quantity_rule = e.billing_rule, e.quantity_rule
                    node.label = e.label if level == "network" else None
                else:
                    node.depends_on = levels[depth + 1]
                index[prefix] = node
                level_nodes.append(node)
            level_nodes = node.children
    _collapse(children)
    rate_diff.others_last(children)
    return children


def _collapse(nodes: list[tr.Node]) -> None:
    """A node whose only child is ``others`` (a row "Others, all networks")
    is that one price: it becomes a leaf, as a tree file would write it."""
    for n in nodes:
        _collapse(n.children)
        if len(n.children) == 1 and n.children[0].value == OTHERS and not n.children[0].children:
            leaf = n.children[0]
            n.depends_on, n.children = None, []
            for a in ("price_type", "price", "scale", "counter_group", "billing_rule", "quantity_rule"):
                setattr(n, a, getattr(leaf, a))


def _write_merge(
    session: Session, scope_id: int, parent_id: int, old: list[tr.Node], new: list[tr.Node]
) -> tuple[int, int]:
    """Write the merged subtree: new nodes inserted, changed ones updated (by id). (inserted, updated)."""
    before = {n.id: n for _p, n, _parent in tr.walk(old) if n.id is not None}
    index: dict[int | None, int] = {}

    def number(nodes: list[tr.Node]) -> None:
        for i, n in enumerate(nodes):
            index[n.id] = i
            number(n.children)

    number(old)
    inserts: list[tuple[int, int, tr.Node]] = []
    updates: dict[int, dict[str, Any]] = {}

    def visit(nodes: list[tr.Node], pid: int) -> None:
        for pos, n in enumerate(nodes):
            if n.id is None:
                inserts.append((pid, pos, n))
                continue
            o = before[n.id]
            values = {a: getattr(n, a) for a in tr.ATTRS if getattr(n, a) != getattr(o, a)}
            if values or index.get(n.id) != pos:
                updates[n.id] = {"position": pos, **{a: getattr(n, a) for a in tr.ATTRS}}
            visit(n.children, n.id)

    visit(new, parent_id)
    inserted = tr.insert_nodes(session, scope_id, inserts)
    if updates:
        table = RateNode.__table__
        ids = list(updates)
        names = ["position", *tr.ATTRS, "updated_at"]
        now = clock.now()
        columns = {c: [now if c == "updated_at" else updates[i][c] for i in ids] for c in names}
        bulk.writer(session).update_by_id(table, ids, columns)
    return inserted, len(updates)


__all__ = ["ATTRIBUTES", "DUPLICATES", "MODES", "ImportResult", "parse_maps", "parse_price", "run"]


def record_import(session: Session, **values: Any) -> RateImport:
    row = RateImport(**values)
    session.add(row)
    session.flush()
    return row


def import_history(session: Session, *, service_ref: str | None = None) -> list[RateImport]:
    q = select(RateImport).order_by(col(RateImport.id))
    if service_ref:
        q = q.where(RateImport.service_id == catalog.get(session, service_ref).id)
    return list(session.exec(q))
