"""The bulk writer (db/bulk.py): the same stored rows as plain SQLAlchemy Core, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cpaas_cli.db import bulk
from cpaas_cli.db.types import UTCDateTime

T0 = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)


def _tables():
    md = sa.MetaData()
    return md, [
        sa.Table(
            name,
            md,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("a", sa.Text),
            sa.Column("n", sa.BigInteger),
            sa.Column("t", UTCDateTime),
            sa.Column("j", sa.JSON),
        )
        for name in ("bulk_fast", "bulk_plain")
    ]


@pytest.fixture
def session(db_url):
    from cpaas_cli.db.engine import get_engine, make_session

    s = make_session(get_engine(db_url))
    yield s
    s.rollback()
    s.close()


def _rows(n: int) -> list[dict]:
    other = timezone(timedelta(hours=5, minutes=30))
    return [
        {
            "id": i + 1,
            "a": [None, "x", "tab\there", "it's", "ünï"][i % 5],
            "n": None if i % 7 == 0 else i * 10**9,
            "t": None if i % 3 == 0 else (T0 + timedelta(seconds=i)).astimezone(other if i % 2 else UTC),
            "j": None if i % 4 == 0 else {"i": i, "s": "a\tb"},
        }
        for i in range(n)
    ]


def _stored(s, table):
    return [tuple(r) for r in s.execute(sa.select(table).order_by(table.c.id))]


@pytest.mark.parametrize("n", [1, 7, 250])
def test_insert_and_update_store_what_core_stores(session, n):
    s = session
    md, (fast, plain) = _tables()
    md.create_all(s.connection())
    w = bulk.writer(s)
    rows = _rows(n)
    w.insert_rows(fast, rows)
    s.execute(sa.insert(plain), rows)
    assert _stored(s, fast) == _stored(s, plain) and len(_stored(s, fast)) == n

    ids = [r["id"] for r in rows if r["id"] % 2]
    new = {"a": [f"v{i}" for i in ids], "n": [None] * len(ids), "t": [T0 - timedelta(days=i) for i in ids]}
    assert w.update_from(fast, ids, new, fast.c.id > 1) == len([i for i in ids if i > 1])
    w.update_by_id(plain, ids, new, plain.c.id > 1)
    assert _stored(s, fast) == _stored(s, plain)
    # again: the staging table is emptied first
    assert w.update_from(fast, ids[:1], {"a": ["again"], "n": [5], "t": [T0]}) == 1
    w.update_by_id(plain, ids[:1], {"a": ["again"], "n": [5], "t": [T0]})
    assert _stored(s, fast) == _stored(s, plain)


def test_reserve_ids_and_stored(session):
    from cpaas_cli.models.edr import Edr

    s = session
    md, (fast, _plain) = _tables()
    md.create_all(s.connection())
    w = bulk.writer(s)
    w.write_lock()
    edr = Edr.__table__
    first = w.reserve_ids(edr, 3)
    assert len(first) == 3 and first == sorted(set(first))
    w.insert_rows(fast, _rows(4))
    assert w.stored(fast, "id", [2, 4, 9]) == {2, 4}
    assert w.stored(fast, "a", ["x", "nope"]) == {"x"}


def test_update_values_probes_the_table_key_and_keeps_column_sets_apart(session):
    """SQLite: the staged UPDATE … FROM looks each staged row up by the table's key
    (without statistics on the staging table the planner scanned the whole table per
    call), and two column sets of one table in one session do not share a staging table."""
    s = session
    if s.get_bind().dialect.name != "sqlite":
        pytest.skip("the staging table and its plan are SQLite's (PostgreSQL stages through COPY)")
    from cpaas_cli.db.bulk_sqlite import staging_table

    raw = s.connection().connection
    raw.execute("CREATE TABLE upd_t (id INTEGER PRIMARY KEY, k INTEGER, a TEXT, n INTEGER)")
    raw.execute("CREATE INDEX ix_upd_t_k ON upd_t (k)")
    raw.executemany("INSERT INTO upd_t VALUES (?, ?, 'old', 0)", [(i, i % 10) for i in range(1, 3001)])
    w = bulk.writer(s)
    w.update_values("upd_t", ("a", "n"), [("new", 7, 5), ("new", 8, 2999)])
    w.update_values("upd_t", ("n",), [(9, 6)])
    got = raw.execute("SELECT id, a, n FROM upd_t WHERE a <> 'old' OR n <> 0 ORDER BY id").fetchall()
    assert got == [(5, "new", 7), (6, "old", 9), (2999, "new", 8)]
    staged = staging_table("upd_t", ("a", "n"))
    plan = raw.execute(
        f"EXPLAIN QUERY PLAN UPDATE upd_t SET a = t.a, n = t.n FROM temp.{staged} t WHERE upd_t.id = t.id"
    ).fetchall()
    steps = [r[-1] for r in plan]
    assert any(x.startswith("SEARCH upd_t USING INTEGER PRIMARY KEY") for x in steps), steps
