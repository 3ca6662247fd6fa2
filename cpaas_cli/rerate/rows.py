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
# The EDR's own charges (its agreement's; the reseller levels' are theirs, RAT-10). "+ 0" keeps
# SQLite on the (edr_id, …) key: with a plain agreement_id it may take ix_charge_agreement_at and
# scan the agreement's whole ledger for every row.
FINAL_SQL = f"CASE WHEN e.status IN ({', '.join(repr(s) for s in FINAL_STATUSES)}) THEN 1 ELSE 0 END"
_SELECT = (
    "SELECT e.id, e.event_at, e.submitted_at, COALESCE(e.delivered_at, e.seen_at), "
    f"{FINAL_SQL}, <key>, e.segments, "
    "(SELECT CAST(COALESCE(SUM(c.amount), 0) AS BIGINT) FROM charge c WHERE c.edr_id = e.id AND c.agreement_id + 0 = e.agreement_id), "
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
        self.writer = bulk.writer(session)
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.parse = _parse_pg if self.pg else _parse_sqlite
        self.param: Callable[[datetime | None], Any] = (lambda v: v) if self.pg else bulk.sqlite_time
        self.select = _SELECT.replace("<key>", self._array(KEY)).replace("<desc>", self._array(DESC))

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

    # Writes go through the one bulk writer (db/bulk.py), with rows already in
    # the driver's form.

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.writer.execute_many(sql, rows)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERT rows: COPY on PostgreSQL, multi-row VALUES on SQLite (``db.bulk``)."""
        self.writer.insert_values(table, columns, rows)

    def update_prices(self, rows: list[tuple[Any, ...]]) -> None:
        """(unit_price, quantity, cost, rated_at, id) rows: a staging table, then one
        UPDATE … FROM probing the EDR key per row (``BulkWriter.update_values``)."""
        self.writer.update_values("edr", (*MONEY, "rated_at"), rows)


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
