"""Round trips (issue 25, item 3): what the tool writes it reads back with the
same meaning; numbers without '+' but with a valid country code are recognised."""

from __future__ import annotations

import csv

import pytest

from cpaas_cli.contacts.phones import normalise, reference
from tests.helpers import client, owner_le


@pytest.fixture
def two(cli):
    owner_le(cli)
    client(cli, "Acme")
    client(cli, "Other")
    return cli


def _blocks(cli, company):
    return sorted((r["phone"], r["sender"]) for r in cli.json("contacts", "stoplist", "list", "-c", company))


@pytest.mark.parametrize("name", ["stop.csv", "stop.xlsx", "stop.jsonl"])
def test_stoplist_export_imports_back_identically(two, tmp_path, name):
    cli = two
    cli.json("contacts", "stoplist", "add", "+34612345678", "+447911123456", "-c", "Acme", "-s", "Shop,Bank")
    cli.json("contacts", "stoplist", "add", "+14155552671", "-c", "Acme", "-s", "ALL")
    out = tmp_path / name
    got = cli.json("contacts", "stoplist", "export", str(out), "-c", "Acme")
    assert got == {"file": str(out), "blocks": 5}
    if name.endswith(".csv"):
        with out.open(newline="") as fh:
            phones = {r["phone"] for r in csv.DictReader(fh)}
        assert phones == {"+34612345678", "+447911123456", "+14155552671"}  # E.164 with its +
    if name.endswith(".xlsx"):
        import openpyxl

        sheet = openpyxl.load_workbook(out).active
        assert sheet.title == "Stop list" and sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:C6"
    # no --sender and no --default-country: the file says it all
    assert cli.json("contacts", "stoplist", "import", str(out), "-c", "Other") == {"numbers": 3, "added": 5}
    assert _blocks(cli, "Other") == _blocks(cli, "Acme")
    # a second import changes nothing
    assert cli.json("contacts", "stoplist", "import", str(out), "-c", "Other")["added"] == 0
    cli("contacts", "stoplist", "export", str(out), "-c", "Acme", expect=5)  # exists: --force


def test_stoplist_import_without_sender_column_needs_sender(two, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("phone\n+34612345678\n")
    run = two("contacts", "stoplist", "import", str(f), "-c", "Acme", expect=4)
    assert "--sender" in run.stderr
    assert two.json("contacts", "stoplist", "import", str(f), "-c", "Acme", "-s", "ALL")["added"] == 1


def test_foreign_number_without_plus_is_recognised(two, tmp_path):
    f = tmp_path / "s.csv"
    # a Spanish national number, a UK number written without its +, a US one likewise
    f.write_text("phone,sender\n612345678,ALL\n447911123456,ALL\n14155552671,ALL\n")
    got = two.json("contacts", "stoplist", "import", str(f), "-c", "Acme", "--default-country", "ES")
    assert got == {"numbers": 3, "added": 3}
    assert [p for p, _ in _blocks(two, "Acme")] == ["14155552671", "34612345678", "447911123456"]
    # without a default country a national number is still refused, naming the row
    g = tmp_path / "t.csv"
    g.write_text("phone,sender\n447911123456,ALL\n612345678,ALL\n")
    run = two("contacts", "stoplist", "import", str(g), "-c", "Other", expect=4)
    assert "row 3" in run.stderr and "country code" in run.stderr
    assert _blocks(two, "Other") == []  # nothing half-written


@pytest.mark.parametrize(
    ("text", "country", "expected"),
    [
        ("447911123456", None, "447911123456"),  # valid UK number without its +
        ("447911123456", "FR", "447911123456"),  # not a valid French national number
        ("14155552671", None, "14155552671"),
        ("34612345678", None, "34612345678"),
        ("612345678", "ES", "34612345678"),  # national first
        ("0612345678", "FR", "33612345678"),
        ("4930123456", "DE", "4930123456"),
    ],
)
def test_phone_rule_table(text, country, expected):
    assert normalise(text, country) == expected
    assert reference(text, country) == expected
