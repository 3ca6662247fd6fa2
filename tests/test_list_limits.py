"""Lists say when `--limit` cut them (issue 25, item 4): one line on stderr
("showing 2 of more than 2; use --limit N to see more"), nothing when the limit
did not cut the list (also when it holds exactly --limit rows), and stdout keeps
only the rows, in every format."""

from __future__ import annotations

import csv
import io

from cpaas_cli.cli.app import ENTRIES, load
from tests.helpers import client, owner_le
from tests.test_campaigns import setup as campaign_setup
from tests.test_edr_export import _task, add_edrs
from tests.test_money_cli import setup as money_setup

NOTICE = "showing {n} of more than {n}; use --limit N to see more"

# every command with --limit; a new one joins this list with a test that it says when it cut
LIMITED = {
    "audit list",
    "balance history",
    "callback list",
    "campaign list",
    "otp guard list",  # (out of order: the otp branch adds "otp integration list" below)
    "contacts list",
    "contacts import-history",
    "edr list",
    "edr export-task list",
    "inbound list",
    "otp integration list",
    "report run",
}


def _commands(cmd, path):
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path, cmd
        return
    for name, sub in subs.items():
        yield from _commands(sub, f"{path} {name}")


def test_every_command_with_a_limit_is_known():
    found = {path for name in ENTRIES for path, cmd in _commands(load(name), name) if any(
        "--limit" in p.opts for p in cmd.params)}  # fmt: skip
    assert found == LIMITED


def _stderr_lines(run) -> list[str]:
    return run.stderr.splitlines()


def test_otp_integration_list(cli, monkeypatch):
    from cryptography.fernet import Fernet

    from tests.test_serve import setup

    monkeypatch.setenv("CPAAS_SECRET_KEY", Fernet.generate_key().decode())  # the keys are hashed with it
    setup(cli, 9)
    for name in ("A", "B", "C"):
        cli.json("otp", "integration", "create", "-c", "Client A", "--name", name, "-s", "ACME", "--text", "{{code}}")
    cut = cli("otp", "integration", "list", "--limit", "2", "-o", "json")
    assert [r["name"] for r in cut.json] == ["C", "B"] and _stderr_lines(cut) == [NOTICE.format(n=2)]
    exact = cli("otp", "integration", "list", "--limit", "3", "-o", "csv")
    assert len(list(csv.reader(io.StringIO(exact.stdout)))) == 4 and exact.stderr == ""


def test_audit_list(cli):
    owner_le(cli)
    client(cli)
    every = cli.json("audit", "list")
    assert len(every) >= 4
    cut = cli("audit", "list", "--limit", "2", "-o", "json")
    assert cut.json == every[:2]
    assert _stderr_lines(cut) == [NOTICE.format(n=2)]
    exact = cli("audit", "list", "--limit", str(len(every)), "-o", "json")
    assert exact.json == every and exact.stderr == ""
    # CSV stays one header and the rows; --quiet silences the notice
    as_csv = cli("audit", "list", "--limit", "3", "-o", "csv")
    assert len(list(csv.reader(io.StringIO(as_csv.stdout)))) == 4
    assert cli("-q", "audit", "list", "--limit", "2", "-o", "json").stderr == ""


def test_contacts_list_where_zero_means_no_limit(cli):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("contacts", "group", "add", "VIP", "-c", "Acme")
    for n in ("+34600000001", "+34600000002", "+34600000003"):
        cli.json("contacts", "add", n, "-c", "Acme", "-g", "VIP")
    cut = cli("contacts", "list", "-c", "Acme", "--limit", "2", "-o", "json")
    assert len(cut.json) == 2
    assert _stderr_lines(cut) == ["showing 2 of more than 2; use --limit N (0: no limit) to see more"]
    for limit in ("3", "0"):
        whole = cli("contacts", "list", "-c", "Acme", "--limit", limit, "-o", "json")
        assert len(whole.json) == 3 and whole.stderr == ""
    jsonl = cli("contacts", "list", "-c", "Acme", "--limit", "1", "-o", "jsonl")
    assert len(jsonl.jsonl) == 1 and _stderr_lines(jsonl) == [
        "showing 1 of more than 1; use --limit N (0: no limit) to see more"
    ]


def test_campaign_list(cli):
    campaign_setup(cli)
    for text in ("one", "two", "three"):
        cli.json("campaign", "create", "-c", "Client A", "-s", "ACME", "--to", "+34620111222", "--text", text)
    newest = cli("campaign", "list", "--limit", "2", "-o", "json")
    assert [c["id"] for c in newest.json] == [3, 2]
    assert _stderr_lines(newest) == [NOTICE.format(n=2)]
    assert cli("campaign", "list", "-o", "json").stderr == ""
    assert cli("campaign", "list", "--limit", "3", "-o", "json").stderr == ""


def test_balance_history_keeps_the_last_movements(cli):
    money_setup(cli)
    for ref, day in (("P-1", "02"), ("P-2", "03"), ("P-3", "04")):
        cli.json("payment", "add", "--agreement", "AG-1", "--reference", ref, "--amount", "10", "--confirmed",
                 "--date", f"2026-02-{day}")  # fmt: skip
    every = cli.json("balance", "history", "AG-1")
    assert [r["balance"] for r in every] == ["10.00", "20.00", "30.00"]  # payments 1, 2, 3 in time order
    last = cli("balance", "history", "AG-1", "--limit", "2", "-o", "json")
    assert last.json == every[-2:]  # the last two, with their running balance
    assert _stderr_lines(last) == [NOTICE.format(n=2)]
    assert cli("balance", "history", "AG-1", "--limit", str(len(every)), "-o", "json").stderr == ""


def test_edr_export_task_list(cli, db_url):
    add_edrs(db_url, 2)
    for _ in range(3):
        _task(cli)
    run = cli("edr", "export-task", "list", "--limit", "2", "-o", "json")
    assert len(run.json) == 2 and _stderr_lines(run) == [NOTICE.format(n=2)]
    assert cli("edr", "export-task", "list", "-o", "json").stderr == ""
