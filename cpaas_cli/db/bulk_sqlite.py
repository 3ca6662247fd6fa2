"""The SQLite bulk writer (see ``db/bulk.py`` for the interface)."""

from __future__ import annotations

import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import repeat
from operator import is_, itemgetter
from typing import Any

import sqlalchemy as sa

from cpaas_cli.db import locking
from cpaas_cli.db.bulk import BulkWriter, TimeText, time_values, values_statements

# SQLite settings of the connection for a bulk run, put back after it. Neither
# touches durability: a larger page cache (an index written all over), and WAL
# checkpoints every ~40 MB of log rather than every ~4 MB.
BULK_PRAGMAS = {"cache_size": -131072, "wal_autocheckpoint": 10000}


def staging_table(table: str, names: Sequence[str]) -> str:
    """The temporary table ``update_values`` stages rows of ``table`` in: one per set of
    columns (a run may update two column sets of one table)."""
    return f"{table}_staged_{zlib.crc32(','.join(names).encode()) & 0xFFFFFFFF:08x}"


class SqliteWriter(BulkWriter):
    dialect = "sqlite"
    skips_stored = True

    def prepare_times(self, values: Sequence[datetime | None], times: TimeText) -> None:
        time_values(values, times)

    def write_lock(self) -> None:
        """Take the database write lock now (a no-op write)."""
        locking.write_lock(self.session)

    def exclusive(self, name: str) -> None:
        locking.write_lock(self.session)  # the write lock is the one lock SQLite has

    def reserve_ids(self, table: sa.Table, n: int) -> list[int]:
        """Past ``MAX(id)`` and past the table's AUTOINCREMENT counter (an id is never
        reused after a delete, migration 0026), under the write lock the caller holds."""
        top = (
            self.session.connection()
            .exec_driver_sql(
                f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {table.name}), 0), "
                "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))",
                (table.name,),
            )
            .scalar()
            or 0
        )
        return list(range(top + 1, top + 1 + n))

    def max_params(self) -> int:
        raw = self.session.connection().connection.dbapi_connection
        try:
            return raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except (AttributeError, sqlite3.Error):  # pragma: no cover - older driver
            return 999

    @contextmanager
    def pragmas(self) -> Iterator[None]:
        """``BULK_PRAGMAS`` on the connection for the run, the old values put back after it."""
        raw = self.session.connection().connection.dbapi_connection
        before = {k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in BULK_PRAGMAS}
        for k, v in BULK_PRAGMAS.items():
            raw.execute(f"PRAGMA {k}={int(v)}")
        try:
            yield
        finally:
            for k, v in before.items():
                raw.execute(f"PRAGMA {k}={int(v)}")

    def update_from(
        self,
        table: sa.Table,
        ids: Sequence[int],
        columns: Mapping[str, Sequence[Any]],
        *where: Any,
        times: TimeText | None = None,
    ) -> int:
        if sqlite3.sqlite_version_info < (3, 33, 0):  # pragma: no cover - no UPDATE … FROM before SQLite 3.33
            before = self.session.connection().exec_driver_sql("SELECT total_changes()").scalar()
            self.update_by_id(table, ids, columns, *where)
            return self.session.connection().exec_driver_sql("SELECT total_changes()").scalar() - before
        return super().update_from(table, ids, columns, *where, times=times)

    def insert_values(self, table: str, names: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        cur = self.session.connection().connection.cursor()
        try:
            for sql, params in values_statements(table, names, iter(rows), len(rows), 999):
                if type(params) is list:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
        finally:
            cur.close()

    def update_values(self, table: str, names: Sequence[str], rows: list[tuple]) -> None:
        """Through a temporary table keyed by id and one UPDATE … FROM (before SQLite
        3.33 one UPDATE per row).

        The staging table is analysed once, when it is made: without statistics the
        planner took it for as large as ``table`` and chose to scan the whole of
        ``table`` (a covering index) probing the staged rows, once per chunk — 1M
        reseller CDRs updated in 50k chunks took 6.8 s that way, 1.9 s probing
        ``table``'s key per staged row (2M rows in the table, 2026-12-08)."""
        if not rows:
            return
        sets = ", ".join(f"{c} = ?" for c in names)
        if sqlite3.sqlite_version_info < (3, 33, 0):  # pragma: no cover - no UPDATE … FROM before SQLite 3.33
            self.execute_many(f"UPDATE {table} SET {sets} WHERE id = ?", rows)
            return
        staged = staging_table(table, names)
        cur = self.session.connection().connection.cursor()
        try:
            fresh = cur.execute("SELECT 1 FROM sqlite_temp_master WHERE name = ?", (staged,)).fetchone() is None
            if fresh:
                cur.execute(f"CREATE TEMP TABLE {staged} ({', '.join(names)}, id INTEGER PRIMARY KEY)")
            else:
                cur.execute(f"DELETE FROM temp.{staged}")
            self.insert_values(f"temp.{staged}", (*names, "id"), rows)
            if fresh:
                cur.execute(f"ANALYZE temp.{staged}")
            cur.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = t.{c}' for c in names)}"
                f" FROM temp.{staged} t WHERE {table}.id = t.id"
            )
            cur.execute(f"DELETE FROM temp.{staged}")
        finally:
            cur.close()

    def execute_many(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        cur = self.session.connection().connection.cursor()
        try:
            cur.executemany(sql, rows)
        finally:
            cur.close()

    def stored(self, table: sa.Table, column: str, values: Sequence[Any]) -> set[Any]:
        """In batches under the parameter limit."""
        conn = self.session.connection()
        per = self.max_params()
        found: set[Any] = set()
        for i in range(0, len(values), per):
            part = tuple(values[i : i + per])
            q = f"SELECT {column} FROM {table.name} WHERE {column} IN ({', '.join('?' * len(part))})"
            found.update(r[0] for r in conn.exec_driver_sql(q, part))
        return found

    def insert(
        self,
        table: sa.Table,
        columns: Mapping[str, Sequence[Any]],
        *,
        times: TimeText | None = None,
        unless_stored: str | None = None,
    ) -> int:
        """Multi-row INSERTs, ``ROWS_PER_STATEMENT`` rows each (the rest in one
        more); shared values as literals; rows with their own ids grouped by
        which columns are NULL, each group without those (the driver binds a
        None far slower than a value)."""
        times = TimeText() if times is None else times
        n, names, values_of, mixed, shared = self._prepared(table, columns, times, True)
        if not n:
            return 0
        tail = f" ON CONFLICT ({unless_stored}) DO NOTHING" if unless_stored else ""
        if mixed and "id" in names:
            groups: dict[tuple[bool, ...], list[int]] = defaultdict(list)
            for i, key in enumerate(zip(*(map(is_, values_of[j], repeat(None)) for j in mixed), strict=True)):
                groups[key].append(i)
            table_rows = list(zip(*values_of, strict=True)) if len(groups) > 1 else None
            stored = 0
            for key, rows in groups.items():
                drop = {j for j, null in zip(mixed, key, strict=True) if null}
                keep = [j for j in range(len(names)) if j not in drop]
                if table_rows is None:  # one group: its columns as they are
                    picked = zip(*(values_of[j] for j in keep), strict=True)
                else:
                    pick = itemgetter(*keep) if len(keep) > 1 else lambda r, j=keep[0]: (r[j],)
                    picked = map(pick, map(table_rows.__getitem__, rows))
                stored += self._run(table.name, [names[j] for j in keep], picked, len(rows), tail, shared)
            return stored
        return self._run(table.name, names, zip(*values_of, strict=True), n, tail, shared)

    def _run(
        self, table: str, names: list[str], rows: Iterator[tuple], n: int, tail: str, shared: dict[str, str]
    ) -> int:
        """Run the INSERTs of ``values_statements`` (each followed by ``tail``); how many rows they stored."""
        conn = self.session.connection()
        quote = conn.dialect.identifier_preparer.quote  # a column named like a keyword ("values")
        names = [quote(c) for c in names]
        shared = {quote(c): v for c, v in shared.items()}
        stored = 0
        for sql, params in values_statements(table, names, rows, n, self.max_params(), "?", shared):
            stored += conn.exec_driver_sql(sql + tail, params).rowcount
        return stored
