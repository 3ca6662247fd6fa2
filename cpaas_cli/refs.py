"""Looking objects up by the reference a user typed: a numeric id or a name/code."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli.errors import InvalidInput, NotFound

T = TypeVar("T")


def by_ref(
    session: Session,
    model: type[T],
    ref: str | int,
    *,
    field: str = "name",
    what: str | None = None,
    where: list[Any] | None = None,
) -> T:
    """Find one row by id (all digits, or ``#12``) or by an exact name/code.

    A name shared by several rows is refused with the ids to choose from.
    """
    label = what or model.__tablename__.replace("_", " ")  # type: ignore[attr-defined]
    text = str(ref).strip()
    conds = list(where or [])
    if text.startswith("#") and text[1:].isdigit():
        text = text[1:]
        obj = session.get(model, int(text))
        if obj is None:
            raise NotFound(f"{label} #{text} not found")
        return obj
    if text.isdigit() and _fits_id(model, int(text)):  # e.g. a long-code sender is digits beyond any id
        obj = session.get(model, int(text))
        if obj is not None and all(_matches(session, model, obj, c) for c in conds):
            return obj
    rows = list(session.exec(select(model).where(getattr(model, field) == text, *conds)))
    if not rows:
        raise NotFound(f"{label} {text!r} not found{_did_you_mean(session, model, field, text, conds)}")
    if len(rows) > 1:
        ids = ", ".join(f"#{r.id}" for r in rows)  # type: ignore[attr-defined]
        raise InvalidInput(f"{label} {text!r} is ambiguous ({ids}); give the id instead")
    return rows[0]


SUGGEST_SCAN = 5000  # names read at most to find a near one


def _did_you_mean(session: Session, model: Any, field: str, text: str, conds: list[Any]) -> str:
    """``; did you mean 'ACME'?`` for a name that differs only in case, else for
    close spellings (at most three), among the rows the lookup could have found."""
    import difflib

    column = getattr(model, field)
    same = list(session.exec(select(column).where(sa.func.lower(column) == text.lower(), *conds).limit(3)))
    if not same:
        names = [n for n in session.exec(select(column).where(*conds).limit(SUGGEST_SCAN)) if n]
        by_lower = {str(n).lower(): str(n) for n in names}
        same = [by_lower[n] for n in difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.75)]
    if not same:
        return ""
    return "; did you mean " + " or ".join(repr(str(n)) for n in same) + "?"


def _matches(session: Session, model: Any, obj: Any, cond: Any) -> bool:
    found = session.exec(select(model.id).where(model.id == obj.id, cond)).first()
    return found is not None


def _fits_id(model: Any, n: int) -> bool:
    """Whether ``n`` fits the id column (PostgreSQL refuses an out-of-range integer)."""
    column = model.__table__.c.get("id")  # type: ignore[attr-defined]
    return column is None or n < (2**63 if isinstance(column.type, sa.BigInteger) else 2**31)
