"""Alembic environment: the same engine settings as the application."""

from __future__ import annotations

from alembic import context

import cpaas_cli.models  # noqa: F401  (fills the metadata)
from cpaas_cli.config import load_settings
from cpaas_cli.db.base import metadata
from cpaas_cli.db.engine import get_engine

config = context.config


def _url() -> str:
    return config.attributes.get("url") or load_settings().database_url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # cpaas db upgrade|downgrade: one transaction, foreign keys off (db/migrate.py)
        _run(connection)
        return
    # Alembic used directly: the same, on a connection of the application's engine.
    engine = get_engine(_url())
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by rebuilding it (batch mode: copy, DROP, rename).
            # With foreign keys enforced, the DROP of a table other rows refer to
            # (vendor_connection, campaign, ...) fails. SQLite's own procedure for
            # such changes: keys off outside the transaction, rebuild, check, keys on.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            _run(conn)
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows in {broken[0][0]} pointing to rows that are gone")
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; use cpaas db upgrade")
run_migrations_online()
