"""Agreements and versions: AGR-01..10, AMB-12..14."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from tests.helpers import client, owner_le, reseller


@pytest.fixture
def world(cli):
    owner_le(cli)
    reseller(cli, "R1")
    client(cli, "Acme")
    client(cli, "Beta", parent="R1")
    return cli


@pytest.fixture
def pinned():
    clock.set_clock(lambda: datetime(2026, 6, 15, 12, 0, tzinfo=UTC))
    yield
    clock.set_clock(None)


def test_create_with_terms(world, pinned):
    cli = world
    ag = cli.json(
        "agreement",
        "create",
        "AC-1",
        "--company",
        "Acme",
        "--currency",
        "eur",
        "--from",
        "2026-01-01",
        "--tz",
        "Europe/Madrid",
        "--credit-limit",
        "250.75",
        "--billing-period",
        "weekly",
        "--billing-day",
        "1",
        "--split-by-month",
        "--days-for-payment",
        "15",
        "--email",
        "invoice=billing@acme.test,cfo@acme.test",
        "--email",
        "payment-alert=alerts@acme.test",
    )
    assert ag["effective_from"] == "2025-12-31T23:00:00Z"  # local midnight in Madrid
    assert ag["agreement_date"] == "2026-01-01"
    assert ag["seller"] == "System owner" and ag["own_legal_entity"] == "Hub SL" and ag["legal_entity"] == "Acme LE"
    v = ag["version"]
    assert v["credit_limit"] == "250.75" and v["unlimited_credit"] is False
    assert (v["billing_period"], v["billing_day"], v["split_by_month"]) == ("weekly", 1, True)
    assert v["billing_tz"] == "Europe/Madrid"  # follows the agreement zone when not given
    assert v["emails"] == {"invoice": ["billing@acme.test", "cfo@acme.test"], "payment_alert": ["alerts@acme.test"]}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--currency", "XYZ"], "currency"),
        (["--currency", "EUR", "--from", "yesterday-ish"], "--from"),
        (["--currency", "EUR", "--tz", "Europe/Atlantis"], "effective_from_tz"),
        (["--currency", "EUR", "--billing-period", "weekly", "--billing-day", "8"], "billing_day"),
        (["--currency", "EUR", "--billing-period", "monthly", "--billing-day", "0"], "billing_day"),
        (["--currency", "EUR", "--billing-period", "daily", "--billing-day", "3"], "billing_day"),
        (["--currency", "EUR", "--billing-period", "monthly", "--split-by-month"], "split_by_month"),
        (["--currency", "EUR", "--credit-limit", "-5"], "credit_limit"),
        (["--currency", "EUR", "--credit-limit", "1.0000001"], "credit_limit"),
        (["--currency", "EUR", "--days-for-payment", "-1"], "days_for_payment"),
        (["--currency", "EUR", "--email", "invoice=not-an-address"], "emails.invoice"),
        (["--currency", "EUR", "--email", "fax=a@b.co"], "emails"),
        (["--currency", "EUR", "--direction", "VENDOR"], "direction"),
        (["--currency", "EUR", "--from", "2026-02-01", "--till", "2026-01-01"], "effective_till"),
        (["--currency", "EUR", "--legal-entity", "Nope"], "legal_entity"),
        (["--currency", "EUR", "--bank-account", "Nope"], "bank_account"),
    ],
)
def test_bad_input_writes_nothing(world, args, field):
    run = world("agreement", "create", "BAD", "--company", "Acme", *args, expect=4)
    assert field in run.stderr
    assert world.json("agreement", "list") == []


def test_unknown_company_is_not_found(world):
    world("agreement", "create", "X", "--company", "Nobody", "--currency", "EUR", expect=3)


def test_owner_has_no_agreement(world):
    world("agreement", "create", "X", "--company", "System owner", "--currency", "EUR", expect=4)


def test_code_unique_per_seller(world):
    world.json("agreement", "create", "K-1", "--company", "Acme", "--currency", "EUR")
    run = world("agreement", "create", "K-1", "--company", "Acme", "--currency", "USD", expect=5)
    assert "already has an agreement" in run.stderr
    # Another seller (R1) may use the same code for its client.
    other = world.json("agreement", "create", "K-1", "--company", "Beta", "--currency", "USD")
    assert other["seller"] == "R1"
    world("agreement", "show", "K-1", expect=4)  # ambiguous without --seller
    assert world.json("agreement", "show", "K-1", "--seller", "R1")["company"] == "Beta"
    assert [a["company"] for a in world.json("agreement", "list", "--seller", "R1")] == ["Beta"]
    # An agreement per company, each a balance: several per company are fine.
    world.json("agreement", "create", "K-2", "--company", "Acme", "--currency", "USD")
    assert len(world.json("agreement", "list", "--company", "Acme")) == 2


def test_bank_accounts_belong_to_the_right_side(world):
    cli = world
    cli.json("tenant", "bank", "add", "B", "--country", "ES", "--address", "x")
    cli.json(
        "tenant",
        "bank-account",
        "add",
        "Client acc",
        "--company",
        "Acme",
        "--bank",
        "B",
        "--holder",
        "Acme",
        "--number",
        "1",
    )
    cli.json(
        "tenant", "bank-account", "add", "Hub acc", "--company", "1", "--bank", "B", "--holder", "Hub", "--number", "2"
    )
    ag = cli.json(
        "agreement",
        "create",
        "BA",
        "--company",
        "Acme",
        "--currency",
        "EUR",
        "--bank-account",
        "Client acc",
        "--own-bank-account",
        "Hub acc",
    )
    assert (ag["bank_account"], ag["own_bank_account"]) == ("Client acc", "Hub acc")
    # Swapped sides are refused (AMB-12).
    run = cli(
        "agreement",
        "create",
        "BA2",
        "--company",
        "Acme",
        "--currency",
        "EUR",
        "--bank-account",
        "Hub acc",
        "--own-bank-account",
        "Client acc",
        expect=4,
    )
    assert "bank_account" in run.stderr and "own_bank_account" in run.stderr


def test_versions_cut_overlap_and_show_at(world, pinned):
    cli = world
    cli.json(
        "agreement",
        "create",
        "V",
        "--company",
        "Acme",
        "--currency",
        "EUR",
        "--from",
        "2026-01-01",
        "--credit-limit",
        "100",
    )
    v2 = cli.json(
        "agreement", "version", "add", "V", "--from", "2026-09-01", "--credit-limit", "500", "--code", "autumn"
    )
    assert v2["previous_cut"]["effective_till"] == "2026-09-01T00:00:00Z"
    assert v2["credit_limit"] == "500.00" and v2["state"] == "upcoming"
    assert v2["billing_period"] == "monthly"  # copied from the version before
    # Overlapping a closed range is refused.
    run = cli("agreement", "version", "add", "V", "--from", "2026-08-01", "--till", "2026-10-01", expect=5)
    assert "overlaps" in run.stderr
    # Before the agreement starts is invalid.
    cli("agreement", "version", "add", "V", "--from", "2025-01-01", expect=4)
    summer = cli.json("agreement", "show", "V", "--at", "2026-07-01")
    autumn = cli.json("agreement", "show", "V", "--at", "2026-09-01T00:00:00Z")
    assert summer["version"]["credit_limit"] == "100.00"
    assert autumn["version"]["credit_limit"] == "500.00" and autumn["version"]["code"] == "autumn"
    listed = cli.json("agreement", "version", "list", "V")
    assert [v["state"] for v in listed] == ["current", "upcoming"]


def test_version_delete_rules(world, pinned):
    cli = world
    cli.json("agreement", "create", "D", "--company", "Acme", "--currency", "EUR", "--from", "2026-01-01")
    only = cli.json("agreement", "version", "list", "D")[0]
    run = cli("agreement", "version", "delete", "D", str(only["id"]), expect=5)
    assert "only version" in run.stderr
    future = cli.json("agreement", "version", "add", "D", "--from", "2026-12-01", "--credit-limit", "5")
    run = cli("agreement", "version", "delete", "D", str(only["id"]), expect=5)
    assert "has started" in run.stderr
    gone = cli.json("agreement", "version", "delete", "D", str(future["id"]))
    assert gone["deleted"] is True
    remaining = cli.json("agreement", "version", "list", "D")
    assert len(remaining) == 1 and remaining[0]["effective_till"] is None  # time given back
    cli("agreement", "version", "delete", "D", "9999", expect=3)


def test_a_future_only_version_cannot_be_deleted(world, pinned):
    world.json("agreement", "create", "F", "--company", "Acme", "--currency", "EUR", "--from", "2027-01-01")
    vid = world.json("agreement", "version", "list", "F")[0]["id"]
    world("agreement", "version", "delete", "F", str(vid), expect=5)


def test_close(world, pinned):
    cli = world
    cli.json("agreement", "create", "C", "--company", "Acme", "--currency", "EUR", "--from", "2026-01-01")
    closed = cli.json("agreement", "close", "C", "--at", "2026-06-30", "--yes")
    assert closed["effective_till"] == "2026-06-30T00:00:00Z"
    assert closed["versions"][0]["effective_till"] == "2026-06-30T00:00:00Z"
    assert closed["status"] == "closed"
    cli("agreement", "close", "C", "--yes", expect=5)
    assert cli.json("agreement", "list", "--at", "2026-07-01") == []
    assert len(cli.json("agreement", "list", "--at", "2026-03-01")) == 1


def test_update_and_immutable_after_charge(world, session, pinned):
    cli = world
    ag = cli.json("agreement", "create", "U", "--company", "Acme", "--currency", "EUR")
    changed = cli.json(
        "agreement", "update", "U", "--description", "renewed", "--currency", "USD", "--till", "2027-01-01"
    )
    assert (changed["description"], changed["currency"], changed["effective_till"]) == (
        "renewed",
        "USD",
        "2027-01-01T00:00:00Z",
    )
    assert changed["versions"][-1]["effective_till"] == "2027-01-01T00:00:00Z"
    assert not agreements.has_charges(session, ag["id"])
    cli.json("payment", "add", "--agreement", "U", "--reference", "P-1", "--amount", "1", "--confirmed")
    assert agreements.has_charges(session, ag["id"])
    run = cli("agreement", "update", "U", "--currency", "EUR", expect=5)
    assert "has charges" in run.stderr
    assert cli.json("agreement", "update", "U", "--description", "still editable")["currency"] == "USD"


def test_list_formats_include_current_terms(world):
    world.json("agreement", "create", "L", "--company", "Acme", "--currency", "EUR", "--credit-limit", "10")
    rows = world.json("agreement", "list")
    assert rows[0]["credit_limit"] == "10.00" and rows[0]["billing_period"] == "monthly"
    csv_text = world("agreement", "list", "-o", "csv").stdout
    assert csv_text.splitlines()[0].startswith("id,code,company,seller")
