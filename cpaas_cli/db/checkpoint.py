"""SQLite: the write-ahead log copied back into the database by a thread of its own.

By default SQLite checkpoints inside the commit that takes the WAL past 1000
pages: that one commit (of a worker's batch, or of a group of API requests)
copies some 4 MB and takes 10-30 ms longer than the others, and every request
waiting on it waits as long (the HTTP API's p99). A long-running ``serve`` on
SQLite turns the automatic checkpoint off on its own connections
(``wal_autocheckpoint=0``) and runs a PASSIVE checkpoint every second here
instead: PASSIVE copies what no reader still needs without taking the write
lock, so writers go on meanwhile. Other processes (the CLI) keep SQLite's
default. On stop, one last checkpoint. PostgreSQL has nothing of the kind
(:func:`for_engine` returns None there).

Written by hand: SQLite's C API has a WAL hook for this, but Python's sqlite3
module does not expose it, and no maintained library does this for SQLAlchemy.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger("cpaas.db.checkpoint")


def _no_autocheckpoint(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


class WalCheckpointer:
    """``start()`` / ``stop()`` as ``scheduler.serve.run`` calls its services."""

    def __init__(self, engine: Engine, every: float = 1.0):
        self.engine = engine
        self.every = every
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.runs = 0  # checkpoints done (tests)
        self.failures = 0

    def start(self) -> None:
        event.listen(self.engine, "connect", _no_autocheckpoint)
        self.engine.dispose()  # the pool's idle connections are made again, with the setting
        self.thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self.thread.start()

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, WAL pages, pages copied back)."""
        with self.engine.connect() as conn:
            busy, wal, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        self.runs += 1
        return int(busy), int(wal), int(copied)

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                self.checkpoint()
            except Exception:  # a busy or locked moment: the next second tries again
                self.failures += 1
                log.warning("WAL checkpoint failed; trying again in %.1f s", self.every, exc_info=True)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        event.remove(self.engine, "connect", _no_autocheckpoint)
        try:
            self.checkpoint()
        except Exception:
            log.warning("last WAL checkpoint failed (the next writer's will copy it)", exc_info=True)
        self.engine.dispose()  # later connections of this process checkpoint as usual again


def for_engine(engine: Engine) -> WalCheckpointer | None:
    """A checkpointer for a SQLite engine; None for PostgreSQL."""
    return WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
