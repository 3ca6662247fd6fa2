"""The PostgreSQL role saved reports run as (``cpaas db report-role``).

A login role of its own, not ``SET ROLE`` inside the owner's session: a
statement can switch the role back with ``set_config('role', …)`` or
``set_config('session_authorization', …)`` whenever the session's own user may,
so the sandbox holds only when the session user itself is the restricted role.

The role: LOGIN, no superuser, no CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS,
member of no role, ``default_transaction_read_only`` on, a
``statement_timeout``, and SELECT on the report-visible columns only
(column-level grants, so a column added later stays invisible until
``report-role`` runs again).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cpaas_cli.errors import CpaasError, InvalidInput
from cpaas_cli.reports.sandbox import visible_columns

SQLITE_REFUSAL = (
    "db report-role: PostgreSQL only (on SQLite reports already run on a read-only "
    "connection that cannot read secret columns)"
)
_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
# Server functions that read files or run as another user: the report role must not reach any.
_DANGEROUS = (
    "pg_catalog.pg_read_file(text)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_ls_dir(text)",
    "pg_catalog.pg_stat_file(text)",
    "pg_catalog.lo_import(text)",
    "pg_catalog.lo_export(oid,text)",
)


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def ensure(engine: Engine, role: str, *, timeout: float, password: str | None) -> dict[str, Any]:
    """Create or refresh ``role`` and its grants in this database; return what was done."""
    if engine.dialect.name != "postgresql":
        raise InvalidInput(SQLITE_REFUSAL)
    try:
        return _ensure(engine, role, timeout=timeout, password=password)
    except sa.exc.ProgrammingError as exc:
        text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "permission denied" not in text and "must be" not in text:
            raise
        raise CpaasError(
            f"db report-role: {text}; the database user needs CREATEROLE and to own the tables "
            "(or let an administrator run this command)"
        ) from exc


def _ensure(engine: Engine, role: str, *, timeout: float, password: str | None) -> dict[str, Any]:
    visible = visible_columns()
    timeout_ms = max(1, int(timeout * 1000))
    with engine.begin() as conn:
        r = _q(conn, role)
        attrs = sa.text(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, "
            "rolcanlogin, coalesce(rolconfig, '{}') FROM pg_roles WHERE rolname = :r"
        )
        row = conn.execute(attrs, {"r": role}).first()
        created = row is None
        if created:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"CREATE ROLE {r} {_ATTRS}")
            except sa.exc.DBAPIError as exc:  # made meanwhile by another process: go on with theirs
                if "already exists" not in str(exc.orig) and "duplicate key" not in str(exc.orig):
                    raise
                created = False
                row = conn.execute(attrs, {"r": role}).first()
        if row is not None and tuple(row[:7]) != (False, False, False, False, False, False, True):
            conn.exec_driver_sql(f"ALTER ROLE {r} {_ATTRS}")
        config = set(row[7]) if row is not None else set()
        for name, value in (("default_transaction_read_only", "on"), ("statement_timeout", str(timeout_ms))):
            if f"{name}={value}" not in config:
                conn.exec_driver_sql(f"ALTER ROLE {r} SET {name} = '{value}'")
        if password is not None:
            # the server gets the SCRAM verifier, never the password itself
            raw = conn.connection.dbapi_connection
            verifier = raw.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
            conn.exec_driver_sql(f"ALTER ROLE {r} PASSWORD '{verifier}'")
        member_of = conn.execute(
            sa.text(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :r"
            ),
            {"r": role},
        ).scalars()
        for group in list(member_of):
            conn.exec_driver_sql(f"REVOKE {_q(conn, group)} FROM {r}")
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        db = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        s = _q(conn, schema)
        conn.exec_driver_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}")
        conn.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {_q(conn, db)} TO {r}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {s} TO {r}")
        present = _columns(conn, schema)
        wanted = {(t, c) for t, c in present if c in visible.get(t, ())}
        for table in sorted({t for t, _ in wanted}):
            cols = [c for c in visible[table] if (table, c) in wanted]
            conn.exec_driver_sql(
                f"GRANT SELECT ({', '.join(_q(conn, c) for c in cols)}) ON {s}.{_q(conn, table)} TO {r}"
            )
        # a GRANT or REVOKE the user may not make is only a warning: check what the role can read now
        got = _readable(conn, schema, role)
        if got != wanted:  # raised inside the transaction: nothing of this run is kept
            extra = sorted(got - wanted)
            what = f"it can read {'.'.join(extra[0])}" if extra else f"{len(wanted - got)} columns were not granted"
            raise CpaasError(
                f"db report-role: {what}; the database user must own the tables (or let their owner run this command)"
            )
    hidden = sorted(f"{t}.{c}" for t, c in present if c not in visible.get(t, ()))
    return {
        "role": role,
        "created": created,
        "database": db,
        "schema": schema,
        "tables": len({t for t, _ in wanted}),
        "columns": len(wanted),
        "hidden_columns": hidden,
        "read_only": True,
        "statement_timeout_ms": timeout_ms,
        "password_set": password is not None,
    }


def _columns(conn: Connection, schema: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid WHERE n.nspname = :s AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"s": schema},
    )
    return {(t, c) for t, c in rows}


def _readable(conn: Connection, schema: str, role: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid WHERE n.nspname = :s AND a.attnum > 0 "
            "AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND has_column_privilege(:r, c.oid, a.attnum, 'SELECT')"
        ),
        {"s": schema, "r": role},
    )
    return {(t, c) for t, c in rows}


def check(conn: Connection) -> None:
    """Refuse to run a report on a session whose user can do more than the report role may."""
    hint = "run `cpaas db report-role` to make the read-only report role"
    role, superuser, bypass, groups = conn.execute(
        sa.text(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls, "
            "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) "
            "FROM pg_roles r WHERE r.rolname = current_user"
        )
    ).one()
    if superuser or bypass or groups:
        what = "a superuser" if superuser else "allowed to bypass row security" if bypass else "a member of other roles"
        raise CpaasError(f"reports run as a read-only role, but {role!r} is {what}; {hint}")
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, a.attname, has_table_privilege(c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
            "AND (has_column_privilege(c.oid, a.attnum, 'SELECT') "
            "OR has_table_privilege(c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE'))"
        )
    ).all()
    if not rows:
        raise CpaasError(f"the report role {role!r} has no grants in this database; {hint}")
    visible = visible_columns()
    for table, column, writes in rows:
        if writes:
            raise CpaasError(f"the report role {role!r} can write to {table}; {hint}")
        if column not in visible.get(table, ()):
            raise CpaasError(f"the report role {role!r} can read {table}.{column}, which reports never see; {hint}")
    funcs = ", ".join(f"has_function_privilege('{f}', 'EXECUTE')" for f in _DANGEROUS)
    allowed = conn.execute(sa.text(f"SELECT {funcs}")).one()
    reach = [f for f, ok in zip(_DANGEROUS, allowed, strict=True) if ok]
    if reach:
        raise CpaasError(f"the report role {role!r} may call {reach[0]}; revoke it (reports never read files)")
