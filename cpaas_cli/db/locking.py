"""Locks for state changes that two processes may race (DESIGN.md, Safety rules).

Two commands that change the same thing at once must not both win: one waits
for the other and then sees its result (a state it can no longer leave: a
Conflict, exit 5), or is refused at once. The helpers here are the one way the
domain modules take those locks, on both databases:

* :func:`write_lock` — SQLite: take the database write lock now, before any
  read the write depends on (what ``BEGIN IMMEDIATE`` does; SQLite runs reads
  outside a transaction until the first write, so everything read after this
  is current and stays so until commit). PostgreSQL: nothing.
* :func:`lock_row` — re-read one ORM object under a lock so its state can be
  checked and changed as one step: ``SELECT … FOR UPDATE`` on PostgreSQL, the
  write lock on SQLite. A second command waits, then sees the new state.
* :func:`serialise` — a named lock until the transaction ends (PostgreSQL
  ``pg_advisory_xact_lock``; SQLite's write lock): for work that creates rows
  a racing command would create too (invoice drafts, a new contact group).
* :func:`run_lock` — a named lock held for the life of a long command that
  commits many times (a rerate task run), released when the command ends or
  its process dies: a PostgreSQL session-level advisory lock on a connection
  of its own; on SQLite an OS lock on a byte of the file ``<database>-lock``
  beside the database. A second holder is refused at once (Conflict).
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli.errors import Conflict

try:  # POSIX only; elsewhere SQLite run locks are not taken (one process per database)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def _key(kind: str, name: str) -> int:
    return zlib.crc32(f"cpaas-{kind}:{name}".encode()) & 0x7FFFFFFF


def _is_pg(bind: Any) -> bool:
    return bind.dialect.name == "postgresql"


def write_lock(session: Session) -> None:
    """SQLite: take the database write lock now (a no-op write); PostgreSQL: nothing."""
    if not _is_pg(session.get_bind()):
        session.connection().exec_driver_sql("UPDATE agreement_balance SET spent = spent WHERE 0 = 1")


def lock_row(session: Session, obj: Any) -> None:
    """Re-read ``obj`` from the database under a lock that lasts until the transaction ends."""
    write_lock(session)
    session.flush()
    session.refresh(obj, with_for_update=True)


def serialise(session: Session, name: str) -> None:
    """Hold the lock ``name`` until the transaction ends (others wait for it)."""
    if _is_pg(session.get_bind()):
        session.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_key("xact", name),))
    else:
        write_lock(session)


_held: set[tuple[str, int]] = set()
_held_guard = threading.Lock()
_lock_files: dict[str, int] = {}


def _sqlite_lock_fd(engine: Engine) -> int | None:
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:") or fcntl is None:
        return None
    path = os.path.abspath(db) + "-lock"
    if path not in _lock_files:  # one descriptor per process: POSIX record locks belong to the process
        _lock_files[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return _lock_files[path]


@contextmanager
def run_lock(engine: Engine, name: str, *, busy: str) -> Iterator[None]:
    """Hold ``name`` while the block runs; Conflict(``busy``) if another command holds it."""
    engine = getattr(engine, "engine", engine)  # a Connection's engine
    key = _key("run", name)
    mine = (str(engine.url), key)
    with _held_guard:
        if mine in _held:
            raise Conflict(busy)
        _held.add(mine)
    try:
        if _is_pg(engine):
            with engine.connect() as conn:
                got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
                conn.commit()
                if not got:
                    raise Conflict(busy)
                try:
                    yield
                finally:
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                    conn.commit()
        else:
            fd = _sqlite_lock_fd(engine)
            if fd is None:
                yield
                return
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
            except OSError as exc:
                raise Conflict(busy) from exc
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, key)
    finally:
        with _held_guard:
            _held.discard(mine)


__all__ = ["lock_row", "run_lock", "serialise", "write_lock"]
