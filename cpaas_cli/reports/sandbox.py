"""What a saved report may see, and the limits every run is held to.

A saved report is untrusted SQL. Its text is not parsed for safety here: the
database refuses what a report may not do.

- One place says what is visible: every table of the schema but
  ``HIDDEN_TABLES``, and every column but the secret ones (``SECRET_COLUMNS``
  and any column whose name looks like a secret, ``SECRET_NAME``).
- PostgreSQL: reports connect as their own login role (``cpaas_report`` by
  default, made by ``cpaas db report-role``, see ``report_role``): no
  superuser, no membership, SELECT on the visible columns only, read-only by
  default. A report is sent as one statement through the extended protocol (a
  server-side cursor); ``PgGuard`` cancels it at the deadline, and
  ``statement_timeout`` bounds each of its statements on the server too.
- SQLite: a ``mode=ro`` + ``query_only`` connection with an authorizer (reads of
  visible columns, SELECT and functions only) and a progress handler that stops
  the statement at its deadline or on Ctrl-C.
- Both: at most ``max_rows`` rows are fetched.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from cpaas_cli.config import Settings
from cpaas_cli.db.base import metadata
from cpaas_cli.db.engine import normalise_url
from cpaas_cli.errors import InvalidInput

# Columns no report ever reads, by table. Keep this up to date when a model gains a secret.
SECRET_COLUMNS: dict[str, frozenset[str]] = {
    "vendor_connection": frozenset({"password", "password_env"}),
}
# A column whose name looks like a secret is one, in any table (also when SECRET_COLUMNS forgets it).
SECRET_NAME = re.compile(r"password|passwd|passphrase|secret|token|hash|api_?key|private_?key|credential", re.I)
# Tables no report reads at all (none today: every table of the schema is report-visible).
HIDDEN_TABLES: frozenset[str] = frozenset()

REPORT_ROLE = "cpaas_report"
DEFAULT_TIMEOUT = 30.0  # seconds per run ([report] timeout)
DEFAULT_MAX_ROWS = 10_000  # rows per run ([report] max_rows)
PASSWORD_ENV = "CPAAS_REPORT_PASSWORD"
URL_ENV = "CPAAS_REPORT_DATABASE_URL"


def is_secret(table: str, column: str) -> bool:
    return column in SECRET_COLUMNS.get(table, frozenset()) or bool(SECRET_NAME.search(column))


def visible_columns() -> dict[str, list[str]]:
    """Table -> the columns a report may read (every model module is imported first)."""
    import cpaas_cli.models.all  # noqa: F401  (fills the metadata with every table)

    out: dict[str, list[str]] = {}
    for name, table in sorted(metadata.tables.items()):
        if name in HIDDEN_TABLES:
            continue
        cols = [c.name for c in table.columns if not is_secret(name, c.name)]
        if cols:
            out[name] = cols
    return out


def secret_columns() -> list[tuple[str, str]]:
    """(table, column) of every secret column of the schema."""
    import cpaas_cli.models.all  # noqa: F401

    return [
        (name, c.name)
        for name, table in sorted(metadata.tables.items())
        for c in table.columns
        if name in HIDDEN_TABLES or is_secret(name, c.name)
    ]


# ------------------------------------------------------------ settings


@dataclass(frozen=True)
class Limits:
    timeout: float  # seconds
    max_rows: int


def limits(settings: Settings) -> Limits:
    """``[report] timeout`` (seconds, default 30) and ``[report] max_rows`` (default 10000)."""
    sec = settings.section("report")
    where = f"config file {settings.config_path}" if settings.config_path else "config"
    timeout = sec.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 86_400:
        raise InvalidInput(f"{where}: [report] timeout must be seconds, more than 0 and at most 86400, got {timeout!r}")
    rows = sec.get("max_rows", DEFAULT_MAX_ROWS)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 10_000_000:
        raise InvalidInput(f"{where}: [report] max_rows must be a whole number from 1 to 10000000, got {rows!r}")
    return Limits(float(timeout), rows)


def report_url(settings: Settings) -> str:
    """The PostgreSQL URL reports connect with: ``CPAAS_REPORT_DATABASE_URL``, else
    ``[report] url``, else the database URL with the user ``cpaas_report`` and no
    password. ``CPAAS_REPORT_PASSWORD`` fills a missing password (otherwise
    libpq's own: ~/.pgpass, PGPASSWORD, or a trust/peer rule)."""
    given = os.environ.get(URL_ENV) or settings.section("report").get("url")
    try:
        if given:
            url = make_url(normalise_url(str(given)))
        else:
            url = make_url(normalise_url(settings.database_url)).set(username=REPORT_ROLE, password=None)
    except Exception as exc:
        raise InvalidInput(f"report database URL is not valid: {exc}") from exc
    if url.get_backend_name() != "postgresql":
        raise InvalidInput("[report] url must be a PostgreSQL URL")
    if not url.username or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", url.username):
        raise InvalidInput("[report] url: the user must be a plain role name (lower-case letters, digits, _)")
    if url.password is None and os.environ.get(PASSWORD_ENV):
        url = url.set(password=os.environ[PASSWORD_ENV])
    return url.render_as_string(hide_password=False)


def report_role_name(settings: Settings) -> str:
    """The role reports run as: the user of ``report_url`` (default ``cpaas_report``)."""
    return str(make_url(report_url(settings)).username)


# ------------------------------------------------------------ SQLite guard

_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_ALWAYS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE})
_ACTIONS = {
    getattr(sqlite3, f"SQLITE_{n}"): n.replace("_", " ")
    for n in ("INSERT", "UPDATE", "DELETE", "PRAGMA", "ATTACH", "DETACH", "TRANSACTION", "SAVEPOINT", "ANALYZE")
    + ("REINDEX", "ALTER_TABLE", "CREATE_TABLE", "CREATE_INDEX", "CREATE_VIEW", "CREATE_TRIGGER", "DROP_TABLE")
    + ("DROP_INDEX", "DROP_VIEW", "DROP_TRIGGER", "CREATE_TEMP_TABLE", "CREATE_VTABLE", "DROP_VTABLE")
    if hasattr(sqlite3, f"SQLITE_{n}")
}


class SqliteGuard:
    """Authorizer and progress handler for one report statement on SQLite.

    The authorizer lets the statement read visible columns, call functions
    (but not the extension/file ones) and nothing else. The progress handler
    stops it at the ``deadline`` given to ``install`` (``stopped = "timeout"``) or on Ctrl-C (the
    KeyboardInterrupt is caught in the handler; ``stopped = "interrupt"``)."""

    def __init__(self) -> None:
        self.deadline = 0.0
        self.visible = {t: frozenset(cols) for t, cols in visible_columns().items()}
        self.tables: set[str] = set()
        self.denied: str | None = None
        self.stopped: str | None = None

    def install(self, conn: sqlite3.Connection, *, deadline: float) -> None:
        self.deadline = deadline
        # the database's own tables: any other name read is a CTE or subquery (its sources are checked)
        self.tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        conn.set_authorizer(self.authorize)
        conn.set_progress_handler(self.progress, 10_000)

    def remove(self, conn: sqlite3.Connection) -> None:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)

    def _deny(self, why: str) -> int:
        self.denied = self.denied or why
        return sqlite3.SQLITE_DENY

    def authorize(self, action: int, arg1: Any, arg2: Any, _db: Any, _source: Any) -> int:
        if action in _ALWAYS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            table, column = arg1, arg2
            if table in _SCHEMA_TABLES:
                return sqlite3.SQLITE_OK
            cols = self.visible.get(table)
            if cols is None:
                if table not in self.tables:
                    return sqlite3.SQLITE_OK
                return self._deny(f"table {table} is not visible to reports")
            if column and column not in cols:
                return self._deny(f"column {table}.{column} is secret; reports never read it")
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if str(arg2).lower() in _DENIED_FUNCTIONS:
                return self._deny(f"function {arg2} is not allowed in reports")
            return sqlite3.SQLITE_OK
        return self._deny(f"reports are read-only: {_ACTIONS.get(action, f'action {action}')} is refused")

    def progress(self) -> int:
        try:
            if time.monotonic() >= self.deadline:
                self.stopped = "timeout"
                return 1
            return 0
        except KeyboardInterrupt:
            self.stopped = "interrupt"
            return 1


class PgGuard:
    """A client-side deadline for one report on PostgreSQL: at ``deadline`` the
    running statement is cancelled (``stopped = "timeout"``), whatever number of
    fetches it takes; ``statement_timeout`` stays as the server's own bound.
    Ctrl-C is psycopg's: it cancels the statement and raises KeyboardInterrupt."""

    denied: str | None = None

    def __init__(self) -> None:
        self.stopped: str | None = None
        self._timer: threading.Timer | None = None

    def install(self, conn: Any, *, deadline: float) -> None:
        def fire() -> None:
            self.stopped = "timeout"
            with contextlib.suppress(Exception):  # closed meanwhile: nothing left to stop
                conn.cancel_safe()

        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), fire)
        self._timer.daemon = True
        self._timer.start()

    def remove(self, _conn: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
