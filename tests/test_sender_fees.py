"""Sender ID fees (SID-09/10, FEE-03): setup fee once, periodic usage fee priced from the tree, retries,
disable ends the rule, and the charges are invoice lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpaas_cli import clock
from tests.helpers import client, owner_le
from tests.test_catalog import EXAMPLE1

NOW = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def pinned_clock():
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


def setup(cli, *, funds: bool = True, till: str | None = None) -> None:
    owner_le(cli)
    client(cli)
    cli.json("agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01",
             "--credit-limit", "0")  # fmt: skip
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli("service", "tree", "apply", "SMS service", str(EXAMPLE1))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01",
             *(["--till", till] if till else []))  # fmt: skip
    cli.json("sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active")
    if funds:
        cli.json("payment", "add", "--agreement", "AG-1", "--reference", "P1", "--amount", "1000", "--confirmed",
                 "--date", "2026-01-01")  # fmt: skip


def balance(cli) -> str:
    return cli.json("balance", "show", "AG-1")["balance"]


def test_setup_fee_once_priced_from_the_tree(cli):
    setup(cli)
    # The tree prices the setup fee for MNO 21401 only: anything else is refused, nothing written.
    bad = cli("sender", "setup-fee", "ACME", expect=4)
    assert "rate not found" in bad.stderr and "configure the service first" in bad.stderr
    cli("sender", "setup-fee", "ACME", "--mno", "21422", expect=4)
    assert cli.json("sender", "fee-rule", "list", "ACME") == []
    got = cli.json("sender", "setup-fee", "ACME", "--mno", "21401")
    assert (got["created"], got["charged_now"], got["status"]) == (True, 1, "charged")
    assert got["attempts"][0]["amount"] == "50.00" and got["rule"]["amount"] is None
    again = cli.json("sender", "setup-fee", "ACME", "--mno", "21401")
    assert (again["created"], again["charged_now"], again["status"]) == (False, 0, "charged")
    assert cli.json("fee-rules", "run", "--as-of", "2026-12-31T00:00:00Z") == []
    assert balance(cli) == "950.00"
    (rule,) = cli.json("sender", "fee-rule", "list", "ACME")
    assert (rule["kind"], rule["priced_by"], rule["mno"]) == ("setup", "sender_id_setup_fee", "21401")


def test_monthly_usage_fee_days_before_idempotent_and_invoiced(cli):
    setup(cli)
    # The amount is never typed: --amount does not exist here.
    cli("sender", "fee-rule", "add", "ACME", "--amount", "5", expect=2)
    rule = cli.json("sender", "fee-rule", "add", "ACME", "--every", "month", "--start-day", "1", "--days-before",
                    "3", "--mno", "21422", "--from", "2026-02-01", "--retry-hours", "2", "--max-retries", "1")  # fmt: skip
    assert (rule["subject_kind"], rule["subject_ref"], rule["priced_by"]) == ("sender_id", "1", "sender_id_usage_fee")
    got = cli.json("fee-rules", "run", "--as-of", "2026-02-25T23:59:59Z")
    assert [(a["period_start"], a["at"], a["amount"], a["status"]) for a in got] == [
        ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "15.00", "charged")
    ]
    # March is charged 3 days before it starts, at the tree's price for MNO 21422.
    got = cli.json("fee-rules", "run", "--as-of", "2026-02-26T00:00:00Z")
    assert [(a["period_start"], a["at"], a["amount"]) for a in got] == [
        ("2026-03-01T00:00:00Z", "2026-02-26T00:00:00Z", "15.00")
    ]
    assert cli.json("fee-rules", "run", "--as-of", "2026-02-26T00:00:00Z") == []
    assert cli.json("fee-rules", "run", "--as-of", "2026-02-27T00:00:00Z") == []
    assert balance(cli) == "970.00"
    cli.json("sender", "setup-fee", "ACME", "--mno", "21401")
    # The charges are lines of the February invoice, named after the sender ID and period.
    invs = cli.json("invoice", "run", "--as-of", "2026-03-01T00:00:00Z")
    feb = next(i for i in invs if i["period_start"].startswith("2026-02"))
    lines = cli.json("invoice", "show", str(feb["id"]))["lines"]
    assert sorted((ln["description"], ln["net"]) for ln in lines) == [
        ("Sender ID ACME setup fee", "50.00"),
        ("Sender ID ACME usage fee 2026-02", "15.00"),
        ("Sender ID ACME usage fee 2026-03", "15.00"),
    ]


def test_insufficient_funds_retries_then_fails(cli):
    setup(cli, funds=False)
    cli.json("sender", "fee-rule", "add", "ACME", "--every", "week", "--start-day", "1", "--mno", "21401",
             "--from", "2026-02-10", "--retry-hours", "6", "--max-retries", "2")  # fmt: skip
    seen = []
    for at in ("2026-02-16T00:00:00Z", "2026-02-16T05:59:59Z", "2026-02-16T06:00:00Z", "2026-02-16T12:00:00Z"):
        seen += [(a["period_start"], a["attempt"], a["status"], a["next_attempt_at"])
                 for a in cli.json("fee-rules", "run", "--as-of", at)]  # fmt: skip
    assert seen == [
        ("2026-02-16T00:00:00Z", 1, "retrying", "2026-02-16T06:00:00Z"),
        ("2026-02-16T00:00:00Z", 2, "retrying", "2026-02-16T12:00:00Z"),
        ("2026-02-16T00:00:00Z", 3, "failed", None),
    ]
    (run,) = cli.json("fee-rules", "runs")
    assert (run["status"], run["attempts"], run["charge_id"]) == ("failed", 3, None)
    assert "insufficient credit" in run["last_error"]
    assert balance(cli) == "0.00"


def test_no_rate_at_charge_time_is_retried_with_the_reason(cli):
    setup(cli, till="2026-03-01")
    # No rate for 21499 (no others row): refused at creation.
    bad = cli("sender", "fee-rule", "add", "ACME", "--mno", "21499", "--from", "2026-02-01", expect=4)
    assert "configure the service first" in bad.stderr
    cli.json("sender", "fee-rule", "add", "ACME", "--mno", "21401", "--from", "2026-02-01", "--max-retries", "1")
    got = cli.json("fee-rules", "run", "--as-of", "2026-03-01T00:00:00Z")
    assert [(a["period_start"], a["status"], a["amount"]) for a in got] == [
        ("2026-02-01T00:00:00Z", "charged", "10.00"),
        ("2026-03-01T00:00:00Z", "retrying", None),  # the service is no longer enabled
    ]
    assert "rate not found for sender_id_usage_fee" in got[1]["error"]
    (a,) = cli.json("fee-rules", "run", "--as-of", "2026-03-01T01:00:00Z")
    assert a["status"] == "failed"


def test_disable_ends_the_usage_rules(cli):
    setup(cli)
    rule = cli.json("sender", "fee-rule", "add", "ACME", "--every", "week", "--start-day", "1", "--mno", "21401",
                    "--from", "2026-02-01")  # fmt: skip
    cli.json("sender", "setup-fee", "ACME", "--mno", "21401")
    cli.json("sender", "disable", "ACME")
    rules = {r["kind"]: r for r in cli.json("sender", "fee-rule", "list", "ACME")}
    assert rules["usage"]["id"] == rule["id"] and rules["usage"]["effective_till"] == "2026-02-10T10:00:00Z"
    assert rules["setup"]["effective_till"] is None
    got = cli.json("fee-rules", "run", "--as-of", "2026-06-01T00:00:00Z")
    assert [a["period_start"] for a in got] == ["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]
    bad = cli("sender", "fee-rule", "add", "ACME", "--mno", "21401", expect=4)
    assert "disabled" in bad.stderr
