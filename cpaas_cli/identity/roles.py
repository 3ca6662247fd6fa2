"""Roles: named sets of permissions per side (BackOffice or client portal).

A permission is ``area.action``; a role grants an area ``view`` (the actions
``view``, ``list``, ``show``, ``export``) or ``manage`` (every action), and
``{"*": "manage"}`` is "no restrictions" (SPEC USR-03). The seed's system
roles are created by migration 0025 and cannot be edited; custom roles are
named sets built from the same areas, optionally from a template role.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, require
from cpaas_cli.models.identity import AppUser, Role, UserRole

SIDES = ("backoffice", "portal")
LEVELS = ("none", "view", "manage")
VIEW_ACTIONS = frozenset({"view", "list", "show", "export"})
ALL = "*"

AREAS: dict[str, tuple[str, ...]] = {
    "backoffice": (
        "agreement",
        "apikey",
        "audit",
        "campaign",
        "company",
        "connection",
        "contacts",
        "edr",
        "export",
        "fee",
        "invoice",
        "mccmnc",
        "payment",
        "rates",
        "report",
        "rerate",
        "role",
        "sender",
        "service",
        "user",
    ),
    "portal": (
        "apikey",
        "asset",
        "campaign",
        "contacts",
        "conversation",
        "dashboard",
        "export",
        "finance",
        "sender",
        "statistics",
        "template",
        "user",
    ),
}

# The seed's system roles (002 §8.1, §8.3); migration 0025 writes the same rows.
SYSTEM_ROLES: dict[str, dict[str, dict[str, str]]] = {
    "backoffice": {
        "Admin": {ALL: "manage"},
        "Client manager": {
            "company": "manage",
            "agreement": "manage",
            "sender": "manage",
            "user": "manage",
            "apikey": "manage",
            "campaign": "view",
            "contacts": "view",
            "service": "view",
            "payment": "view",
            "invoice": "view",
            "report": "view",
            "export": "manage",
        },
        "Finance manager": {
            "payment": "manage",
            "invoice": "manage",
            "fee": "manage",
            "service": "manage",
            "rerate": "manage",
            "agreement": "view",
            "company": "view",
            "edr": "view",
            "report": "view",
            "export": "manage",
        },
        "NOC engineer": {
            "connection": "manage",
            "mccmnc": "manage",
            "campaign": "manage",
            "edr": "view",
            "sender": "view",
            "company": "view",
            "report": "view",
        },
        "Rate manager": {
            "service": "manage",
            "rates": "manage",
            "mccmnc": "view",
            "rerate": "view",
            "company": "view",
            "agreement": "view",
        },
    },
    "portal": {
        "Admin": {ALL: "manage"},
        "Broadcast manager": {
            "campaign": "manage",
            "contacts": "manage",
            "template": "manage",
            "sender": "view",
            "statistics": "view",
            "dashboard": "view",
        },
        "Finance manager": {"finance": "manage", "statistics": "view", "dashboard": "view", "export": "manage"},
        "NOC engineer": {"statistics": "view", "dashboard": "view", "campaign": "view", "conversation": "view"},
    },
}

MAX_NAME = 40


def side_of(text: str) -> str:
    low = text.strip().lower().replace("-", "").replace(" ", "")
    side = {"backoffice": "backoffice", "bo": "backoffice", "portal": "portal", "clientportal": "portal"}.get(low)
    if side is None:
        raise InvalidInput(f"--side: {text!r} is not a side (backoffice or portal)")
    return side


def parse_grants(side: str, items: list[str], problems: list[Problem], field: str = "--permission") -> dict[str, str]:
    """``area=view|manage|none`` items (or ``*`` for no restrictions) checked against the side's areas."""
    out: dict[str, str] = {}
    for item in items:
        area, _, level = item.partition("=")
        area, level = area.strip().lower(), (level.strip().lower() or "manage")
        if area == ALL:
            out[ALL] = "manage"
            continue
        if area not in AREAS[side]:
            problems.append(Problem(field, f"{area!r} is not a {side} area ({', '.join(AREAS[side])})"))
        elif level not in LEVELS:
            problems.append(Problem(field, f"{item!r}: the level is view, manage or none"))
        else:
            out[area] = level
    return out


def get(session: Session, ref: str | int, *, side: str | None = None) -> Role:
    text = str(ref).strip()
    if text.isdigit():
        row = session.get(Role, int(text))
        if row is not None and (side is None or row.side == side):
            return row
    q = select(Role).where(Role.name == text)
    if side:
        q = q.where(Role.side == side)
    rows = list(session.exec(q))
    if not rows:
        raise NotFound(f"role {text!r} not found" + (f" on the {side} side" if side else ""))
    if len(rows) > 1:
        raise InvalidInput(f"role {text!r} exists on both sides; give --side or the id")
    return rows[0]


def for_user(session: Session, ref: str | int, kind: str) -> Role:
    """A role for a user of side ``kind``: its own side first; a role only of the
    other side is found, so that granting it names the mismatch (exit 4)."""
    try:
        return get(session, ref, side=kind)
    except NotFound:
        return get(session, ref)


def list_roles(session: Session, *, side: str | None = None) -> list[Role]:
    q = select(Role).order_by(col(Role.side), col(Role.system).desc(), col(Role.name))
    if side:
        q = q.where(Role.side == side)
    return list(session.exec(q))


def create(
    session: Session,
    *,
    name: str,
    side: str,
    permissions: list[str] = (),  # type: ignore[assignment]
    template: str | None = None,
    description: str | None = None,
) -> Role:
    problems: list[Problem] = []
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        problems.append(Problem("name", f"must be 1 to {MAX_NAME} characters"))
    base: dict[str, str] = {}
    if template is not None:
        tmpl = get(session, template, side=side)
        base = dict(tmpl.permissions)
    grants = parse_grants(side, list(permissions), problems)
    require(problems)
    perms = {k: v for k, v in {**base, **grants}.items() if v != "none"}
    if not perms:
        raise InvalidInput("--permission: a role needs at least one permission (area=view or area=manage)")
    if session.exec(select(Role.id).where(Role.side == side, Role.name == name)).first() is not None:
        raise Conflict(f"a {side} role named {name!r} already exists")
    row = Role(name=name, side=side, description=description, system=False, permissions=perms)
    session.add(row)
    session.flush()
    return row


def change(session: Session, role: Role, *, grant: list[str] = (), revoke: list[str] = ()) -> Role:  # type: ignore[assignment]
    """Grant or revoke areas of a custom role (system roles are not editable)."""
    if role.system:
        raise Conflict(f"role {role.name!r} is a system role and cannot be edited; make a custom role from it")
    problems: list[Problem] = []
    granted = parse_grants(role.side, list(grant), problems)
    revoked = parse_grants(role.side, [f"{a.partition('=')[0]}=none" for a in revoke], problems)
    require(problems)
    perms = dict(role.permissions)
    perms.update(granted)
    for area in revoked:
        perms.pop(area, None)
    perms = {k: v for k, v in perms.items() if v != "none"}
    if not perms:
        raise InvalidInput("a role needs at least one permission; delete the role instead")
    role.permissions = perms
    session.flush()
    return role


def user_roles(session: Session, user_id: int) -> list[Role]:
    q = select(Role).join(UserRole, col(UserRole.role_id) == col(Role.id)).where(UserRole.user_id == user_id)
    return list(session.exec(q.order_by(col(Role.name))))


def assign(session: Session, user: AppUser, role: Role) -> None:
    if role.side != user.kind:
        raise InvalidInput(
            f"role {role.name!r} is a {role.side} role and user {user.login!r} is a {user.kind} user; "
            "nothing was written"
        )
    if session.get(UserRole, (user.id, role.id)) is None:
        session.add(UserRole(user_id=user.id, role_id=role.id))  # type: ignore[arg-type]
        session.flush()


def unassign(session: Session, user: AppUser, role: Role) -> None:
    link = session.get(UserRole, (user.id, role.id))
    if link is None:
        raise NotFound(f"user {user.login!r} does not have role {role.name!r}")
    session.delete(link)
    session.flush()


def holders(session: Session, role_id: int) -> int:
    return session.exec(select(sa.func.count()).select_from(UserRole).where(UserRole.role_id == role_id)).one()


def role_dict(session: Session, role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "side": role.side,
        "system": role.system,
        "description": role.description,
        "permissions": dict(sorted(role.permissions.items())),
        "users": holders(session, role.id),  # type: ignore[arg-type]
    }
