"""Table output shows stored text with its control characters escaped (a name,
an actor or a template text cannot drive the terminal); JSON keeps it exact."""

from __future__ import annotations

from tests.helpers import client, owner_le

ESC_NAME = "Evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eCo"
SHOWN = "Evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eCo"


def _no_controls(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e"]
    assert bad == [], repr(text)


def test_table_escapes_names_actors_and_template_texts(cli):
    owner_le(cli)
    row = client(cli, ESC_NAME)
    assert row["name"] == ESC_NAME  # JSON stays exact
    listed = cli("tenant", "list", "-o", "table")
    _no_controls(listed.stdout)
    assert SHOWN in listed.stdout
    shown = cli("tenant", "show", str(row["id"]), "-o", "table")
    _no_controls(shown.stdout)
    assert SHOWN in shown.stdout

    company = str(row["id"])
    cli.json("agreement", "create", "AG-1", "--company", company, "--currency", "EUR", "--from", "2026-01-01")
    cli.json("sender", "add", "ACME", "--company", company, "--agreement", "AG-1", "--active")
    text = "Hi\x1b[8m hidden\r\nline two"
    cli.json("campaign", "template", "add", "T\x1b[1m", "--company", company, "--sender", "ACME", "--text", text)
    templates = cli("campaign", "template", "list", "-o", "table")
    _no_controls(templates.stdout)
    assert "T\\x1b[1m" in templates.stdout
    assert cli.json("campaign", "template", "list")[0]["text"] == text

    cli("--actor", "mallory\x1b[31m", "tenant", "update", str(row["id"]), "--description", "x", "-o", "json")
    audit = cli("audit", "list", "-o", "table")
    _no_controls(audit.stdout)
    assert "mallory\\x1b[31m" in audit.stdout
    assert any(r["actor"] == "mallory\x1b[31m" for r in cli.json("audit", "list"))


def test_brackets_are_shown_as_typed_not_read_as_markup(cli):
    owner_le(cli)
    row = client(cli, "A[/bold] [red]B")
    out = cli("tenant", "show", str(row["id"]), "-o", "table").stdout
    assert "A[/bold] [red]B" in out
    assert "A[/bold] [red]B" in cli("tenant", "list", "-o", "table").stdout


def test_messages_on_stderr_are_escaped_too(cli):
    run = cli("tenant", "show", "no\x1b[2Jsuch", expect=3)
    _no_controls(run.stderr)
    assert len(run.stderr.splitlines()) == 1


def test_tree_show_and_apply_lines_are_escaped(cli, tmp_path):
    from tests.test_catalog import EXAMPLE1, sms_service

    sms_service(cli, tree=None)
    f = tmp_path / "t.yaml"
    f.write_text(EXAMPLE1.read_text().replace("sms:\n", 'sms:\n    label: "S\\e[2JMS\\u202e"\n', 1))
    applied = cli("service", "tree", "apply", "SMS service", str(f), "-o", "table")
    _no_controls(applied.stdout)
    assert "S\\u001b[2JMS\\u202e" in applied.stdout  # the JSON of the change, its bidi override escaped
    shown = cli("service", "tree", "show", "SMS service", "-o", "table")
    _no_controls(shown.stdout)
    assert "S\\x1b[2JMS" in shown.stdout
    assert cli.json("service", "tree", "show", "SMS service")["tree"]["sms"]["label"] == "S\x1b[2JMS\u202e"
