"""Saved SQL reports: a named SELECT with typed parameters, run in a sandbox.

The text check (one statement starting with SELECT or WITH; comments and
quoted literals understood) only gives an early, friendly error when a report
is defined. It is not the guard: a report runs in the sandbox of
``cpaas_cli.reports.sandbox``, where the database itself refuses anything but
one read of the report-visible columns (a read-only login role and one
extended-protocol statement on PostgreSQL; a read-only connection with an
authorizer on SQLite), under a time limit and a row cap.

Parameters are real bind parameters (``:name`` in the SQL), typed so the
driver gets a proper value. Parameters whose name starts with ``x_`` are
identifiers put into the text; their value must be a report-visible table or
column name (the allow-list) and is quoted as an identifier.
"""

from __future__ import annotations

import re
import time
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from cpaas_cli.db.types import UTCDateTime
from cpaas_cli.errors import Conflict, CpaasError, InvalidInput, NotFound, Problem
from cpaas_cli.models.reports import CATEGORIES, PARAM_TYPES, SavedReport
from cpaas_cli.reports import report_role, sandbox
from cpaas_cli.timeutil import TimeError, iso, parse_date, parse_time

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
R = SavedReport.__table__


# ------------------------------------------------------------ SQL text


def _scan(sql: str) -> tuple[str, list[str]]:
    """The SQL as it is run: comments removed, colons in literals escaped (so
    they are not binds); and the bind names, in order of use."""
    out: list[str] = []
    binds: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise InvalidInput("--sql: a /* comment is not closed")
            i = j + 2
            out.append(" ")
        elif ch in ("'", '"'):
            j = i + 1
            while True:
                j = sql.find(ch, j)
                if j < 0:
                    raise InvalidInput(f"--sql: a {ch} quote is not closed")
                if sql.startswith(ch * 2, j):
                    j += 2
                    continue
                break
            out.append(sql[i : j + 1].replace(":", "\\:"))
            i = j + 1
        elif ch == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif ch == ":" and (i == 0 or sql[i - 1] != "\\"):
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", sql[i + 1 :])
            if m:
                binds.append(m.group(0))
            out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), binds


def check_sql(sql: str) -> list[str]:
    """Accept one SELECT/WITH statement; return the bind names it uses (in order, unique)."""
    clean, binds = _scan(sql)
    body = clean.strip().rstrip(";").strip()
    if not body:
        raise InvalidInput("--sql: the file holds no query")
    if _has_semicolon(body):
        raise InvalidInput("--sql: one statement only (a report is a single SELECT or WITH … SELECT)")
    first = re.match(r"\(*\s*([A-Za-z]+)", body)
    if not first or first.group(1).upper() not in ("SELECT", "WITH"):
        raise InvalidInput("--sql: a report must be a SELECT (or WITH … SELECT); it never writes")
    return list(dict.fromkeys(binds))


def _has_semicolon(clean: str) -> bool:
    in_q: str | None = None
    for ch in clean:
        if in_q:
            if ch == in_q:
                in_q = None
        elif ch in ("'", '"'):
            in_q = ch
        elif ch == ";":
            return True
    return False


# ------------------------------------------------------------ parameters


def parse_param_spec(spec: str) -> dict[str, Any]:
    """``name:type[:default]`` (type defaults to text; a trailing ``!`` on the name makes it required)."""
    name, _, rest = spec.partition(":")
    ptype, _, default = rest.partition(":")
    name = name.strip()
    required = name.endswith("!")
    name = name.rstrip("!")
    ptype = (ptype or "text").strip().lower()
    if not NAME_RE.match(name):
        raise InvalidInput(f"--param {spec!r}: the name must be letters, digits and _")
    if ptype not in PARAM_TYPES:
        raise InvalidInput(f"--param {spec!r}: type must be one of {', '.join(PARAM_TYPES)}")
    if name.startswith("x_") != (ptype == "ident"):
        raise InvalidInput(f"--param {spec!r}: identifier parameters are named x_… and typed ident, and only they")
    out = {"name": name, "type": ptype, "default": default if rest.count(":") >= 1 else None, "required": required}
    if out["default"] is not None:
        convert(out, out["default"])  # a bad default is refused now
    return out


def allowed_identifiers() -> set[str]:
    """Every report-visible table and column name (secret columns are left out)."""
    visible = sandbox.visible_columns()
    names = set(visible)
    for cols in visible.values():
        names.update(cols)
    return names


def convert(param: dict[str, Any], text: str, *, tz: str = "UTC") -> Any:
    name, ptype = param["name"], param["type"]
    try:
        if ptype == "text":
            return text
        if ptype == "int":
            return int(text)
        if ptype == "number":
            return Decimal(text)
        if ptype == "date":
            return parse_date(text)
        if ptype == "datetime":
            return parse_time(text, tz)
        if ptype == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("not a yes/no value")
        if ptype == "ident":
            if text not in allowed_identifiers():
                raise ValueError("not a table or column name of the schema")
            return text
    except (ValueError, InvalidOperation, TimeError) as exc:
        raise InvalidInput(
            f"--param {name}={text!r}: {exc}", problems=[Problem(name, f"{text!r} is not a valid {ptype}: {exc}")]
        ) from exc
    raise InvalidInput(f"--param {name}: unknown type {ptype!r}")  # pragma: no cover


_SA_TYPES = {
    "text": sa.String(),
    "int": sa.BigInteger(),
    "number": sa.Numeric(),
    "date": sa.Date(),
    "datetime": UTCDateTime(),
    "bool": sa.Boolean(),
}


# ------------------------------------------------------------ CRUD


def as_dict(r: SavedReport, *, with_sql: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "category": r.category,
        "description": r.description,
        "client_visible": r.client_visible,
        "params": r.params,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }
    if with_sql:
        d["sql"] = r.sql
    return d


def define(
    session: Session,
    *,
    name: str,
    sql: str,
    params: list[str],
    category: str = "traffic",
    description: str | None = None,
    client_visible: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    if category not in CATEGORIES:
        raise InvalidInput(f"--category: choose one of {', '.join(CATEGORIES)}")
    if not name.strip():
        raise InvalidInput("a report needs a name")
    binds = check_sql(sql)
    specs = [parse_param_spec(p) for p in params]
    declared = [p["name"] for p in specs]
    if len(set(declared)) != len(declared):
        raise InvalidInput("--param: a parameter is declared twice")
    missing = [b for b in binds if b not in declared]
    unused = [d for d in declared if d not in binds]
    problems = [Problem(f":{b}", "used in the SQL but not declared with --param") for b in missing]
    problems += [Problem(d, "declared but not used in the SQL") for d in unused]
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    existing = session.execute(sa.select(SavedReport).where(SavedReport.name == name)).scalars().first()
    if existing is not None and not replace:
        raise Conflict(f"report {name!r} exists; use --replace to change it")
    r = existing or SavedReport(name=name, sql=sql)
    r.sql, r.params, r.category = sql, specs, category
    r.description, r.client_visible = description, client_visible
    session.add(r)
    session.flush()
    return as_dict(r)


def get(session: Session, name: str) -> SavedReport:
    q = sa.select(SavedReport).where(SavedReport.name == name)
    r = session.execute(q).scalars().first()
    if r is None and name.isdigit():
        r = session.get(SavedReport, int(name))
    if r is None:
        raise NotFound(f"report {name!r} not found")
    return r


def list_reports(
    session: Session, *, category: str | None = None, client_visible: bool | None = None, search: str | None = None
) -> list[dict[str, Any]]:
    q = sa.select(SavedReport).order_by(SavedReport.category, SavedReport.name)
    if category:
        q = q.where(SavedReport.category == category)
    if client_visible is not None:
        q = q.where(SavedReport.client_visible == client_visible)
    if search:
        q = q.where(sa.func.lower(SavedReport.name).contains(search.lower()))
    return [as_dict(r, with_sql=False) for r in session.execute(q).scalars()]


def delete(session: Session, name: str) -> dict[str, Any]:
    r = get(session, name)
    out = as_dict(r, with_sql=False)
    session.delete(r)
    session.flush()
    return out


# ------------------------------------------------------------ run


def bind_values(report: SavedReport, given: dict[str, str], *, tz: str = "UTC") -> dict[str, Any]:
    known = {p["name"]: p for p in report.params}
    unknown = [k for k in given if k not in known]
    if unknown:
        raise InvalidInput(f"--param: {', '.join(unknown)} not declared by report {report.name!r}")
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, p in known.items():
        text = given.get(name, p.get("default"))
        if text is None:
            if p.get("required") or p["type"] == "ident":
                problems.append(Problem(name, "required: give --param name=value"))
                continue
            values[name] = None
            continue
        values[name] = convert(p, text, tz=tz)
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    return values


def _readonly_engine(engine: Engine) -> Engine:
    """A separate engine whose SQLite connections cannot write."""
    import sqlite3

    path = engine.url.database
    if not path or path == ":memory:":
        raise InvalidInput("saved reports need a database file")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        return conn

    return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _report_engine(report_url: str | None) -> Engine:
    """A separate engine logged in as the report role (PostgreSQL)."""
    if not report_url:
        raise InvalidInput("reports on PostgreSQL need the report role's URL")
    # prepare_threshold=0: even a statement not sent through the server-side cursor is
    # prepared first (extended protocol, one statement), never sent as a simple query
    return sa.create_engine(report_url, poolclass=NullPool, connect_args={"prepare_threshold": 0})


def run(
    engine: Engine,
    report: SavedReport,
    given: dict[str, str],
    *,
    tz: str = "UTC",
    limit: int = sandbox.DEFAULT_MAX_ROWS,
    timeout: float = sandbox.DEFAULT_TIMEOUT,
    report_url: str | None = None,
) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Run the report in the sandbox (see ``cpaas_cli.reports.sandbox``); returns
    (columns, at most ``limit`` rows, whether more rows were left out)."""
    check_sql(report.sql)
    values = bind_values(report, given, tz=tz)
    sql, _ = _scan(report.sql)
    pg = engine.dialect.name == "postgresql"
    quote = engine.dialect.identifier_preparer.quote
    for p in report.params:
        if p["type"] == "ident":
            sql = re.sub(rf"(?<![:\w\\]):{p['name']}\b", quote(values.pop(p["name"])), sql)
    stmt = sa.text(sql).bindparams(
        *[sa.bindparam(p["name"], type_=_SA_TYPES[p["type"]]) for p in report.params if p["name"] in values]
    )
    ro = _report_engine(report_url) if pg else _readonly_engine(engine)
    guard: sandbox.PgGuard | sandbox.SqliteGuard = sandbox.PgGuard() if pg else sandbox.SqliteGuard()
    try:
        try:
            conn = ro.connect()
        except sa.exc.OperationalError as exc:
            raise _no_role(ro, exc) from exc
        with conn:
            if pg:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                report_role.check(conn)
                # a server-side cursor: DECLARE … CURSOR FOR <one SELECT>, always the extended protocol
                conn = conn.execution_options(stream_results=True, max_row_buffer=limit + 1)
            raw = conn.connection.dbapi_connection
            guard.install(raw, deadline=time.monotonic() + timeout)
            try:
                result = conn.execute(stmt, values)
                cols = list(result.keys())
                got = result.fetchmany(limit + 1)
            finally:
                guard.remove(raw)
            conn.rollback()
    except sa.exc.DBAPIError as exc:
        raise _failed(report, exc, guard, timeout) from exc
    finally:
        ro.dispose()
    rows = [{k: _out(v) for k, v in zip(cols, r, strict=True)} for r in got[:limit]]
    return cols, rows, len(got) > limit


def _no_role(ro: Engine, exc: sa.exc.OperationalError) -> CpaasError:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    role = ro.url.username
    if f'role "{role}" does not exist' in text:
        hint = "create it with `cpaas db report-role`"
    else:
        hint = "check [report] url and CPAAS_REPORT_PASSWORD, or (re)create it with `cpaas db report-role`"
    return CpaasError(
        f"reports on PostgreSQL run as the read-only role {role!r}, which cannot connect ({text}); {hint}"
    )


def _failed(
    report: SavedReport, exc: sa.exc.DBAPIError, guard: sandbox.PgGuard | sandbox.SqliteGuard, timeout: float
) -> BaseException:
    """The one-line error for a report the database stopped (KeyboardInterrupt for a Ctrl-C)."""
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    low = text.lower()
    name = report.name
    sqlite = isinstance(guard, sandbox.SqliteGuard)
    if guard.stopped == "interrupt" or (sqlite and guard.stopped is None and low == "interrupted"):
        return KeyboardInterrupt()
    if guard.stopped == "timeout" or "statement timeout" in low:
        return InvalidInput(
            f"report {name!r} stopped after {timeout:g} s (the report time limit: --timeout, [report] timeout)"
        )
    if guard.denied:
        return InvalidInput(f"report {name!r} is not allowed: {guard.denied}")
    if "permission denied" in low:
        return InvalidInput(
            f"report {name!r} is not allowed: {text} (reports see only the report-visible tables and columns, "
            "never secrets; after `cpaas db upgrade` run `cpaas db report-role` again for new tables)"
        )
    if "read-only" in low or "readonly" in low or "query_only" in low or "data-modifying" in low:
        return InvalidInput(f"report {name!r} tries to write; reports are read-only ({text})")
    return InvalidInput(f"report {name!r} failed: {text}")


def _out(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, date):
        return v.isoformat()
    return v
