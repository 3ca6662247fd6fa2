"""What PostgreSQL refuses, SQLite refuses too: a value longer than its
column, a NUL character, text that is not UTF-8. Every path gives the same
exit 4, naming the field and the limit, on both databases."""

from __future__ import annotations

import json

import pytest

from cpaas_cli.db import checks
from cpaas_cli.models.tenancy import Company
from tests.helpers import client, owner_le
from tests.test_catalog import EXAMPLE1, sms_service
from tests.test_money_cli import row
from tests.test_money_cli import setup as money_setup

LONG = "x" * 300


def _one_line(run, *parts: str) -> None:
    assert run.stderr.startswith("error: ") and len(run.stderr.splitlines()) == 1, run.stderr
    for part in parts:
        assert part in run.stderr, run.stderr


def test_text_problem_rule():
    assert checks.text_problem("abc", 3) is None
    assert checks.text_problem("abcd", 3) == "is longer than 3 characters (4 given)"
    assert "NUL" in checks.text_problem("a\x00b")
    assert checks.text_problem("\udcff") == "is not valid UTF-8 text"
    assert "NUL" in checks.json_problem({"k": ["ok", {"x\x00": 1}]})
    assert checks.limits(Company.__table__)["name"] == ("text", 200)


def test_too_long_names_are_refused_on_every_database(cli):
    owner_le(cli)
    run = cli("service", "create", LONG, "--type", "payg", "--currency", "EUR", expect=4)
    _one_line(run, "name: is longer than 200 characters (300 given)", "nothing was written")
    assert cli.json("service", "list") == []
    run = cli("tenant", "legal-entity", "add", "LE", "--company", "1", "--legal-name", "y" * 400, "--country", "ES",
              "--legal-id", "B2", expect=4)  # fmt: skip
    _one_line(run, "legal_name: is longer than 300 characters (400 given)")
    # an update is checked too, field by field
    c = client(cli, "Acme")
    run = cli("tenant", "update", str(c["id"]), "--description", "d\x00d", expect=4)
    _one_line(run, "description: contains a NUL character")


def test_actor_and_bytes_that_are_not_utf8(cli):
    owner_le(cli)
    run = cli("--actor", "a" * 201, "service", "create", "S", "--type", "payg", "--currency", "EUR", expect=4)
    _one_line(run, "actor (--actor, CPAAS_ACTOR): is longer than 200 characters (201 given)")
    run = cli("service", "create", "bad\udcffname", "--type", "payg", "--currency", "EUR", expect=4)
    _one_line(run, "not valid UTF-8")
    assert cli.json("service", "list") == []


def test_nul_in_a_tree_file_through_the_bulk_insert(cli, tmp_path):
    sms_service(cli, tree=None)
    f = tmp_path / "t.yaml"
    f.write_text(EXAMPLE1.read_text().replace("sms:\n", 'sms:\n    label: "S\\0MS"\n', 1))
    run = cli("service", "tree", "apply", "SMS service", str(f), expect=4)
    _one_line(run, "label: contains a NUL character")
    assert cli.json("service", "tree", "show", "SMS service")["tree"] == {}


def test_nul_and_long_values_in_a_contacts_import(cli, tmp_path):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("contacts", "group", "add", "VIP", "-c", "Acme")
    cli.json("contacts", "field", "add", "City", "-c", "Acme")
    maps = ["-m", "phone=Mobile", "-m", "first_name=Name", "-m", "field:City=City"]
    for content, field in [
        (f"Mobile,Name,City\n+34612345678,{'n' * 201},Madrid\n", "first_name: is longer than 200 characters"),
        ("Mobile,Name,City\n+34612345678,Ana,Ma\x00drid\n", "field:city: contains a NUL character"),
    ]:
        f = tmp_path / "c.csv"
        f.write_text(content)
        run = cli("contacts", "import", str(f), "-c", "Acme", "-g", "VIP", *maps, expect=4)
        _one_line(run, "row 2", field)
    assert cli.json("contacts", "list", "-c", "Acme") == []


def test_nul_in_an_edr_file(cli, tmp_path):
    money_setup(cli)
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps(row(1, sender="AC\x00ME")) + "\n")
    run = cli("edr", "ingest", str(f), expect=4)
    assert "sender: contains a NUL character" in run.stderr, run.stderr
    assert cli.json("edr", "list") == []


@pytest.mark.parametrize("column", ["msg", "code"])
def test_nul_in_a_campaign_file(cli, tmp_path, column):
    from tests.test_campaigns import ES1, setup

    setup(cli)
    f = tmp_path / "r.csv"
    bad = {"msg": "Hi\x00there", "code": "X1"} if column == "msg" else {"msg": "Hi {{ code }}", "code": "X\x001"}
    f.write_text(f"phone,msg,code\n{ES1},{bad['msg']},{bad['code']}\n")
    run = cli("campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f),
              "--map", "phone=phone", "--map", "text=msg", "--map", "code=code", expect=4)  # fmt: skip
    _one_line(run, "row 2", f"{'msg' if column == 'msg' else 'code'}: contains a NUL character")
    assert cli.json("campaign", "list") == []


def test_an_mo_with_a_nul_is_stored_as_received_on_both_databases(cli, session):
    """What a remote peer sends is stored, not refused: NUL becomes U+FFFD."""
    from cpaas_cli.dispatch import inbound

    owner_le(cli)
    inbound.handle_mo(
        session, source="34600000001", dest="12\x0034", text="Hi\x00there", stop_words=["STOP"], start_words=[]
    )
    session.commit()
    got = cli.json("inbound", "list")
    assert [(r["text"], r["destination"]) for r in got] == [("Hi\ufffdthere", "12\ufffd34")]
