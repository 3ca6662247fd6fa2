"""Ids are never reused after a delete (migration 0026: SQLite AUTOINCREMENT; PostgreSQL
sequences never reuse), so the audit trail names one object per id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cpaas_cli.db import migrate
from cpaas_cli.db.engine import get_engine
from tests.conftest import BACKEND, Cli
from tests.helpers import client, owner_le
from tests.test_campaigns import setup
from tests.test_contacts import GOOD, imp, write


def test_template_and_company_ids_after_a_delete(cli):
    setup(cli)
    add = ["campaign", "template", "add", "T", "--company", "Client A", "--sender", "ACME"]
    first = cli.json(*add, "--text", "one")["id"]
    second = cli.json(*[*add[:3], "T2", *add[4:]], "--text", "two")["id"]
    cli("campaign", "template", "delete", "T2", "--yes")
    third = cli.json(*[*add[:3], "T3", *add[4:]], "--text", "three")["id"]
    assert first < second < third  # the last id, deleted, is not given again
    kid = cli.json("tenant", "create", "Kid")["id"]
    cli.json("tenant", "delete", "Kid", "--yes")
    again = cli.json("tenant", "create", "Kid")["id"]
    assert again > kid
    audit = cli.json("audit", "list", "--object", "company")
    actions = {
        (a["action"], a["object_id"])
        for a in audit
        if a["object_id"] in (str(kid), str(again)) and a["action"] != "update"
    }
    # the audit trail names two objects: the one deleted and the new one
    assert actions == {("insert", str(kid)), ("delete", str(kid)), ("insert", str(again))}


def test_bulk_written_ids_after_a_delete(cli, tmp_path):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("contacts", "field", "add", "City", "-c", "Acme")
    cli.json("contacts", "field", "add", "Age", "--type", "number", "-c", "Acme")
    imp(cli, write(tmp_path, "a.csv", GOOD))
    rows = cli.json("contacts", "list", "-c", "Acme")
    top = max(rows, key=lambda r: r["id"])
    cli.json("contacts", "delete", "+" + top["phone"], "-c", "Acme", "--yes")
    imp(cli, write(tmp_path, "b.csv", GOOD))  # the bulk writer reserves the ids
    back = next(r for r in cli.json("contacts", "list", "-c", "Acme") if r["phone"] == top["phone"])
    assert back["id"] > top["id"]


def _schema(url: str) -> dict:
    with get_engine(url).connect() as conn:
        insp = sa.inspect(conn)
        return {
            t: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                insp.get_pk_constraint(t)["constrained_columns"],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
                sorted((f["name"], f["referred_table"]) for f in insp.get_foreign_keys(t)),
                sorted(str(c["sqltext"]) for c in insp.get_check_constraints(t)),
            )
            for t in insp.get_table_names()
            if t != "sqlite_sequence"
        }


def _autoincrement_tables(url: str) -> set[str]:
    with get_engine(url).connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
    return {n for n, s in rows if "AUTOINCREMENT" in s}


def _rows(url: str) -> list:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT id, name FROM role ORDER BY id")]


def test_migration_0026_upgrade_and_downgrade(empty_db_url):
    migrate.upgrade(empty_db_url, "0025")
    before, roles = _schema(empty_db_url), _rows(empty_db_url)
    assert len(roles) >= 9  # seeded by 0025: rows the rebuilt tables must keep, with their ids
    migrate.upgrade(empty_db_url, "0026")
    assert _schema(empty_db_url) == before  # only the id's AUTOINCREMENT differs
    assert _rows(empty_db_url) == roles
    if BACKEND == "sqlite":
        assert {"company", "campaign", "contact", "edr", "audit_log", "message_template"} <= _autoincrement_tables(
            empty_db_url
        )
    migrate.downgrade(empty_db_url, "0025")
    assert _schema(empty_db_url) == before and _rows(empty_db_url) == roles
    if BACKEND == "sqlite":
        assert _autoincrement_tables(empty_db_url) == set()
    migrate.upgrade(empty_db_url, "head")
    assert Cli(empty_db_url).json("db", "current")["up_to_date"] is True


def test_later_migrations_keep_autoincrement_both_ways(empty_db_url):
    if BACKEND != "sqlite":
        pytest.skip("AUTOINCREMENT is SQLite's; PostgreSQL sequences never reuse (0026 is a no-op there)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("m0026", migrate.script_location() / "versions/0026_autoincrement.py")
    assert spec is not None and spec.loader is not None
    m0026 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0026)
    tables = set(m0026.TABLES)
    assert len(tables) == 45
    migrate.upgrade(empty_db_url, "head")
    assert tables <= _autoincrement_tables(empty_db_url)
    migrate.downgrade(empty_db_url, "0026")  # later revisions rebuild tables on the way down
    assert tables <= _autoincrement_tables(empty_db_url)
    migrate.upgrade(empty_db_url, "head")
    assert tables <= _autoincrement_tables(empty_db_url)
