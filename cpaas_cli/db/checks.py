"""One rule for the text both databases store.

PostgreSQL refuses a value longer than its ``VARCHAR(n)`` column, a NUL
character in any text (and in JSON), and text that is not valid UTF-8; SQLite
stores all three. So that both accept exactly the same inputs, every ORM flush
checks the string and JSON columns of the rows it writes (a ``before_flush``
hook), and so does every SQL Core INSERT or UPDATE given its rows as
parameters (a ``before_execute`` hook); both are registered by
``db.engine.install_hooks`` (for every engine and session it makes). A bad value is refused with InvalidInput (exit 4)
naming the field and the limit, before anything is written. Paths that talk
to the driver directly (COPY, raw executemany) check what they read with
:func:`text_problem`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from cpaas_cli.errors import InvalidInput, Problem

# A lone surrogate: what Python makes of bytes that are not UTF-8 (command-line
# arguments, surrogateescape); neither database can encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str, limit: int | None = None) -> str | None:
    """What is wrong with ``value`` as stored text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which cannot be stored"
    if limit is not None and len(value) > limit:
        return f"is longer than {limit} characters ({len(value)} given)"
    if _SURROGATE.search(value):
        return "is not valid UTF-8 text"
    return None


def storable(text: str) -> str:
    """``text`` as both databases can hold it: NUL and lone surrogates become
    U+FFFD. For what arrives from a remote peer (an MO, a receipt), which is
    stored as received rather than refused."""
    if "\x00" in text or _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))
    return text


def json_problem(value: Any) -> str | None:
    """What is wrong with a JSON value (every key and string in it), or None."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = (text_problem(k) if isinstance(k, str) else None) or json_problem(v)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for v in value:
            found = json_problem(v)
            if found:
                return found
    return None


def first_text_problem(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, problem) of the first text value in ``values`` that cannot be stored, or None."""
    for name, value in values.items():
        found = text_problem(value) if isinstance(value, str) else None
        if found:
            return name, found
    return None


@cache
def limits(table: sa.Table) -> dict[str, tuple[str, int | None]]:
    """Column name → ("text", max length or None) or ("json", None), for the checked columns."""
    out: dict[str, tuple[str, int | None]] = {}
    for c in table.columns:
        t = c.type
        if isinstance(t, sa.types.TypeDecorator):
            t = t.impl_instance if hasattr(t, "impl_instance") else t.impl
        if isinstance(t, sa.JSON):
            out[c.key] = ("json", None)
        elif isinstance(t, sa.String) and not isinstance(t, sa.Enum):
            out[c.key] = ("text", t.length)
    return out


def value_problem(kind: str, limit: int | None, value: Any) -> str | None:
    if value is None:
        return None
    if kind == "json":
        return json_problem(value)
    return text_problem(value, limit) if isinstance(value, str) else None


def check_values(table: sa.Table, values: Mapping[str, Any], row: int | None = None) -> list[Problem]:
    """The problems of one row of ``table`` (column name → value)."""
    rules = limits(table)
    problems = []
    for key, value in values.items():
        rule = rules.get(key)
        if rule is not None:
            found = value_problem(rule[0], rule[1], value)
            if found:
                problems.append(Problem(key, found, row))
    return problems


def check_rows(table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Raise InvalidInput for the bad values of rows written through SQL Core."""
    problems: list[Problem] = []
    for r in rows:
        problems += check_values(table, r)
        if len(problems) >= 20:
            break
    if problems:
        raise InvalidInput.from_problems(problems)


def _check_core(_conn, statement, multiparams, params, _options) -> None:
    """The rows of a Core INSERT/UPDATE given as parameters (the ORM's flushes
    were checked already, field by field; this catches the bulk paths)."""
    if not isinstance(statement, sa.Insert | sa.Update):
        return
    table = statement.table
    if not isinstance(table, sa.Table) or table.metadata is not SQLModel.metadata or not limits(table):
        return  # only the application's own tables
    rows = [r for r in (multiparams or [params]) if isinstance(r, Mapping)]
    if rows:
        check_rows(table, rows)


def _object_problems(obj: Any, *, changed_only: bool) -> list[Problem]:
    state = inspect(obj)
    table = getattr(obj, "__table__", None)
    if table is None or not isinstance(table, sa.Table):
        return []
    rules = limits(table)
    problems = []
    for attr in state.mapper.column_attrs:
        rule = rules.get(attr.columns[0].key)
        if rule is None:
            continue
        if changed_only:
            hist = state.attrs[attr.key].history
            if not hist.added:
                continue
            value = hist.added[0]
        else:
            value = getattr(obj, attr.key)
        found = value_problem(rule[0], rule[1], value)
        if found:
            problems.append(Problem(attr.key, found))
    return problems


def _check_text(session: Session, _ctx, _instances) -> None:
    problems: list[Problem] = []
    for obj in session.new:
        problems += _object_problems(obj, changed_only=False)
    for obj in session.dirty:
        problems += _object_problems(obj, changed_only=True)
    if problems:
        raise InvalidInput.from_problems(problems)


def install() -> None:
    """Register the checks: Core INSERT/UPDATE rows on every Engine, ORM
    objects on every Session flush. Called by ``db.engine`` for each engine
    and session it makes (explicit, not on import). Idempotent."""
    if not event.contains(Engine, "before_execute", _check_core):
        event.listen(Engine, "before_execute", _check_core)
    if not event.contains(Session, "before_flush", _check_text):
        event.listen(Session, "before_flush", _check_text)
