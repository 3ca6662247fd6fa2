"""Audit trail.

Every ORM change is recorded automatically by a flush hook (one row per
inserted, updated or deleted object, with old and new values). Bulk paths that
write through SQL Core call :func:`record` once per operation instead.
Secrets are masked before anything is stored.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session
from sqlmodel import col, select

from cpaas_cli import clock
from cpaas_cli.db.base import Timestamped
from cpaas_cli.models.audit import AuditLog

SECRET = re.compile(r"pass(word)?|secret|token|api_?key|private", re.IGNORECASE)
MASK = "***"
_SKIP_COLUMNS = {"updated_at", "created_at"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def mask(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    out = {}
    for key, value in values.items():
        if SECRET.search(key) and value is not None:
            out[key] = MASK
        elif isinstance(value, dict):
            out[key] = mask(value)
        else:
            out[key] = _plain(value)
    return out


def _columns(obj: Any) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {c.key: getattr(obj, c.key) for c in mapper.column_attrs if c.key not in _SKIP_COLUMNS}


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    old, new = {}, {}
    for attr in state.mapper.column_attrs:
        if attr.key in _SKIP_COLUMNS:
            continue
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            old[attr.key] = hist.deleted[0] if hist.deleted else None
            new[attr.key] = hist.added[0] if hist.added else None
    return old, new


def _company_of(obj: Any) -> int | None:
    if getattr(obj, "__tablename__", None) == "company":
        return obj.id
    value = getattr(obj, "company_id", None)
    return value if isinstance(value, int) else None


def _row(session: Session, action: str, obj: Any, old: dict | None, new: dict | None) -> dict:
    state = inspect(obj)
    ident = state.mapper.primary_key_from_instance(obj)
    return {
        "at": clock.now(),
        "actor": session.info.get("actor", "unknown"),
        "command": session.info.get("command") or None,
        "action": action,
        "object_type": obj.__tablename__,
        "object_id": ",".join(str(i) for i in ident) if any(i is not None for i in ident) else None,
        "company_id": _company_of(obj),
        "old": mask(old),
        "new": mask(new),
    }


def _touch(session: Session, _ctx, _instances) -> None:
    now = clock.now()
    for obj in session.dirty:
        if isinstance(obj, Timestamped) and session.is_modified(obj, include_collections=False):
            obj.updated_at = now


def _audit(session: Session, _ctx) -> None:
    if session.info.get("audit") is False:
        return
    rows = []
    for obj in session.new:
        if not isinstance(obj, AuditLog) and hasattr(obj, "__tablename__"):
            rows.append(_row(session, "insert", obj, None, _columns(obj)))
    for obj in session.dirty:
        if isinstance(obj, AuditLog) or not hasattr(obj, "__tablename__"):
            continue
        old, new = _changes(obj)
        if new:
            rows.append(_row(session, "update", obj, old, new))
    for obj in session.deleted:
        if not isinstance(obj, AuditLog) and hasattr(obj, "__tablename__"):
            rows.append(_row(session, "delete", obj, _columns(obj), None))
    if rows:
        session.connection().execute(sa.insert(AuditLog.__table__), rows)


def record(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    company_id: int | None = None,
    old: dict | None = None,
    new: dict | None = None,
) -> None:
    """Write one explicit audit row (bulk operations, imports, runs)."""
    session.connection().execute(
        sa.insert(AuditLog.__table__),
        [
            {
                "at": clock.now(),
                "actor": session.info.get("actor", "unknown"),
                "command": session.info.get("command") or None,
                "action": action,
                "object_type": object_type,
                "object_id": None if object_id is None else str(object_id),
                "company_id": company_id,
                "old": mask(old),
                "new": mask(new),
            }
        ],
    )


def list_entries(
    session: Session,
    *,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[AuditLog]:
    q = select(AuditLog)
    if actor:
        q = q.where(AuditLog.actor == actor)
    if object_type:
        q = q.where(AuditLog.object_type == object_type)
    if object_id:
        q = q.where(AuditLog.object_id == str(object_id))
    if action:
        q = q.where(AuditLog.action == action)
    if company_id is not None:
        q = q.where(AuditLog.company_id == company_id)
    if since:
        q = q.where(AuditLog.at >= since)
    if until:
        q = q.where(AuditLog.at < until)
    q = q.order_by(col(AuditLog.id).desc()).limit(limit)
    return list(session.exec(q))


def install() -> None:
    """Register the flush hooks (``updated_at``, audit rows) on every Session.
    Called by ``db.engine`` for each engine and session it makes: explicit, so
    the audit trail does not depend on which modules a process imported.
    Idempotent."""
    if not event.contains(Session, "before_flush", _touch):
        event.listen(Session, "before_flush", _touch)
    if not event.contains(Session, "after_flush", _audit):
        event.listen(Session, "after_flush", _audit)
