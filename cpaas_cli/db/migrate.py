"""Alembic, driven from code so that it works from an installed wheel.

The migration scripts live in the repository's top-level ``migrations/``
folder; the wheel carries them as ``cpaas_cli/_migrations``.

Every upgrade or downgrade runs in ONE transaction, on both databases: it
either reaches its target or changes nothing (no database left halfway, no
``_alembic_tmp_*`` table left by a half-done SQLite table copy). PostgreSQL has
transactional DDL. SQLite does too, once the driver stops committing on its
own: the migration connection opens the transaction itself (``BEGIN
IMMEDIATE``) and runs with foreign-key enforcement off, as SQLite's documented
way of rebuilding a table requires; ``PRAGMA foreign_key_check`` then checks
the result before the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cpaas_cli.db.engine import get_engine, normalise_url
from cpaas_cli.errors import CpaasError


def script_location() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError("migration scripts not found (broken installation)")


def alembic_config(url: str, secret_keys: Callable[[], Any] | None = None) -> Config:
    """``secret_keys``: loads the secret keyring for migrations that encrypt or
    decrypt stored secrets (called only when one needs it)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.attributes["url"] = url
    if secret_keys is not None:
        cfg.attributes["secret_keys"] = secret_keys
    return cfg


class MigrationFailed(CpaasError):
    """A migration step failed; its transaction was rolled back."""


def _sqlite_engine(url: str) -> sa.engine.Engine:
    """A private SQLite engine whose transactions really enclose DDL."""
    engine = sa.create_engine(normalise_url(url), connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN/COMMIT by the driver
        dbapi_conn.execute("PRAGMA foreign_keys=OFF")  # only takes effect outside a transaction

    @sa.event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _one_transaction(url: str) -> Iterator[sa.engine.Connection]:
    """A connection inside one transaction, committed only if the block succeeds."""
    if get_engine(url).dialect.name != "sqlite":
        with get_engine(url).connect() as conn, conn.begin():
            yield conn
        return
    engine = _sqlite_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                tables = ", ".join(sorted({str(r[0]) for r in broken}))
                raise MigrationFailed(f"rows in {tables} would point to rows that no longer exist")
    finally:
        engine.dispose()


def _run(url: str, step: Callable[[Config], None], what: str, secret_keys: Callable[[], Any] | None = None) -> None:
    before = current(url)
    cfg = alembic_config(url, secret_keys)
    try:
        with _one_transaction(url) as conn:
            cfg.attributes["connection"] = conn
            step(cfg)
    except Exception as exc:
        if isinstance(exc, CpaasError) and not isinstance(exc, MigrationFailed):
            raise
        reason = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc).strip()
        reason = (reason.splitlines() or [type(exc).__name__])[0]
        at = ", ".join(before) or "base"
        raise MigrationFailed(f"{what} failed and was rolled back; the database is still at {at}: {reason}") from exc


def upgrade(url: str, revision: str = "head", *, secret_keys: Callable[[], Any] | None = None) -> None:
    _run(url, lambda cfg: command.upgrade(cfg, revision), f"upgrade to {revision}", secret_keys)


def downgrade(url: str, revision: str, *, secret_keys: Callable[[], Any] | None = None) -> None:
    _run(url, lambda cfg: command.downgrade(cfg, revision), f"downgrade to {revision}", secret_keys)


def current(url: str) -> list[str]:
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn)
        return list(ctx.get_current_heads())


def heads(url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def history(url: str) -> list[dict]:
    script = ScriptDirectory.from_config(alembic_config(url))
    applied = set(current(url))
    out = []
    for rev in script.walk_revisions():
        out.append(
            {
                "revision": rev.revision,
                "down_revision": rev.down_revision,
                "message": rev.doc,
                "head": rev.is_head,
                "current": rev.revision in applied,
            }
        )
    return out
