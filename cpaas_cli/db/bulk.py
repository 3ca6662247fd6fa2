"""Bulk writes: the one owner of every many-row write path (DESIGN.md, Data and scale).

A domain module that writes many rows at once asks for a writer and never
branches on the database dialect itself::

    from cpaas_cli.db import bulk

    w = bulk.writer(session)                 # SqliteWriter or PostgresWriter
    w.write_lock()                           # SQLite: take the write lock now; PostgreSQL: nothing
    w.prepare_times(values, times)           # SQLite: the text of times for a later insert
    w.exclusive("edr-ingest")                # a named lock until the transaction ends
    ids = w.reserve_ids(table, n)            # ids for n new rows of ``table``
    w.insert(table, {"id": ids, "a": [...]}) # column-wise: columns[name][i] is row i's value
    w.insert_rows(table, [{...}, {...}])     # row dicts, every one with the same keys
    w.insert_tuples(table, names, rows)      # value tuples in ``names`` order
    w.update_by_id(table, ids, {"a": [...]}) # UPDATE … WHERE id = ? per row (executemany)
    w.update_from(table, ids, {"a": [...]})  # the same through a staging table (COPY on PostgreSQL)
    found = w.stored(table, "external_id", values)  # which values are stored already
    with w.pragmas(): ...                    # SQLite connection settings for a bulk run

What each implementation does (``db/bulk_sqlite.py``, ``db/bulk_postgres.py``):

* insert — SQLite: multi-row ``INSERT … VALUES`` (``ROWS_PER_STATEMENT`` rows
  per statement under the driver's parameter limit), values every row shares as
  SQL literals (``shared_literal``), rows that carry their ids grouped by which
  columns are NULL, ``unless_stored`` for ``ON CONFLICT (col) DO NOTHING``.
  PostgreSQL: one ``COPY … FROM STDIN`` with the text built column by column
  (``copy_text``), else psycopg's ``write_row``.
* reserve_ids — SQLite: ``MAX(id)`` + 1… under the write lock the caller holds;
  PostgreSQL: values drawn from the table's id sequence.
* write_lock / exclusive — SQLite's database write lock; PostgreSQL: nothing /
  a transaction-level advisory lock.

Both convert values the same way, column by column with C-level maps: JSON
columns to text (a dict shared by many rows is dumped once), aware times to
UTC text on SQLite (``sqlite_time``, through a ``TimeText`` that the caller may
share between the tables of one transaction), a column that is NULL in every
row and has no server default left out.

The helpers below (literal rendering, COPY text, VALUES statements) are public
for the writers and for code that writes through a raw DBAPI cursor.
"""

from __future__ import annotations

import gc
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import partial
from itertools import chain, islice
from operator import attrgetter, is_not, itemgetter, methodcaller
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable
from sqlmodel import Session

ROWS_PER_STATEMENT = 100  # SQLite multi-row VALUES: fewer statement steps than one row per execute
# In an SQLite insert of at least this many rows, a value all rows share (a chunk's
# agreement, currency, rating time, …) is written into the SQL once per row as a
# literal instead of being bound as a parameter per row.
SHARED_LITERAL_ROWS = 100


class BulkWriter:
    """The interface (see the module docstring); ``writer(session)`` gives the dialect's one."""

    dialect = ""
    # ``insert(…, unless_stored=…)`` works: rows stored already are skipped by the insert itself.
    skips_stored = False

    def __init__(self, session: Session):
        self.session = session

    def prepare_times(self, values: Sequence[datetime | None], times: TimeText) -> None:
        """Convert ``values`` into ``times`` now (the ``insert`` that takes the same
        ``times`` then finds them done): work that may overlap a commit."""

    # -- locks and ids
    def write_lock(self) -> None:
        raise NotImplementedError

    def exclusive(self, name: str) -> None:
        """Hold the named lock ``name`` until the transaction ends (others wait)."""
        raise NotImplementedError

    def reserve_ids(self, table: sa.Table, n: int) -> list[int]:
        raise NotImplementedError

    def pragmas(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def max_params(self) -> int:
        raise NotImplementedError

    def stored(self, table: sa.Table, column: str, values: Sequence[Any]) -> set[Any]:
        """Which of ``values`` are stored in ``table.column`` (driver-level)."""
        raise NotImplementedError

    # -- writes
    def insert(
        self,
        table: sa.Table,
        columns: Mapping[str, Sequence[Any]],
        *,
        times: TimeText | None = None,
        unless_stored: str | None = None,
    ) -> int:
        """INSERT rows given column by column; how many rows were stored.
        ``unless_stored`` (SQLite only), a column with a unique key: rows whose
        value there is stored already are left out and not counted."""
        raise NotImplementedError

    def insert_values(self, table: str, names: Sequence[str], rows: list[tuple]) -> None:
        """INSERT value tuples already in the driver's form (times as the dialect
        stores them), straight through the DBAPI cursor: for hot loops that build
        their own rows (rerate). COPY on PostgreSQL, multi-row VALUES on SQLite."""
        raise NotImplementedError

    def execute_many(self, sql: str, rows: list[tuple]) -> None:
        """One statement with ``?`` placeholders run for every row (DBAPI executemany)."""
        raise NotImplementedError

    def update_values(self, table: str, names: Sequence[str], rows: list[tuple]) -> None:
        """UPDATE ``table`` by id from ``(*names, id)`` tuples in the driver's form:
        into a staging table without statistics, then one UPDATE … FROM that
        probes ``table``'s primary key once per staged row."""
        raise NotImplementedError

    def insert_rows(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """INSERT row dicts (every one with the same keys) through ``insert``."""
        if not rows:
            return
        cols = list(rows[0])
        self.insert_tuples(table, cols, list(zip(*(map(itemgetter(c), rows) for c in cols), strict=True)))

    def insert_tuples(self, table: sa.Table, names: Sequence[str], rows: list[tuple]) -> None:
        """INSERT value tuples (in ``names`` order) through ``insert``."""
        if rows:
            self.insert(table, dict(zip(names, zip(*rows, strict=True), strict=True)))

    def update_by_id(
        self, table: sa.Table, ids: Sequence[int], columns: Mapping[str, Sequence[Any]], *where: Any
    ) -> None:
        """``UPDATE table SET columns WHERE id = ids[i] [AND where]`` per row, one executemany."""
        if not ids:
            return
        names = list(columns)
        params = [
            {"b_id": i, **{f"b_{k}": v for k, v in zip(names, vals, strict=True)}}
            for i, *vals in zip(ids, *columns.values(), strict=True)
        ]
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"), *where)
            .values({k: sa.bindparam(f"b_{k}") for k in names})
        )
        self.session.execute(stmt, params)

    def update_from(
        self,
        table: sa.Table,
        ids: Sequence[int],
        columns: Mapping[str, Sequence[Any]],
        *where: Any,
        times: TimeText | None = None,
    ) -> int:
        """The same UPDATE as ``update_by_id`` for many rows: the new values go into
        a temporary staging table through ``insert`` (COPY on PostgreSQL), then
        one ``UPDATE table … FROM stage WHERE table.id = stage.id [AND where]``
        probes the table's primary key once per row. How many rows it updated."""
        if not ids:
            return 0
        stage = self._stage(table, list(columns))
        conn = self.session.connection()
        conn.execute(sa.delete(stage))
        self.insert(stage, {"id": ids, **columns}, times=times)
        stmt = sa.update(table).values({c: stage.c[c] for c in columns}).where(table.c.id == stage.c.id, *where)
        with self._keyed_join():
            return conn.execute(stmt).rowcount

    def _stage(self, table: sa.Table, names: list[str]) -> sa.Table:
        """The session's temporary table for updates of ``names`` of ``table`` (id + those columns)."""
        key = zlib.crc32(",".join(names).encode()) & 0xFFFFFFFF
        stage = sa.Table(
            f"bulk_stage_{table.name}_{key:08x}",
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            *(sa.Column(c, table.c[c].type) for c in names),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        self.session.connection().execute(CreateTable(stage, if_not_exists=True))
        return stage

    @contextmanager
    def _keyed_join(self) -> Iterator[None]:
        """Settings that make ``update_from``'s join probe the primary key (PostgreSQL)."""
        yield

    # -- shared by the implementations
    def _prepared(
        self, table: sa.Table, columns: Mapping[str, Sequence[Any]], times: TimeText, sqlite_: bool
    ) -> tuple[int, list[str], list[Sequence[Any]], list[int], dict[str, str]]:
        """(rows, names, values per name, positions of columns NULL in some rows,
        SQLite: column → the literal every row shares) of ``insert``'s columns."""
        n = len(next(iter(columns.values()), ()))
        names: list[str] = []
        values_of: list[Sequence[Any]] = []
        mixed: list[int] = []
        shared: dict[str, str] = {}
        for c, values in columns.items():
            if len(values) != n:
                raise ValueError(f"column {c}: {len(values)} values for {n} rows")
            col = table.c[c]
            if col.server_default is None:
                nulls = 0 if all(values) else values.count(None)  # all(): no None, found faster than by count
                if nulls == n:
                    continue
                if nulls:
                    mixed.append(len(names))
            t = col.type
            if isinstance(t, sa.JSON):
                values = json_values(values)
            elif sqlite_ and "UTCDateTime" in type(t).__name__:
                values = time_values(values, times)
            if sqlite_ and n >= SHARED_LITERAL_ROWS and (lit := shared_literal(values)) is not None:
                shared[c] = lit
                continue
            names.append(c)
            values_of.append(values)
        return n, names, values_of, mixed, shared


def writer(session: Session) -> BulkWriter:
    """The bulk writer of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        from cpaas_cli.db.bulk_postgres import PostgresWriter

        return PostgresWriter(session)
    from cpaas_cli.db.bulk_sqlite import SqliteWriter

    return SqliteWriter(session)


# ------------------------------------------------------------ value rendering


def sqlite_time(v: datetime | None) -> str | None:
    """An aware time as SQLite stores it: UTC text without the offset."""
    if v is None:
        return None
    if v.tzinfo is not UTC:
        v = v.astimezone(UTC)
    # UTC-aware isoformat is "YYYY-MM-DD HH:MM:SS.ffffff+00:00": drop the offset.
    return v.isoformat(" ", "microseconds")[:26]


class TimeText(dict):
    """datetime → SQLite text, each distinct instant formatted once (times
    repeat across the columns and rows of a chunk, and across its tables)."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, v: datetime) -> str | None:
        text = self[v] = sqlite_time(v)
        return text


_TZINFO = attrgetter("tzinfo")
_ISO_SPACE = methodcaller("isoformat", " ", "microseconds")
_FIRST_26 = itemgetter(slice(0, 26))


def json_values(values: Sequence[Any]) -> list[str | None]:
    """JSON text per value; a dict object shared by many rows is dumped once."""
    keys = list(map(id, values))
    texts = {k: None if v is None else json.dumps(v) for k, v in dict(zip(keys, values, strict=True)).items()}
    return list(map(texts.__getitem__, keys))


def time_values(values: Sequence[datetime | None], times: TimeText) -> list[str | None]:
    """SQLite text per aware time (``sqlite_time``), through ``times``."""
    n = len(values)
    if n and values[0] is values[-1] and values.count(values[0]) == n:
        return [times[values[0]]] * n  # one instant (``now``, a period start)
    if n and values[0] in times and values[-1] in times:
        return list(map(times.__getitem__, values))  # formatted for another column already
    try:
        utc = set(map(_TZINFO, values)) == {UTC}
    except AttributeError:  # None among them
        utc = False
    if not utc:
        return list(map(times.__getitem__, values))
    # All UTC: "YYYY-MM-DD HH:MM:SS.ffffff+00:00" less the offset, formatted in C.
    texts = list(map(_FIRST_26, map(_ISO_SPACE, values)))
    times.update(zip(values, texts, strict=True))
    return texts


_INT64 = range(-(1 << 63), 1 << 63)


def shared_literal(values: Sequence[Any]) -> str | None:
    """The SQLite literal of the one int or str every one of ``values`` is (None
    when they differ, or for other types, long text or text with a NUL)."""
    v = values[0]
    if type(v) is int:
        if v not in _INT64:
            return None
        lit = str(v)
    elif type(v) is str:
        if len(v) > 100 or "\x00" in v:
            return None
        lit = "'" + v.replace("'", "''") + "'"
    else:
        return None
    last = values[-1]
    if (last is not v and last != v) or values.count(v) != len(values):
        return None
    if type(v) is int and set(map(type, values)) != {int}:  # True or 1.0 equal 1 but are not ints
        return None
    return lit


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def copy_text(values_of: list[Sequence[Any]], times: dict | None = None) -> str | None:
    """The rows (given column by column) in COPY's text format: one line per
    row, tab between fields, ``\\N`` for NULL, backslash escapes in text.
    Columns of str, int or aware datetime values (and None) only; None when a
    column holds anything else (the caller then lets psycopg write the rows).
    ``times`` keeps the text of each instant for the caller's next tables."""
    fields: list[Sequence[str]] = []
    times = {} if times is None else times
    for values in values_of:
        n = len(values)
        if n > 1 and values[0] is values[-1] and type(values[0]) in (str, int) and values.count(values[0]) == n:
            text = copy_text([[values[0]]])
            fields.append([text[:-1]] * n)  # one value in every row
            continue
        kinds = set(map(type, values))
        nulls = type(None) in kinds
        kinds.discard(type(None))
        present = list(filter(partial(is_not, None), values)) if nulls else values
        if kinds == {str}:
            joined = "".join(present)
            if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
                present = [v.translate(_COPY_ESCAPES) for v in present]
            elif not nulls:
                fields.append(values)
                continue
        elif kinds == {int}:
            present = list(map(str, present))
        elif kinds == {datetime}:
            if None in set(map(_TZINFO, present)):
                return None  # naive times: leave them to psycopg
            if present[0] in times and present[-1] in times:
                present = list(map(times.__getitem__, present))  # the same instants as another column
            elif present[0] is present[-1] and present.count(present[0]) == len(present):
                present = [present[0].isoformat()] * len(present)
            else:
                texts = list(map(datetime.isoformat, present))
                times.update(zip(present, texts, strict=True))
                present = texts
        elif kinds:
            return None
        if nulls:
            it = iter(present)
            present = [_COPY_NULL if v is None else next(it) for v in values]
        fields.append(present)
    if not fields or not len(fields[0]):
        return ""
    return "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"


def values_statements(
    table: str,
    names: Sequence[str],
    rows: Iterator[tuple],
    n: int,
    max_params: int,
    ph: str = "?",
    shared: dict[str, str] | None = None,
) -> list[tuple[str, Any]]:
    """The INSERTs of ``n`` rows (an iterator of tuples in ``names`` order) with
    up to ``ROWS_PER_STATEMENT`` rows per statement under ``max_params``
    parameters (multi-row VALUES: far fewer statement steps than one row per
    execute): (sql, a list of parameter tuples) for the full statements, then
    (sql, one parameter tuple) for the rest. ``shared`` columns (name → SQL
    literal) follow ``names`` in every row, with no parameter."""
    shared = shared or {}
    width = len(names)
    one = f"({', '.join([ph] * width + list(shared.values()))})"
    head = f"INSERT INTO {table} ({', '.join([*names, *shared])}) VALUES "
    per = max(1, min(ROWS_PER_STATEMENT, max_params // max(width, 1)))
    full, rest = divmod(n, per)
    out: list[tuple[str, Any]] = []
    if full:
        out.append(
            (head + ", ".join([one] * per), [tuple(chain.from_iterable(islice(rows, per))) for _ in range(full)])
        )
    if rest:
        out.append((head + ", ".join([one] * rest), tuple(chain.from_iterable(rows))))
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk run (ingest, rerate): the many
    short-lived row tuples and dicts hold no cycles (reference counting frees them),
    and the collector's passes over them cost 5-20 % of such a run's CPU."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
