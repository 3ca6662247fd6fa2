"""Rerate's raw access to EDRs: the DBAPI cursor of the session's transaction.

The hot path reads and writes with the DBAPI cursor of the session's
connection (same transaction): plain tuples in, tuples out, no per-value
type processing. Times are ISO text on SQLite (written back as read when
unchanged) and aware datetimes on PostgreSQL. Columns that take few distinct
values come as one value each (the seven lookup and report attributes; the
stored rating description): one thing per row to hash instead of seven or
nine, decoded once per distinct value. SQLite builds it as JSON array text
(in C, cheaply); PostgreSQL's json_build_array cost the server about as much
as the rest of the read, so there the columns come plain and the client
packs them into tuples (one C-level itemgetter of slices, _PACK, in Raw.rows).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.charging import events as charging_events
from cpaas_cli.charging.rater import RESULT_COLUMNS
from cpaas_cli.db import bulk
from cpaas_cli.models.edr import FINAL_STATUSES, Edr
from cpaas_cli.rating import engine as en

EDR = Edr.__table__
COMPARE = tuple(k for k in RESULT_COLUMNS if k != "rated_at")
# EDRs a rerate re-rates: rated, or rejected for another reason than credit.
ELIGIBLE = sa.or_(
    EDR.c.rating_state == "rated",
    sa.and_(EDR.c.rating_state == "rejected", sa.func.coalesce(EDR.c.rating_reason, "") != "insufficient_credit"),
)

# A read row, by position.
R_ID, R_AT, R_SUB, R_DLV, R_FINAL, R_KEY, R_SEGMENTS, R_OLD, R_DESC, R_PRICE, R_QTY, R_COST = range(12)
# The stored rating result (charging.rater.RESULT_COLUMNS but rated_at) in two parts:
# the description (R_DESC) and the price columns (R_PRICE…R_COST). rate_rows (loop.py)
# builds both from a decision as charging.rater.result does.
DESC = ("rating_state", "rating_reason", "rating_note", "rate_path", "service_id", "billing_rule", "currency",
        "pack_enabled_id", "pack_units")  # fmt: skip
MONEY = ("unit_price", "quantity", "cost")
if sorted(COMPARE) != sorted(DESC + MONEY):  # pragma: no cover - charging.rater changed its result columns
    raise RuntimeError(f"rerate result columns {DESC + MONEY} no longer match charging.rater {COMPARE}")
KEY = ("channel", "direction", "mcc", "mnc", "country", "network", "sender")
# PostgreSQL's plain row → that layout (slices of the key and description columns).
_K0 = R_KEY
_D0 = R_DESC + len(KEY) - 1
_PACK = itemgetter(
    *range(R_KEY), slice(_K0, _K0 + len(KEY)), *range(_K0 + len(KEY), _D0), slice(_D0, _D0 + len(DESC)),
    *range(_D0 + len(DESC), _D0 + len(DESC) + len(MONEY)),
)  # fmt: skip
_ELIGIBLE_SQL = (
    "(e.rating_state = 'rated' OR (e.rating_state = 'rejected'"
    " AND COALESCE(e.rating_reason, '') <> 'insufficient_credit'))"
)
_FINAL_SQL = f"CASE WHEN e.status IN ({', '.join(repr(s) for s in FINAL_STATUSES)}) THEN 1 ELSE 0 END"
_SELECT = (
    "SELECT e.id, e.event_at, e.submitted_at, COALESCE(e.delivered_at, e.seen_at), "
    f"{_FINAL_SQL}, <key>, e.segments, "
    "(SELECT CAST(COALESCE(SUM(c.amount), 0) AS BIGINT) FROM charge c WHERE c.edr_id = e.id), "
    f"<desc>, {', '.join('e.' + c for c in MONEY)} FROM edr e WHERE e.agreement_id = ? AND {_ELIGIBLE_SQL}"
)
# A trigger time (submission, delivery, seen) at or after ?.
TRIGGER_FROM = "(e.submitted_at >= ? OR e.delivered_at >= ? OR e.seen_at >= ?)"
CHARGE_COLUMNS = ("agreement_id", "kind", "edr_id", "revision", "amount", "currency", "at", "period_start",
                  "details", "created_at")  # fmt: skip
_fromiso = datetime.fromisoformat


def _parse_sqlite(v: str | None) -> datetime | None:
    # '+00:00' parses straight to UTC; .replace(tzinfo=UTC) costs ten times more
    return None if v is None else _fromiso(v + "+00:00")


def _parse_pg(v: datetime | None) -> datetime | None:
    return v if v is None or v.tzinfo is UTC else v.astimezone(UTC)


class Raw:
    """The DBAPI connection of the session's transaction, with the dialect's
    placeholders and time format."""

    def __init__(self, session: Session):
        self.conn = session.connection().connection
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.parse = _parse_pg if self.pg else _parse_sqlite
        self.param: Callable[[datetime | None], Any] = (lambda v: v) if self.pg else bulk.sqlite_time
        self.select = _SELECT.replace("<key>", self._array(KEY)).replace("<desc>", self._array(DESC))
        self._join_settings: tuple[str, str] | None = None

    def _array(self, columns: Sequence[str]) -> str:
        cols = ", ".join(f"e.{c}" for c in columns)
        return cols if self.pg else f"json_array({cols})"

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Read rows of ``self.select`` (+ ``sql``) in the ``R_*`` layout. PostgreSQL's
        plain key and description columns are packed into one tuple each."""
        got = self.fetch(self.select + sql, params)
        return list(map(_PACK, got)) if self.pg else got

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        try:
            cur.executemany(self._sql(sql), rows)
        finally:
            cur.close()

    # PostgreSQL's bulk path: COPY instead of one INSERT or UPDATE per row.

    def copy(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        text = bulk.copy_text([list(c) for c in zip(*rows, strict=True)])
        cur = self.conn.cursor()
        try:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                if text is not None:
                    cp.write(text)  # built column by column: far less time holding the GIL
                else:
                    for r in rows:
                        cp.write_row(r)
        finally:
            cur.close()

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERT rows: COPY on PostgreSQL; on SQLite ``bulk.values_statements``."""
        if not rows:
            return
        if self.pg:
            self.copy(table, columns, rows)
            return
        cur = self.conn.cursor()
        try:
            for sql, params in bulk.values_statements(table, columns, iter(rows), len(rows), 999):
                if type(params) is list:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
        finally:
            cur.close()

    def update_prices(self, rows: list[tuple[Any, ...]]) -> None:
        """(unit_price, quantity, cost, rated_at, id) rows: into a temporary table
        (COPY on PostgreSQL), then one UPDATE … FROM, which probes the EDR
        table's primary key once per row (on SQLite a third faster than an
        UPDATE statement per row; before SQLite 3.33, which has no UPDATE …
        FROM, one statement per row).

        Not yet ``db.bulk``'s ``update_from``: on PostgreSQL its staging table
        has a primary key and is emptied with DELETE, and a rerate through it
        took 13-14 s instead of 7.5 s for 50,000 EDRs in chunks of 1,000
        (benchmarks/rerate.py with ``loop.CHUNK = 1000``). This staging table
        has no index (the only plan is the EDR key probed per staged row) and
        is emptied with TRUNCATE."""
        if not rows:
            return
        if not self.pg:
            self._update_prices_sqlite(rows)
            return
        cur = self.conn.cursor()
        try:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS rerate_prices (unit_price bigint, quantity integer, cost bigint,"
                " rated_at timestamptz, id bigint) ON COMMIT DROP"
            )
            cur.execute("TRUNCATE rerate_prices")
        finally:
            cur.close()
        self.copy("rerate_prices", (*MONEY, "rated_at", "id"), rows)
        cur = self.conn.cursor()
        try:
            # One primary-key probe per row. Left to itself the planner (temporary
            # table, no statistics) hashes the chunk and scans the whole EDR
            # table for every chunk: 0.35 s per chunk at 1M EDRs, ten times that
            # at 10M. The two settings are put back as they were.
            if self._join_settings is None:
                cur.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
                self._join_settings = cur.fetchone()
            cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            cur.execute(
                "UPDATE edr SET unit_price = t.unit_price, quantity = t.quantity, cost = t.cost, rated_at = t.rated_at"
                " FROM rerate_prices t WHERE edr.id = t.id"
            )
            cur.execute(
                "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)",
                self._join_settings,
            )
        finally:
            cur.close()

    def _update_prices_sqlite(self, rows: list[tuple[Any, ...]]) -> None:
        cols = (*MONEY, "rated_at")
        if sqlite3.sqlite_version_info < (3, 33, 0):  # pragma: no cover - older SQLite library
            self.many(f"UPDATE edr SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", rows)
            return
        cur = self.conn.cursor()
        try:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS rerate_prices"
                " (unit_price INTEGER, quantity INTEGER, cost INTEGER, rated_at TEXT, id INTEGER PRIMARY KEY)"
            )
            cur.execute("DELETE FROM temp.rerate_prices")
        finally:
            cur.close()
        self.insert("temp.rerate_prices", (*cols, "id"), rows)
        cur = self.conn.cursor()
        try:
            cur.execute(
                f"UPDATE edr SET {', '.join(f'{c} = t.{c}' for c in cols)}"
                " FROM temp.rerate_prices t WHERE edr.id = t.id"
            )
            cur.execute("DELETE FROM temp.rerate_prices")
        finally:
            cur.close()


def unpacked(v: str | tuple) -> tuple:
    """A packed key or description (``R_KEY``, ``R_DESC``) as a tuple."""
    return v if type(v) is tuple else tuple(json.loads(v))


def attributes(key: str | tuple) -> tuple[dict[str, Any], str | None, tuple[str, str]]:
    """(lookup query as charging.events.event_of builds it, sender, report key) of a row's key.
    The query is charging.events' shared dict for its attributes: the engine's route
    memo is probed by that dict's identity (EDRs of many senders share it)."""
    channel, direction, mcc, mnc, country, network, sender = unpacked(key)
    q = charging_events.query_of((channel or "sms", direction or "mt", mcc, mnc, country, sender_type_of(sender)))
    return q, sender, (country or "", network or "")


def event_of(row: Sequence[Any], parse: Callable[[Any], datetime | None]) -> en.Event:
    """The engine event of a read row, as charging.events.event_of builds it (the hot
    loop in rate_rows (loop.py) inlines the same)."""
    q, sender, _ = attributes(row[R_KEY])
    return en.Event(
        key=row[R_ID],
        at=parse(row[R_AT]),
        query=q,
        segments=row[R_SEGMENTS] or 1,
        sender=sender,
        submitted_at=parse(row[R_SUB]),
        delivered_at=parse(row[R_DLV]),
        final=bool(row[R_FINAL]),
    )
