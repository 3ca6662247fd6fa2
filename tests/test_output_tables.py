"""Output a person can read: tables fitted to 80 and 120 columns (numbers never
cut, text with an ellipsis), -o wide, --columns, nested rows as sub-tables,
brackets as typed, lists that say when --limit cut them, and partial results
named on stderr (issue 25, item 4)."""

from __future__ import annotations

import json

import pytest

from cpaas_cli.cli.output import Fmt, render
from tests.helpers import client, owner_le
from tests.test_money_cli import edr_file, row
from tests.test_money_cli import setup as money_setup

ROWS = [
    {
        "id": i,
        "name": f"Company number {i} with a [red] rather long name",
        "description": "a very long description text that goes on and on and on",
        "balance": "12345.678900",
        "created_at": "2026-01-01T00:00:00+00:00",
        "phone": "+447911123456",
    }
    for i in range(3)
]


def _draw(monkeypatch, capsys, data, fmt=Fmt.table, width: int | None = 80):
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    render(data, fmt)
    return capsys.readouterr()


@pytest.mark.parametrize("width", [80, 120])
def test_list_fits_the_width_numbers_whole_text_with_ellipsis(monkeypatch, capsys, width):
    got = _draw(monkeypatch, capsys, ROWS, width=width)
    lines = got.out.splitlines()
    assert lines and max(len(line) for line in lines) <= width
    # numbers and times are never cut
    assert got.out.count("12345.678900") == 3
    assert got.out.count("2026-01-01T00:00:00+00:00") == 3
    # the long text is cut with an ellipsis, and what is shown of it is its start
    assert "…" in got.out
    assert "Company num" in got.out and "goes on and on and on" not in got.out
    assert "[red]" not in got.out or width == 120  # cut at 80 columns; never read as markup


def test_columns_that_do_not_fit_are_hidden_from_the_right_and_named(monkeypatch, capsys):
    got = _draw(monkeypatch, capsys, ROWS, width=80)
    assert "+447911123456" not in got.out
    assert got.err == "(hidden to fit 80 columns: phone; use -o wide or --columns)\n"
    wide = _draw(monkeypatch, capsys, ROWS, width=120)
    assert wide.out.count("+447911123456") == 3 and wide.err == ""


def test_wide_draws_every_value_whole(monkeypatch, capsys):
    got = _draw(monkeypatch, capsys, ROWS, Fmt.wide, width=80)
    assert got.out.count("Company number 1 with a [red] rather long name") == 1
    assert got.out.count("a very long description text that goes on and on and on") == 3
    assert "…" not in got.out and got.err == ""


def test_show_draws_nested_rows_as_a_sub_table(monkeypatch, capsys):
    data = {"id": 7, "reference": "INV-[7]", "lines": ROWS[:2], "tags": ["a", "b"]}
    got = _draw(monkeypatch, capsys, data, width=120)
    assert "see -o json" not in got.out
    assert "\nlines (2):\n" in got.out
    assert got.out.count("12345.678900") == 2
    assert "INV-[7]" in got.out  # brackets as typed
    assert max(len(line) for line in got.out.splitlines()) <= 120


def test_cli_tables_at_80_and_120_columns_wide_and_columns(cli):
    owner_le(cli)
    client(cli, "Client with a [bold]long[/bold] name that a terminal of 80 columns cannot show whole")
    for width in (80, 120):
        run = cli("tenant", "list", env={"COLUMNS": str(width)})
        assert max(len(line) for line in run.stdout.splitlines()) <= width
    wide = cli("tenant", "list", "-o", "wide", env={"COLUMNS": "80"})
    assert "Client with a [bold]long[/bold] name that a terminal of 80 columns cannot show whole" in wide.stdout
    assert "created_at" in wide.stdout  # wide shows every field, not only the usual columns
    picked = cli.json("tenant", "list", "--columns", "name,id")
    assert [list(r) for r in picked] == [["name", "id"], ["name", "id"]]
    assert picked[0] == {"name": "System owner", "id": 1}
    csv_out = cli("tenant", "list", "-o", "csv", "--columns", "id,type").stdout
    assert csv_out.splitlines()[0] == "id,type"
    bad = cli("tenant", "list", "--columns", "id,nope", expect=4)
    assert "no column nope" in bad.stderr


def test_edr_ingest_names_rejections_and_list_says_when_limit_cut_it(cli, tmp_path):
    money_setup(cli, credit_limit="0.10")
    rows = [row(i) for i in range(3)] + [row(3, agreement="", company="Client A")]
    run = cli("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)), "-o", "json")
    got = run.json
    assert (got["rated"], got["rejected"]) == (1, 3)
    assert got["rejected_reasons"] == {"insufficient_credit": 2, "no_agreement": 1}
    assert "3 rejected: insufficient_credit 2, no_agreement 1\n" in run.stderr
    cut = cli("edr", "list", "--limit", "2", "-o", "json")
    assert len(cut.json) == 2
    assert cut.stderr == "showing 2 of more than 2; use --limit N to see more\n"
    whole = cli("edr", "list", "--limit", "4", "-o", "json")
    assert len(whole.json) == 4 and "showing" not in whole.stderr


def test_numbers_are_never_cut_even_when_nothing_else_fits(monkeypatch, capsys):
    rows = [{"mccmnc": "21401", "price": "0.012345", "at": "2026-01-01T00:00:00Z", "note": "x" * 200}]
    got = _draw(monkeypatch, capsys, rows, width=40)
    assert "21401" in got.out and "0.012345" in got.out
    assert max(len(line) for line in got.out.splitlines()) <= 40
    assert got.err == "(hidden to fit 40 columns: at, note; use -o wide or --columns)\n"


ES_ONLY = """service: SMS service
tree:
  sms:
    depends_on: resource
    children:
      sms_message:
        depends_on: direction
        billing_rule: submitted
        quantity_rule: segments
        children:
          mt:
            depends_on: country
            children:
              ES: {label: Spain, price: "0.04"}
"""


def test_campaign_send_refuses_unpriced_messages_unless_allowed(cli, db_url, tmp_path):
    from tests.test_campaigns import ES1, FR1, queue

    owner_le(cli)
    client(cli)
    cli.json("agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    tree = tmp_path / "tree.yaml"
    tree.write_text(ES_ONLY)
    cli("service", "tree", "apply", "SMS service", str(tree))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    cli.json("sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active")
    args = ["campaign", "create", "--company", "Client A", "--sender", "ACME", "--to", ES1, "--to", FR1]
    c = cli.json(*args, "--text", "x")["id"]
    e = cli.json("campaign", "estimate", str(c))
    assert e["unpriced_messages"] == 1
    shown = cli("campaign", "estimate", str(c), env={"COLUMNS": "120"}).stdout
    assert "\ncountries (2):\n" in shown and "see -o json" not in shown  # per country, as a sub-table
    run = cli("campaign", "send", str(c), "-o", "json", expect=5)
    assert "1 message has no price: FR" in run.stderr and "--allow-unpriced" in run.stderr
    assert cli.json("campaign", "show", str(c))["state"] == "draft" and queue(db_url, c) == []
    sent = cli("campaign", "send", str(c), "--allow-unpriced", "-o", "json")
    assert sent.json["state"] not in ("draft", "failed")
    assert "1 message has no price: FR" in sent.stderr and "sent anyway" in sent.stderr
    assert len(queue(db_url, c)) == 2


def test_columns_and_fitting_in_a_fresh_process(tmp_path):
    """--columns is added to every command with -o when its group loads (cli/app.py → cli/context.py):
    a new interpreter, nothing imported yet, gets it; a table there fits COLUMNS."""
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    def fresh(*args: str, columns: str = "80") -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": columns, "CPAAS_DATABASE_URL": url}
        return subprocess.run([sys.executable, "-m", "cpaas_cli", *args], capture_output=True, text=True, env=env)

    assert (
        fresh("init", "--owner", "Owner with a name far too long for the narrow column", "-o", "json").returncode == 0
    )
    run = fresh("tenant", "list", "--columns", "name,id", "-o", "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [{"name": "Owner with a name far too long for the narrow column", "id": 1}]
    table = fresh("tenant", "list", "-o", "table", columns="60")
    assert table.returncode == 0 and max(len(line) for line in table.stdout.splitlines()) <= 60
    assert fresh("tenant", "list", "--columns", "nope").returncode == 4
    helped = fresh("edr", "list", "--help", columns="200")
    assert "--columns" in helped.stdout and "wide" in helped.stdout
