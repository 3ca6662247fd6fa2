"""`db upgrade`/`db downgrade` run in one transaction on both databases: a
downgrade reaches its target or changes nothing (no half-downgraded database,
no `_alembic_tmp_*` table left behind)."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli.db import migrate
from cpaas_cli.db.engine import dispose_all, get_engine
from tests.helpers import client, owner_le


def _with_data(cli) -> None:
    owner_le(cli)
    client(cli, "Acme")
    cli.json("agreement", "create", "AG-1", "--company", "Acme", "--currency", "EUR", "--from", "2026-01-01")
    cli.json("sender", "add", "ACME", "--company", "Acme", "--agreement", "AG-1", "--active")


def _tables(url: str) -> list[str]:
    dispose_all()
    return sorted(sa.inspect(get_engine(url)).get_table_names())


def test_downgrade_to_base_of_a_database_with_data(cli, db_url):
    _with_data(cli)
    down = cli.json("db", "downgrade", "base", "--yes")
    assert down["to"] == []
    assert _tables(db_url) == ["alembic_version"]
    up = cli.json("db", "upgrade")
    assert up["to"] == migrate.heads(db_url)


def test_a_failed_downgrade_changes_nothing(cli, db_url):
    _with_data(cli)
    before = _tables(db_url)
    with get_engine(db_url).begin() as conn:  # an operator's view keeps `company` from being dropped or rebuilt
        conn.execute(sa.text("CREATE VIEW company_names AS SELECT name FROM company"))
    run = cli("db", "downgrade", "base", "--yes", expect=1)
    head = ", ".join(migrate.heads(db_url))
    assert run.stderr.startswith(
        f"error: downgrade to base failed and was rolled back; the database is still at {head}"
    )
    assert len(run.stderr.splitlines()) == 1
    assert _tables(db_url) == before
    assert not [t for t in before if t.startswith("_alembic_tmp")]
    assert cli.json("db", "current")["current"] == migrate.heads(db_url)
    assert [r["code"] for r in cli.json("agreement", "list")] == ["AG-1"]
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.text("DROP VIEW company_names"))
    assert cli.json("db", "downgrade", "base", "--yes")["to"] == []
