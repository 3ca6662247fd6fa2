"""Rate trees in memory: parsing the declarative file format, exporting it,
diffing two trees, finding unusable nodes, and loading/saving a scope's tree.

File format (YAML or JSON)::

    service: SMS service        # informative on apply
    scope: 3                    # informative on apply
    tree:
      sms:                      # service domain (channel)
        depends_on: resource
        children:
          sms_message:
            depends_on: direction
            billing_rule: submitted
            quantity_rule: segments
            children:
              mo: {price_type: free}
              mt:
                depends_on: country
                children:
                  ES:
                    depends_on: network
                    children:
                      "21401": {label: Vodafone Spain, price: "0.04"}
                      others: {price: "0.08"}
                  others:
                    scale: {type: tier, steps: [[10000, "0.05"], [50000, "0.04"], [null, "0.03"]]}

A node with ``depends_on`` has children keyed by values of that level
(``others`` is the fallback). Leaves carry a price type: ``flat`` (``price``),
``scale`` (``scale``), ``free``, ``included``, ``not_included``, ``blocked``.
Empty ``billing_rule``/``quantity_rule`` inherit from the parent. Prices are
decimal strings in the service currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli.catalog.vocab import (
    COUNTER_GROUPS,
    LEVELS,
    OTHERS,
    PURCHASE_RESOURCES,
    ValueError_,
    normalise_value,
    slug,
)
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.models.catalog import BILLING_RULES, PRICE_TYPES, QUANTITY_RULES, RateNode
from cpaas_cli.money import MoneyError, format_micros, to_micros
from cpaas_cli.rating.lookup import unusable
from cpaas_cli.rating.scales import SCALE_TYPES, ScaleError, check_steps

ATTRS = ("label", "depends_on", "price_type", "price", "scale", "counter_group", "billing_rule", "quantity_rule")


@dataclass
class Node:
    level: str
    value: str
    label: str | None = None
    depends_on: str | None = None
    price_type: str = "depends"
    price: int | None = None
    scale: dict | None = None
    counter_group: str | None = None
    billing_rule: str | None = None
    quantity_rule: str | None = None
    children: list[Node] = field(default_factory=list)
    id: int | None = None

    def attrs(self) -> dict[str, Any]:
        return {a: getattr(self, a) for a in ATTRS}


def path_of(parts: list[str]) -> str:
    return "/".join(parts)


def walk(roots: list[Node], prefix: tuple[str, ...] = ()):
    """(path parts, node, parent parts) in pre-order."""
    for n in roots:
        parts = (*prefix, n.value)
        yield parts, n, prefix
        yield from walk(n.children, parts)


# ------------------------------------------------------------------ parsing


def _price(text: Any, where: str, problems: list[Problem]) -> int | None:
    if isinstance(text, float):
        text = repr(text)
    try:
        micros = to_micros(str(text))
    except MoneyError as exc:
        problems.append(Problem(where, str(exc)))
        return None
    if micros < 0:
        problems.append(Problem(where, "a price cannot be negative"))
        return None
    return micros


def parse_scale(raw: Any, where: str, problems: list[Problem]) -> dict | None:
    if not isinstance(raw, dict):
        problems.append(Problem(where, "scale must be a mapping with type and steps"))
        return None
    stype = slug(raw.get("type", "tier"))
    if stype not in SCALE_TYPES:
        problems.append(Problem(where, f"scale type must be one of {', '.join(SCALE_TYPES)}"))
        return None
    steps = []
    for i, step in enumerate(raw.get("steps") or []):
        if not isinstance(step, list | tuple) or len(step) != 2:
            problems.append(Problem(where, f"step {i + 1} must be [upto, price]"))
            return None
        upto, price = step
        micros = _price(price, f"{where} step {i + 1}", problems)
        if micros is None:
            return None
        if upto is not None and not (isinstance(upto, int) or str(upto).isdigit()):
            problems.append(Problem(where, f"step {i + 1}: threshold must be a whole number or null"))
            return None
        steps.append([None if upto is None else int(upto), micros])
    try:
        check_steps(steps)
    except ScaleError as exc:
        problems.append(Problem(where, str(exc)))
        return None
    return {"type": stype, "steps": steps}


def _rule(value: Any, allowed: tuple[str, ...], where: str, problems: list[Problem]) -> str | None:
    if value is None or str(value).strip().lower() in ("", "default"):
        return None
    key = slug(value)
    if key not in allowed:
        problems.append(Problem(where, f"must be one of {', '.join(allowed)} or default"))
        return None
    return key


def _parse_node(level: str, key: Any, raw: Any, where: str, problems: list[Problem]) -> Node | None:
    try:
        value = normalise_value(level, key)
    except ValueError_ as exc:
        problems.append(Problem(where, str(exc)))
        return None
    where = f"{where.rsplit('/', 1)[0]}/{value}" if "/" in where else value
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(Problem(where, "a node must be a mapping"))
        return None
    unknown = set(raw) - {*ATTRS, "children"}
    if unknown:
        problems.append(Problem(where, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}"))
    node = Node(level=level, value=value, label=(str(raw["label"]) if raw.get("label") is not None else None))
    depends = raw.get("depends_on")
    if level == "domain" and depends is None:
        depends = "resource"
    children = raw.get("children") or {}
    if depends is not None:
        depends = slug(depends)
        if depends not in LEVELS:
            problems.append(Problem(where, f"depends_on must be one of {', '.join(LEVELS)}"))
            depends = None
        elif level == "domain" and depends != "resource":
            problems.append(Problem(where, "a service domain depends on resource"))
    node.depends_on = depends
    ptype = raw.get("price_type")
    if ptype is None:
        if depends is not None or children:
            ptype = "depends"
        elif raw.get("scale") is not None:
            ptype = "scale"
        elif raw.get("price") is not None:
            ptype = "flat"
        else:
            problems.append(Problem(where, "price_type is missing"))
            ptype = "depends"
    ptype = slug(ptype)
    if ptype not in PRICE_TYPES:
        problems.append(Problem(where, f"price_type must be one of {', '.join(PRICE_TYPES)}"))
        ptype = "depends"
    node.price_type = ptype
    if ptype == "depends" and depends is None:
        problems.append(Problem(where, "price_type depends needs depends_on"))
    if ptype != "depends" and (depends is not None or children):
        problems.append(Problem(where, f"a {ptype} node cannot have depends_on or children"))
    if raw.get("price") is not None:
        if ptype != "flat":
            problems.append(Problem(where, f"price is only for flat nodes (this one is {ptype})"))
        node.price = _price(raw["price"], f"{where} price", problems)
    if raw.get("scale") is not None:
        if ptype != "scale":
            problems.append(Problem(where, f"scale is only for scale nodes (this one is {ptype})"))
        node.scale = parse_scale(raw["scale"], f"{where} scale", problems)
    cg = raw.get("counter_group")
    if cg is not None and str(cg).strip():
        cg = slug(cg)
        if cg not in COUNTER_GROUPS:
            problems.append(Problem(where, f"counter_group must be one of {', '.join(COUNTER_GROUPS)}"))
        elif ptype != "scale":
            problems.append(Problem(where, "counter_group is only for scale nodes"))
        node.counter_group = cg
    node.billing_rule = _rule(raw.get("billing_rule"), BILLING_RULES, f"{where} billing_rule", problems)
    node.quantity_rule = _rule(raw.get("quantity_rule"), QUANTITY_RULES, f"{where} quantity_rule", problems)
    if not isinstance(children, dict):
        problems.append(Problem(where, "children must be a mapping of value to node"))
        children = {}
    seen: set[str] = set()
    for ckey, craw in children.items():
        if depends is None:
            break
        child = _parse_node(depends, ckey, craw, f"{where}/{ckey}", problems)
        if child is None:
            continue
        if child.value in seen:
            problems.append(Problem(f"{where}/{child.value}", "appears twice"))
            continue
        seen.add(child.value)
        node.children.append(child)
    return node


def parse_document(doc: Any) -> list[Node]:
    """The tree of a file document; InvalidInput lists every bad value."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tree"), dict | type(None)):
        raise InvalidInput("a tree file is a mapping with a 'tree' mapping of service domains")
    problems: list[Problem] = []
    roots = []
    for key, raw in (doc.get("tree") or {}).items():
        node = _parse_node("domain", key, raw, str(key), problems)
        if node is not None:
            roots.append(node)
    for node in roots:
        if node.value == "service_purchase":
            _check_purchases(node, problems)
    if problems:
        raise InvalidInput.from_problems(problems, "the tree file")
    return roots


def _check_purchases(domain: Node, problems: list[Problem]) -> None:
    """Pack prices are read at service_purchase/<resource>/<pack name> only."""
    for res in domain.children:
        where = f"service_purchase/{res.value}"
        if res.value not in PURCHASE_RESOURCES:
            problems.append(
                Problem(where, f"pack prices go under {', '.join(PURCHASE_RESOURCES)}; {res.value!r} is never read")
            )
        elif res.depends_on not in (None, "pack"):
            problems.append(Problem(where, "a pack price depends on pack (the pack's name)"))


# ---------------------------------------------------------------- exporting


def scale_text(scale: dict | None) -> dict | None:
    if not scale:
        return None
    return {"type": scale["type"], "steps": [[u, format_micros(p)] for u, p in scale["steps"]]}


def node_document(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if n.label:
        out["label"] = n.label
    if n.price_type == "depends":
        out["depends_on"] = n.depends_on
    else:
        out["price_type"] = n.price_type
    if n.price is not None:
        out["price"] = format_micros(n.price)
    if n.scale:
        out["scale"] = scale_text(n.scale)
    for a in ("counter_group", "billing_rule", "quantity_rule"):
        if getattr(n, a):
            out[a] = getattr(n, a)
    if n.children:
        out["children"] = {c.value: node_document(c) for c in n.children}
    return out


def document(roots: list[Node], *, service: str | None = None, scope: int | None = None) -> dict[str, Any]:
    return {"service": service, "scope": scope, "tree": {n.value: node_document(n) for n in roots}}


# ------------------------------------------------------------------- checks


# --------------------------------------------------------------------- diff


def flatten(roots: list[Node]) -> dict[str, tuple[tuple[str, ...], Node]]:
    return {path_of(list(parts)): (parts, n) for parts, n, _ in walk(roots)}


def _shown(attr: str, value: Any) -> Any:
    if attr == "price":
        return format_micros(value)
    if attr == "scale":
        return scale_text(value)
    return value


def diff(old: list[Node], new: list[Node]) -> list[dict[str, Any]]:
    """Changes that turn ``old`` into ``new``: added, removed, changed nodes."""
    a, b = flatten(old), flatten(new)
    out: list[dict[str, Any]] = []
    for path, (_, n) in b.items():
        if path not in a:
            out.append({"op": "add", "path": path, "changes": {k: _shown(k, v) for k, v in n.attrs().items() if v}})
            continue
        o = a[path][1]
        changes = {
            k: {"from": _shown(k, getattr(o, k)), "to": _shown(k, v)}
            for k, v in n.attrs().items()
            if getattr(o, k) != v
        }
        if changes:
            out.append({"op": "change", "path": path, "changes": changes})
    for path in a:
        if path not in b:
            out.append({"op": "remove", "path": path, "changes": {}})
    return out


# ---------------------------------------------------------------- database


def load(session: Session, scope_id: int) -> list[Node]:
    table = RateNode.__table__
    rows = session.execute(
        sa.select(table).where(table.c.scope_id == scope_id).order_by(table.c.position, table.c.id)
    ).all()
    return build(rows)


def build(rows) -> list[Node]:
    nodes: dict[int, Node] = {}
    parents: list[tuple[int | None, Node]] = []
    for r in rows:
        n = Node(
            level=r.level,
            value=r.value,
            label=r.label,
            depends_on=r.depends_on,
            price_type=r.price_type,
            price=r.price,
            scale=r.scale,
            counter_group=r.counter_group,
            billing_rule=r.billing_rule,
            quantity_rule=r.quantity_rule,
            id=r.id,
        )
        nodes[r.id] = n
        parents.append((r.parent_id, n))
    roots = []
    for pid, n in parents:
        if pid is None:
            roots.append(n)
        elif pid in nodes:
            nodes[pid].children.append(n)
    return roots


def _row_values(n: Node) -> dict[str, Any]:
    return {
        "level": n.level,
        "value": n.value,
        "label": n.label,
        "depends_on": n.depends_on,
        "price_type": n.price_type,
        "price": n.price,
        "scale": n.scale,
        "counter_group": n.counter_group,
        "billing_rule": n.billing_rule,
        "quantity_rule": n.quantity_rule,
    }


def save(session: Session, scope_id: int, new: list[Node]) -> list[dict[str, Any]]:
    """Make the scope's stored tree equal to ``new`` (ORM writes, audited). Returns the diff."""
    old = load(session, scope_id)
    changes = diff(old, new)
    if not changes:
        return changes
    a = flatten(old)
    ids: dict[str, int | None] = {"": None}
    wanted = flatten(new)
    for path, (parts, n) in wanted.items():
        parent_path = path_of(list(parts[:-1]))
        position = _position(new, parts)
        if path in a:
            row = session.get(RateNode, a[path][1].id)
            assert row is not None
            for k, v in _row_values(n).items():
                if getattr(row, k) != v:
                    setattr(row, k, v)
            if row.position != position:
                row.position = position
            ids[path] = row.id
        else:
            row = RateNode(scope_id=scope_id, parent_id=ids[parent_path], position=position, **_row_values(n))
            session.add(row)
            session.flush()
            ids[path] = row.id
    gone = [a[p][1].id for p in sorted((p for p in a if p not in wanted), key=lambda p: -p.count("/"))]
    for node_id in gone:
        row = session.get(RateNode, node_id)
        if row is not None:
            session.delete(row)
    session.flush()
    return changes


def _position(roots: list[Node], parts: tuple[str, ...]) -> int:
    level = roots
    pos = 0
    for p in parts:
        for i, n in enumerate(level):
            if n.value == p:
                pos, level = i, n.children
                break
    return pos


def delete_children(session: Session, scope_id: int, parent_id: int) -> int:
    """Delete every node under ``parent_id`` (Core, deepest first). Returns the count."""
    rows = session.exec(select(RateNode.id, RateNode.parent_id).where(RateNode.scope_id == scope_id)).all()
    kids: dict[int | None, list[int]] = {}
    for nid, pid in rows:
        kids.setdefault(pid, []).append(nid)
    order: list[list[int]] = []
    frontier = kids.get(parent_id, [])
    while frontier:
        order.append(frontier)
        frontier = [c for n in frontier for c in kids.get(n, [])]
    count = 0
    table = RateNode.__table__
    for layer in reversed(order):
        for i in range(0, len(layer), 5000):
            chunk = layer[i : i + 5000]
            session.execute(sa.delete(table).where(table.c.id.in_(chunk)))
            count += len(chunk)
    return count


def insert_subtree(session: Session, scope_id: int, parent_id: int, children: list[Node]) -> int:
    """Bulk-insert ``children`` (and their subtrees) under ``parent_id``, one level at a time."""
    return insert_nodes(session, scope_id, [(parent_id, i, n) for i, n in enumerate(children)])


def insert_nodes(session: Session, scope_id: int, items: list[tuple[int, int, Node]]) -> int:
    """Bulk-insert nodes given as (parent id, position, node), with their subtrees,
    one level at a time; sets each node's ``id``. Returns the count."""
    table = RateNode.__table__
    count = 0
    layer: list[tuple[int, int, Node]] = list(items)
    while layer:
        values = [{"scope_id": scope_id, "parent_id": pid, "position": pos, **_row_values(n)} for pid, pos, n in layer]
        now = _now()
        for v in values:
            v["created_at"] = now
            v["updated_at"] = now
        result = session.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), values).all()
        count += len(layer)
        nxt: list[tuple[int, int, Node]] = []
        for (new_id,), (_, _, n) in zip(result, layer, strict=True):
            n.id = new_id
            nxt.extend((new_id, i, c) for i, c in enumerate(n.children))
        layer = nxt
    return count


def _now():
    from cpaas_cli import clock

    return clock.now()


def find(roots: list[Node], path: str) -> Node | None:
    level = roots
    node = None
    for part in [p for p in path.strip("/").split("/") if p]:
        node = next((n for n in level if n.value == part or n.value.lower() == part.lower()), None)
        if node is None:
            return None
        level = node.children
    return node


def inherited_rules(roots: list[Node], path: str) -> tuple[str | None, str | None]:
    level = roots
    br = qr = None
    for part in [p for p in path.strip("/").split("/") if p]:
        node = next((n for n in level if n.value.lower() == part.lower()), None)
        if node is None:
            break
        br = node.billing_rule or br
        qr = node.quantity_rule or qr
        level = node.children
    return br, qr


def render_text(roots: list[Node], currency: str | None = None) -> list[str]:
    """Indented lines for `tree show` and the import preview."""
    bad = {u["path"]: u["reason"] for u in unusable(roots)}
    lines: list[str] = []

    def visit(n: Node, parts: tuple[str, ...], depth: int) -> None:
        parts = (*parts, n.value)
        name = n.value + (f" ({n.label})" if n.label else "")
        if n.price_type == "depends":
            what = f"by {n.depends_on}"
        elif n.price_type == "flat":
            what = f"flat {format_micros(n.price)}" + (f" {currency}" if currency else "")
        elif n.price_type == "scale" and n.scale:
            steps = ", ".join(f"{format_micros(p)} ({'∞' if u is None else u})" for u, p in n.scale["steps"])
            what = f"{n.scale['type']}: {steps}" + (f" per {n.counter_group}" if n.counter_group else "")
        else:
            what = n.price_type
        rules = " ".join(x for x in (n.billing_rule, n.quantity_rule) if x)
        flag = f"  !! unusable: {bad[path_of(list(parts))]}" if path_of(list(parts)) in bad else ""
        lines.append(f"{'  ' * depth}{name}: {what}{(' [' + rules + ']') if rules else ''}{flag}")
        for c in n.children:
            visit(c, parts, depth + 1)

    for r in roots:
        visit(r, (), 0)
    return lines


__all__ = ["OTHERS", "Node"]
