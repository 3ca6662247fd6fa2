"""Engine and session factory.

SQLite runs in WAL mode with foreign keys on; PostgreSQL through psycopg 3.
A URL that cannot be used (not parsable, a bad port, another backend) is a
CpaasError, exit 1, as a database that cannot be reached is.

On PostgreSQL each engine carries a profile (``db/pool.py``): pool size,
``application_name``, statement timeout. The process sets its profile once
(``set_profile``: the CLI per command, `serve` for its parts "http" and
"scheduler" too); ``get_engine(url, part=…)`` keeps one engine per URL and
profile. SQLite engines are one per URL, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from cpaas_cli.db.pool import Profile, current_profile, set_profile
from cpaas_cli.db.pool import resolved as pool_resolved
from cpaas_cli.errors import CpaasError, InvalidInput


def normalise_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_ENGINES: dict[tuple[str, Profile | None], Engine] = {}


def install_hooks() -> None:
    """The hooks every engine and session of the process carries, registered
    explicitly (never as a side effect of importing a module): the audit
    trail's flush hooks, then the text checks of ``db/checks.py``."""
    from cpaas_cli.audit import service as audit
    from cpaas_cli.db import checks

    audit.install()
    checks.install()


def get_engine(url: str, *, part: str | None = None) -> Engine:
    """One engine per URL (and, on PostgreSQL, per profile: see ``set_profile``) per process."""
    install_hooks()
    url = normalise_url(url)
    if (url, None) in _ENGINES:  # SQLite
        return _ENGINES[(url, None)]
    if not url.startswith("postgresql"):
        profile = None
    else:
        profile = current_profile(part)
        if (url, profile) in _ENGINES:
            return _ENGINES[(url, profile)]
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise CpaasError(f"database URL is not valid: {exc}") from exc
    except ValueError as exc:  # a port that is not a number (the URL is not echoed: it may hold a password)
        raise CpaasError("database URL is not valid: the port must be a number from 1 to 65535") from exc
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise CpaasError("database URL is not valid: the port must be a number from 1 to 65535")
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        profile = None
    elif parsed.get_backend_name() == "postgresql":
        profile = profile or current_profile(part)
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=profile.pool_size,
            max_overflow=profile.max_overflow,
            pool_timeout=profile.pool_timeout,
            connect_args=profile.connect_args(dict(parsed.query)),
        )
    else:
        raise CpaasError(f"unsupported database backend {parsed.get_backend_name()!r} (use sqlite or postgresql)")
    _ENGINES[(url, profile)] = engine
    return engine


def release_profile() -> None:
    """The end of a CLI command run in-process (tests, library callers): close the
    pooled connections of the engines its profile made, and go back to the default
    profile. Engines of other profiles (a `serve` running beside it) are left alone."""
    profile = current_profile() if pool_resolved() else None
    set_profile(None)
    for (_url, prof), engine in list(_ENGINES.items()):
        if profile is not None and prof == profile:
            engine.dispose()


def dispose_all() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def make_session(engine: Engine, *, actor: str = "unknown", command: str = "") -> Session:
    """A session of ``engine``. Every session gets the audit module's flush
    hooks (audit rows, ``updated_at``) and the text check of ``db/checks.py``:
    they are registered here, whatever else the process has imported (the
    CLI, `serve`'s jobs, library use). An actor the audit trail cannot store
    is refused."""
    from cpaas_cli.db import checks
    from cpaas_cli.models.audit import AuditLog

    install_hooks()
    problem = checks.text_problem(actor, checks.limits(AuditLog.__table__)["actor"][1])
    if problem:
        raise InvalidInput(f"actor (--actor, CPAAS_ACTOR): {problem}")

    factory = sessionmaker(bind=engine, class_=Session, expire_on_commit=False)
    session = factory()
    session.info["actor"] = actor
    session.info["command"] = command
    return session


@contextmanager
def session_scope(engine: Engine, *, actor: str = "unknown", command: str = "") -> Iterator[Session]:
    """The command owns the transaction: commit on success, roll back on any error."""
    session = make_session(engine, actor=actor, command=command)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
