"""Alembic environment: runs on the connection db/migrate.py opens (one transaction)."""

from __future__ import annotations

from alembic import context

import cpaas_cli.models.all  # noqa: F401  (fills the metadata)
from cpaas_cli.db.base import metadata

config = context.config


def run_migrations_online() -> None:
    # db/migrate.py is the one way in: it runs every upgrade or downgrade in one
    # transaction on a connection of its own (on SQLite with foreign keys off
    # around the table rebuilds, checked before the commit) and passes it here.
    connection = config.attributes.get("connection")
    if connection is None:
        raise SystemExit("run migrations through `cpaas db upgrade` / `cpaas db downgrade`")
    _run(connection)


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
