"""The CLI contract: output formats, stdout vs stderr, exit codes, --version, --quiet."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from cpaas_cli import __version__
from cpaas_cli.cli.app import app
from cpaas_cli.errors import ExitCode
from tests.helpers import client, owner_le


def test_exit_code_enum_is_the_documented_one():
    assert {e.name: e.value for e in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "NOT_FOUND": 3,
        "INVALID_INPUT": 4,
        "CONFLICT": 5,
        "UPSTREAM": 6,
        "INSUFFICIENT_CREDIT": 7,
        "DENIED": 8,
        "INTERRUPTED": 130,
    }


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cpaas {__version__}"


def test_every_output_format_on_a_list(cli):
    owner_le(cli)
    client(cli, "Alpha")
    client(cli, "Beta, Inc.")
    as_json = cli.json("tenant", "list")
    assert [r["name"] for r in as_json] == ["System owner", "Alpha", "Beta, Inc."]
    as_jsonl = cli("tenant", "list", "-o", "jsonl").jsonl
    assert as_jsonl == as_json
    rows = list(csv.DictReader(io.StringIO(cli("tenant", "list", "-o", "csv").stdout)))
    assert [r["name"] for r in rows] == ["System owner", "Alpha", "Beta, Inc."]
    assert rows[1]["enabled"] == "true"
    tsv = list(csv.DictReader(io.StringIO(cli("tenant", "list", "-o", "tsv").stdout), delimiter="\t"))
    assert [r["type"] for r in tsv] == ["owner", "client", "client"]
    table = cli("tenant", "list", "-o", "table").stdout
    assert "Beta, Inc." in table and "Alpha" in table


def test_global_output_option_applies_to_subcommands(cli):
    data = cli("-o", "json", "tenant", "show", "1").json
    assert data["type"] == "owner"


def test_messages_go_to_stderr_and_quiet_silences_them(cli):
    owner_le(cli)
    run = cli("tenant", "create", "Gamma", "-o", "json")
    assert run.json["name"] == "Gamma"  # stdout is pure JSON
    assert "created client 'Gamma'" in run.stderr
    quiet = cli("--quiet", "tenant", "create", "Delta", "-o", "json")
    assert quiet.json["name"] == "Delta"
    assert quiet.stderr == ""


def test_not_found_is_exit_3_one_line_no_traceback(cli):
    run = cli("tenant", "show", "Nobody", expect=3)
    assert run.stdout == ""
    assert run.stderr.strip() == "error: company 'Nobody' not found"
    assert "Traceback" not in run.stderr


def test_invalid_input_is_exit_4_and_lists_every_problem(cli):
    owner_le(cli)
    c = client(cli)
    run = cli(
        "agreement",
        "create",
        "X",
        "--company",
        c["name"],
        "--currency",
        "EUX",
        "--billing-period",
        "monthly",
        "--billing-day",
        "40",
        "--billing-tz",
        "Mars/Base",
        expect=4,
    )
    lines = run.stderr.strip().splitlines()
    assert lines[0].startswith("error: 3 invalid values")
    assert any("currency" in x for x in lines)
    assert any("billing_day" in x for x in lines)
    assert any("billing_tz" in x for x in lines)
    assert cli.json("agreement", "list") == []


def test_conflict_is_exit_5(cli):
    owner_le(cli)
    client(cli, "Same")
    run = cli("tenant", "create", "Same", expect=5)
    assert "already exists" in run.stderr


def test_usage_error_is_exit_2(cli):
    run = cli("tenant", "create", "X", "--type", "emperor", expect=2)
    assert "Traceback" not in run.stderr


def test_database_without_tables_says_run_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    result = CliRunner().invoke(app, ["--db", url, "tenant", "list"])
    assert result.exit_code == 1
    assert "cpaas db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("driver", "kind", "code", "prefix"),
    [
        ("sqlite3", "IntegrityError", 5, "conflict: "),
        ("sqlite3", "OperationalError", 1, "database error: "),
        ("psycopg", "IntegrityError", 5, "conflict: "),
        ("psycopg", "OperationalError", 1, "database error: "),
    ],
)
def test_a_driver_error_outside_sqlalchemy_is_one_line_and_an_exit_code(capsys, driver, kind, code, prefix):
    """Bulk paths (COPY, raw cursors) raise the driver's own errors: they become
    one line on stderr and the exit code of their kind, like SQLAlchemy's."""
    import importlib

    import typer

    from cpaas_cli.cli.app import _db_error

    exc = getattr(importlib.import_module(driver), kind)("duplicate key value\nDETAIL: more")
    with pytest.raises(typer.Exit) as got:
        _db_error(exc)
    assert got.value.exit_code == code
    assert capsys.readouterr().err == f"error: {prefix}duplicate key value\n"
