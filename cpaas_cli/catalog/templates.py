"""Tree skeletons, so that a first rate import needs no hand-written tree file.

``sms-country-network`` (the usual SMS rate plan)::

    sms:                          depends on resource
      sms_message:                depends on direction; billing and quantity rule
        mo: free
        mt:                       depends on country (the import fills it)

The same shape serves any channel (``rcs/rcs_message/mt`` …): a rate import
with ``--create-node`` builds the missing nodes of its ``--node`` this way.
"""

from __future__ import annotations

from sqlmodel import Session

from cpaas_cli.catalog import tree as tr
from cpaas_cli.catalog.vocab import DOMAINS, slug
from cpaas_cli.errors import Conflict, InvalidInput
from cpaas_cli.models.catalog import BILLING_RULES, QUANTITY_RULES

TEMPLATES = ("sms-country-network",)
DEFAULT_BILLING_RULE = "submitted"
DEFAULT_QUANTITY_RULE = "segments"


def check_rules(billing_rule: str, quantity_rule: str) -> tuple[str, str]:
    br, qr = slug(billing_rule), slug(quantity_rule)
    if br not in BILLING_RULES:
        raise InvalidInput(f"--billing-rule must be one of {', '.join(BILLING_RULES)}")
    if qr not in QUANTITY_RULES:
        raise InvalidInput(f"--quantity-rule must be one of {', '.join(QUANTITY_RULES)}")
    return br, qr


def skeleton(domain: str, resource: str, *, billing_rule: str, quantity_rule: str) -> tr.Node:
    """DOMAIN/RESOURCE with mo free and mt by country (no countries yet)."""
    return tr.Node(
        level="domain",
        value=domain,
        depends_on="resource",
        children=[
            tr.Node(
                level="resource",
                value=resource,
                depends_on="direction",
                billing_rule=billing_rule,
                quantity_rule=quantity_rule,
                children=[
                    tr.Node(level="direction", value="mo", price_type="free"),
                    tr.Node(level="direction", value="mt", depends_on="country"),
                ],
            )
        ],
    )


def with_node(roots: list[tr.Node], node_path: str, *, billing_rule: str, quantity_rule: str) -> list[str]:
    """Add to ``roots`` (in place) the nodes of ``DOMAIN/RESOURCE/DIRECTION``
    that are missing, shaped as the template (a new resource gets the rules
    and, for an mt node, ``mo`` free beside it); returns the paths added."""
    parts = [p.lower() for p in node_path.strip("/").split("/") if p]
    if len(parts) != 3 or parts[0] not in DOMAINS or parts[2] not in ("mt", "mo"):
        raise InvalidInput(
            f"--create-node builds DOMAIN/RESOURCE/mt or /mo (e.g. sms/sms_message/mt), not {node_path!r}"
        )
    domain, resource, direction = parts
    added: list[str] = []
    dom = _child(roots, domain)
    if dom is None:
        dom = tr.Node(level="domain", value=domain, depends_on="resource")
        roots.append(dom)
        added.append(domain)
    res = _child(dom.children, resource)
    if res is None:
        res = tr.Node(
            level="resource",
            value=resource,
            depends_on="direction",
            billing_rule=billing_rule,
            quantity_rule=quantity_rule,
        )
        dom.children.append(res)
        added.append(f"{domain}/{resource}")
        if direction == "mt":
            res.children.append(tr.Node(level="direction", value="mo", price_type="free"))
            added.append(f"{domain}/{resource}/mo")
    elif res.depends_on != "direction":
        raise InvalidInput(f"{domain}/{resource} is not priced by direction; --create-node cannot add {direction}")
    if _child(res.children, direction) is None:
        res.children.append(tr.Node(level="direction", value=direction, depends_on="country"))
        added.append(f"{domain}/{resource}/{direction}")
    return added


def _child(nodes: list[tr.Node], value: str) -> tr.Node | None:
    return next((n for n in nodes if n.value.lower() == value), None)


def init_tree(session: Session, scope_id: int, template: str, *, billing_rule: str, quantity_rule: str) -> list[dict]:
    """Write the template's skeleton into an empty scope; returns the tree changes."""
    if template not in TEMPLATES:
        raise InvalidInput(f"--template must be one of {', '.join(TEMPLATES)}")
    old = tr.load(session, scope_id)
    if any(n.value == "sms" for n in old):
        raise Conflict(
            f"scope #{scope_id} already has an sms tree; change it with `service tree apply` or `rates import`"
        )
    new = [*old, skeleton("sms", "sms_message", billing_rule=billing_rule, quantity_rule=quantity_rule)]
    return tr.save(session, scope_id, new)
