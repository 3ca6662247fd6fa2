"""SQLite's WAL checkpoint in a thread of its own while `serve` runs (cpaas_cli/db/checkpoint.py)."""

from __future__ import annotations

import time

from cpaas_cli.db import checkpoint
from cpaas_cli.db.engine import get_engine


def _autocheckpoint(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def test_the_checkpointer_takes_the_wal_off_the_writers_commits(db_url):
    engine = get_engine(db_url)
    ckpt = checkpoint.for_engine(engine)
    if engine.dialect.name != "sqlite":
        assert ckpt is None  # PostgreSQL has no WAL file of ours to copy back
        return
    assert ckpt is not None and _autocheckpoint(engine) == 1000  # SQLite's default in other processes
    ckpt.every = 0.05
    ckpt.start()
    try:
        assert _autocheckpoint(engine) == 0  # no commit of this process checkpoints any more
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE filler (b BLOB)")
        for _ in range(3):  # ~1500 pages: past the 1000 at which a commit would have checkpointed
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
                    "INSERT INTO filler SELECT randomblob(2000) FROM n"
                )
        runs = ckpt.runs
        deadline = time.monotonic() + 10
        while ckpt.runs < runs + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ckpt.runs >= runs + 2 and ckpt.failures == 0
        busy, wal, copied = ckpt.checkpoint()
        assert busy == 0 and wal > 1000 and copied == wal  # the thread copied it all back
    finally:
        ckpt.stop()
    assert _autocheckpoint(engine) == 1000  # stopped: the process's connections checkpoint as usual
