"""Rows in force over [effective_from, effective_till): the one way to end one now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.errors import Conflict
from cpaas_cli.timeutil import iso


def end_now(session: Session, row: Any, what: str, *, at: datetime | None = None) -> str:
    """End ``row`` (with ``effective_from``/``effective_till``) at ``at`` (default now):
    one that has not started yet is deleted, one already ended is a Conflict naming
    ``what``. Returns "ended" or "deleted"; flushes."""
    now = at or clock.now()
    if row.effective_from > now:
        session.delete(row)
        session.flush()
        return "deleted"
    if row.effective_till is not None and row.effective_till <= now:
        raise Conflict(f"{what} ended already at {iso(row.effective_till)}")
    row.effective_till = now
    session.add(row)
    session.flush()
    return "ended"
