"""Price lookup: a pure function over an in-memory snapshot of one scope's tree.

Pure like the engine beside it: no database, no file, no I/O (the loading of a
scope's tree lives in ``catalog``: ``catalog.tree.load``, ``catalog.service``,
``charging.plans``).

Load a scope's tree once (``Snapshot.of(nodes, ...)``), then call
:func:`resolve` per event: no I/O happens inside. The walk starts at the
service domain (channel) and the resource, then follows each node's
``depends_on`` level with the event's value for it, falling back to the
``others`` child; MCCMNC-keyed levels (network, mno, mccmnc) also accept the
country row (the 3-digit MCC) before ``others`` (AMB-17).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OTHERS = "others"

# Resources whose leaves need a billing and a quantity rule to be usable.
MESSAGE_RESOURCES = {
    "sms_message",
    "rcs_message",
    "viber_message",
    "whatsapp_message",
    "whatsapp_conversation",
    "wechat_message",
    "email_message",
    "telegram_message",
    "push_message",
    "tts_message",
    "voice_call",
    "push_partner_message",
}

# Levels matched against the MCCMNC of a message (with the MCC row as fallback).
MCCMNC_LEVELS = {"network", "mno", "mccmnc"}

# Result statuses
RATE = "rate"  # flat or scale price
FREE = "free"
INCLUDED = "included"
BLOCKED = "blocked"
NOT_INCLUDED = "not_included"
NO_RATE = "no_rate"
UNUSABLE = "unusable"


class SNode:
    __slots__ = (
        "level",
        "value",
        "depends_on",
        "price_type",
        "price",
        "scale",
        "counter_group",
        "billing_rule",
        "quantity_rule",
        "children",
        "others",
        "bad",
    )

    def __init__(self, n: Any, br: str | None, qr: str | None, bad: str | None):
        self.level = n.level
        self.value = n.value
        self.depends_on = n.depends_on
        self.price_type = n.price_type
        self.price = n.price
        self.scale = n.scale
        self.counter_group = n.counter_group
        self.billing_rule = br
        self.quantity_rule = qr
        self.bad = bad
        self.children: dict[str, SNode] = {}
        self.others: SNode | None = None


@dataclass(frozen=True)
class Snapshot:
    """One scope's tree, ready for lookups. ``domains`` maps a channel to its node."""

    service_id: int | None
    service: str | None
    scope_id: int | None
    currency: str | None
    domains: dict[str, SNode]
    # Memo of pure lookups on this snapshot, filled by callers (see rating.engine).
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        roots: list[Any],
        *,
        service_id: int | None = None,
        service: str | None = None,
        scope_id: int | None = None,
        currency: str | None = None,
    ) -> Snapshot:
        bad = {u["path"]: u["reason"] for u in unusable(roots)}

        def conv(n: Any, parts: tuple[str, ...], br: str | None, qr: str | None) -> SNode:
            parts = (*parts, n.value)
            br = n.billing_rule or br
            qr = n.quantity_rule or qr
            s = SNode(n, br, qr, bad.get("/".join(parts)))
            for c in n.children:
                child = conv(c, parts, br, qr)
                if c.value == OTHERS:
                    s.others = child
                else:
                    s.children[c.value] = child
            return s

        return cls(service_id, service, scope_id, currency, {r.value: conv(r, (), None, None) for r in roots})


@dataclass
class Result:
    status: str
    reason: str | None = None
    price_type: str | None = None
    price: int | None = None  # micro-units, flat rate
    scale: dict | None = None  # {"type", "steps": [[upto, micros], ...]}
    counter_group: str | None = None
    billing_rule: str | None = None
    quantity_rule: str | None = None
    currency: str | None = None
    service: str | None = None
    service_id: int | None = None
    scope_id: int | None = None
    path: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.status in (RATE, FREE, INCLUDED)


def query(
    *,
    channel: str,
    resource: str | None = None,
    direction: str | None = "mt",
    mccmnc: str | None = None,
    mcc: str | None = None,
    country: str | None = None,
    sender_type: str | None = None,
    **others: str | None,
) -> dict[str, str | None]:
    """The event attributes a lookup walks with (plain dict; build it once per event)."""
    if mccmnc and not mcc:
        mcc = mccmnc[:3]
    return {
        "domain": channel,
        "resource": resource or f"{channel}_message",
        "direction": direction,
        "mccmnc": mccmnc,
        "mcc": mcc,
        "country": country,
        "sender_type": sender_type,
        **others,
    }


def resolve(snap: Snapshot, q: dict[str, str | None]) -> Result:
    """Walk the tree for the event ``q``; pure and allocation-light."""
    node = snap.domains.get(q.get("domain") or "")
    path: list[dict[str, Any]] = []
    if node is None:
        return _miss(snap, NO_RATE, f"the tree has no {q.get('domain')!r} service domain", path)
    path.append({"level": "domain", "value": node.value, "others": False})
    while node.price_type == "depends":
        if node.bad:
            return _miss(snap, UNUSABLE, f"{'/'.join(p['value'] for p in path)}: {node.bad}", path)
        level = node.depends_on or ""
        if level in MCCMNC_LEVELS:
            want = q.get("mccmnc")
            child = node.children.get(want) if want else None
            if child is None and q.get("mcc"):
                child = node.children.get(q["mcc"])  # type: ignore[arg-type]
        else:
            want = q.get(level)
            child = node.children.get(want) if want else None
        via_others = False
        if child is None:
            child = node.others
            via_others = True
        if child is None:
            where = "/".join(p["value"] for p in path)
            return _miss(snap, NO_RATE, f"{where}: no child for {level}={want} and no others", path)
        path.append({"level": level, "value": child.value, "others": via_others})
        node = child
    if node.bad:
        return _miss(snap, UNUSABLE, f"{'/'.join(p['value'] for p in path)}: {node.bad}", path)
    pt = node.price_type
    status = {"flat": RATE, "scale": RATE, "free": FREE, "included": INCLUDED, "blocked": BLOCKED}.get(pt, NOT_INCLUDED)
    reason = None
    if status == BLOCKED:
        reason = "blocked: matching events are not processed"
    elif status == NOT_INCLUDED:
        reason = "not included in this tree"
    return Result(
        status=status,
        reason=reason,
        price_type=pt,
        price=0 if pt == "free" else node.price,
        scale=node.scale,
        counter_group=node.counter_group,
        billing_rule=node.billing_rule,
        quantity_rule=node.quantity_rule,
        currency=snap.currency,
        service=snap.service,
        service_id=snap.service_id,
        scope_id=snap.scope_id,
        path=path,
    )


def _miss(snap: Snapshot, status: str, reason: str, path: list[dict[str, Any]]) -> Result:
    return Result(
        status=status,
        reason=reason,
        currency=snap.currency,
        service=snap.service,
        service_id=snap.service_id,
        scope_id=snap.scope_id,
        path=path,
    )


def unusable(roots: list[Any]) -> list[dict[str, str]]:
    """Nodes (``catalog.tree.Node``) whose rate cannot be used, with the reason (SRV-06)."""
    out: list[dict[str, str]] = []

    def visit(n: Any, parts: tuple[str, ...], resource: str | None, br: str | None, qr: str | None) -> None:
        parts = (*parts, n.value)
        if n.level == "resource":
            resource = n.value
        br = n.billing_rule or br
        qr = n.quantity_rule or qr
        path = "/".join(parts)
        if n.price_type == "depends":
            if not n.children:
                out.append({"path": path, "reason": f"depends on {n.depends_on} but has no children"})
            for c in n.children:
                visit(c, parts, resource, br, qr)
            return
        if n.price_type == "flat" and n.price is None:
            out.append({"path": path, "reason": "flat rate without a price"})
        if n.price_type == "scale" and not (n.scale and n.scale.get("steps")):
            out.append({"path": path, "reason": "scale without steps"})
        if n.price_type in ("flat", "scale") and resource in MESSAGE_RESOURCES:
            missing = [name for name, v in (("billing rule", br), ("quantity rule", qr)) if not v]
            if missing:
                out.append({"path": path, "reason": f"no {' and no '.join(missing)} here or above"})

    for r in roots:
        visit(r, (), None, None, None)
    return out


__all__ = ["MESSAGE_RESOURCES", "Result", "Snapshot", "query", "resolve", "unusable"]
