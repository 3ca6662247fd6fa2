"""The one permission check: :func:`require`.

A :class:`Principal` is an authenticated user resolved once (roles merged,
tenant scope computed): the owner's users see every company, a reseller's
users their company and every company below it, a client's users their own
company only. Every entry point (CLI on behalf of a user, HTTP endpoints,
API keys) calls ``require(principal, "area.action", company)``; a refusal is
:class:`~cpaas_cli.errors.Denied` (exit 8) and, when a session is given, an
audit row written in its own transaction (it stays when the caller rolls back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.audit.service import mask
from cpaas_cli.errors import Denied
from cpaas_cli.identity.roles import ALL, AREAS, VIEW_ACTIONS, user_roles
from cpaas_cli.models.audit import AuditLog
from cpaas_cli.models.identity import AppUser, CompanySecurity, IdentityGeneration
from cpaas_cli.models.tenancy import Company


@dataclass(frozen=True)
class Principal:
    user_id: int
    login: str
    kind: str  # backoffice | portal
    company_id: int
    company_kind: str  # owner | reseller | client
    permissions: dict[str, str] = field(default_factory=dict)
    # None: every company (the owner's users); else the companies this user may act on
    scope: frozenset[int] | None = None
    scopes: tuple[str, ...] | None = None  # an API key's own limit on permissions (None: the user's)

    @property
    def actor(self) -> str:
        return f"user:{self.login}"

    def sees(self, company_id: int | None) -> bool:
        return self.scope is None or (company_id is not None and company_id in self.scope)

    def allows(self, permission: str) -> bool:
        area, _, action = permission.partition(".")
        if area not in AREAS[self.kind]:
            return False
        if self.scopes is not None and not any(_scope_covers(s, area, action) for s in self.scopes):
            return False
        level = self.permissions.get(area) or self.permissions.get(ALL)
        if level == "manage":
            return True
        return level == "view" and action in VIEW_ACTIONS


def _scope_covers(scope: str, area: str, action: str) -> bool:
    s_area, _, s_action = scope.partition(".")
    if s_area not in (area, ALL):
        return False
    return s_action in ("", ALL, action) or (s_action == "view" and action in VIEW_ACTIONS)


def _company_id(company: Company | int | None) -> int | None:
    return company.id if isinstance(company, Company) else company


def require(
    principal: Principal,
    permission: str,
    company: Company | int | None,
    *,
    session: Session | None = None,
    ip: str | None = None,
) -> None:
    """Refuse (Denied, exit 8) unless ``principal`` holds ``permission`` on ``company``.

    ``company`` None means a platform-wide object: only the owner's users reach it."""
    company_id = _company_id(company)
    ok = principal.allows(permission) and (principal.scope is None or principal.sees(company_id))
    if ok:
        return
    if session is not None:
        record_outside(
            session,
            action="permission_refused",
            object_type="app_user",
            object_id=principal.user_id,
            company_id=company_id,
            actor=principal.actor,
            new={"permission": permission, "company_id": company_id, "ip": ip},
        )
    where = f" on company #{company_id}" if company_id is not None else ""
    raise Denied(f"user {principal.login!r} is not permitted to {permission}{where}")


def subtree(session: Session, root_id: int) -> frozenset[int]:
    """``root_id`` and every company below it."""
    rows = session.exec(select(Company.id, Company.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for cid, parent in rows:
        children.setdefault(parent, []).append(cid)
    out, todo = {root_id}, [root_id]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return frozenset(out)


def blocked_reason(session: Session, user: AppUser) -> str | None:
    """Why ``user`` may not authenticate at all (disabled user, or its company or one above it blocked)."""
    if not user.enabled:
        return "the user is disabled"
    company = session.get(Company, user.company_id)
    while company is not None:
        if not company.enabled:
            return f"company {company.name!r} is blocked"
        company = session.get(Company, company.parent_id) if company.parent_id is not None else None
    return None


def two_factor_required(session: Session, company_id: int) -> bool:
    row = session.get(CompanySecurity, company_id)
    return bool(row and row.two_factor_required)


def principal(session: Session, user: AppUser, *, scopes: tuple[str, ...] | None = None) -> Principal:
    """Resolve ``user`` (roles merged, scope computed); Denied when it may not authenticate."""
    reason = blocked_reason(session, user)
    if reason:
        raise Denied(f"user {user.login!r} cannot sign in: {reason}")
    company = session.get(Company, user.company_id)
    assert company is not None
    perms: dict[str, str] = {}
    for role in user_roles(session, user.id):  # type: ignore[arg-type]
        for area, level in role.permissions.items():
            if level == "manage" or perms.get(area) != "manage":
                perms[area] = level
    scope: frozenset[int] | None
    if company.kind == "owner":
        scope = None
    elif company.kind == "reseller":
        scope = subtree(session, company.id)  # type: ignore[arg-type]
    else:
        scope = frozenset({company.id})  # type: ignore[arg-type]
    return Principal(
        user_id=user.id,  # type: ignore[arg-type]
        login=user.login,
        kind=user.kind,
        company_id=company.id,  # type: ignore[arg-type]
        company_kind=company.kind,
        permissions=perms,
        scope=scope,
        scopes=scopes,
    )


def act_as(session: Session, actor: str | Principal) -> None:
    """The audit actor of the rest of ``session``'s work: the authenticated user."""
    session.info["actor"] = actor.actor if isinstance(actor, Principal) else actor


# ---------------------------------------------------------------- generation


def bump(session: Session) -> None:
    """Tell every process that cached identities are stale (read at most once a second)."""
    session.connection().execute(
        sa.update(IdentityGeneration.__table__)
        .where(IdentityGeneration.__table__.c.id == 1)
        .values(value=IdentityGeneration.__table__.c.value + 1)
    )


def generation(conn: sa.Connection) -> tuple[int, Any]:
    """The identity generation and the latest company change: a cache older than either is stale."""
    t = IdentityGeneration.__table__
    gen = conn.execute(sa.select(t.c.value).where(t.c.id == 1)).scalar() or 0
    company_change = conn.execute(sa.select(sa.func.max(Company.__table__.c.updated_at))).scalar()
    return int(gen), company_change


# ---------------------------------------------------------------- audit of refusals


def record_outside(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: int | str | None,
    company_id: int | None = None,
    actor: str | None = None,
    new: dict[str, Any] | None = None,
    updates: list[tuple[sa.Table, int, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> None:
    """An audit row (and small updates, e.g. a failure counter) in a transaction of
    their own: a refused login or permission is recorded although the command fails.

    Call it before the command's own transaction has written anything: on SQLite a
    second writer waits for the first (the sign-in and key checks do so)."""
    bind = session.get_bind()
    with bind.begin() as conn:
        for table, row_id, values in updates:
            conn.execute(sa.update(table).where(table.c.id == row_id).values(**values))
        conn.execute(
            sa.insert(AuditLog.__table__),
            [
                {
                    "at": clock.now(),
                    "actor": actor or session.info.get("actor", "unknown"),
                    "command": session.info.get("command") or None,
                    "action": action,
                    "object_type": object_type,
                    "object_id": None if object_id is None else str(object_id),
                    "company_id": company_id,
                    "old": None,
                    "new": mask(new),
                }
            ],
        )
