"""Times typed in a zone are shown back in that zone beside UTC: agreement effective dates,
the rerate window (`rerate create --tz`); an invoice of a period that has not closed is
confirmed only as an explicit ad-hoc issue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpaas_cli import clock
from tests.test_invoices import agreement, fee, invariant


@pytest.fixture
def pinned():
    clock.set_clock(lambda: datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    yield
    clock.set_clock(None)


def test_agreement_dates_in_the_agreements_zone(cli, pinned):
    run = cli(
        "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR",
        "--from", "2026-01-01", "--till", "2026-07-01", "--tz", "Europe/Madrid", "-o", "json", expect=None,
    )  # fmt: skip
    assert run.exit_code == 3  # no such company yet: nothing shown
    a = agreement(cli, "AG-2", "--till", "2026-07-01", "--tz", "Europe/Madrid")
    assert (a["effective_from"], a["effective_from_local"], a["effective_from_tz"]) == (
        "2025-12-31T23:00:00Z",
        "2026-01-01T00:00:00+01:00",
        "Europe/Madrid",
    )
    assert (a["effective_till"], a["effective_till_local"]) == ("2026-06-30T22:00:00Z", "2026-07-01T00:00:00+02:00")
    (v,) = a["versions"]
    assert (v["effective_from_local"], v["effective_till_local"]) == (
        "2026-01-01T00:00:00+01:00",
        "2026-07-01T00:00:00+02:00",
    )
    v2 = cli(
        "agreement", "version", "add", "AG-2", "--from", "2026-04-01", "--tz", "Europe/Madrid", "-o", "json"
    )  # fmt: skip
    assert v2.json["effective_from_local"] == "2026-04-01T00:00:00+02:00"
    assert v2.json["previous_cut"] == {
        "id": v["id"],
        "effective_till": "2026-03-31T22:00:00Z",
        "effective_till_local": "2026-04-01T00:00:00+02:00",
    }
    assert "2026-04-01T00:00:00+02:00 Europe/Madrid (2026-03-31T22:00:00Z)" in v2.stderr
    shown = cli.json("agreement", "show", "AG-2")
    assert shown["effective_till_local"] == "2026-07-01T00:00:00+02:00"


def test_rerate_create_reads_and_shows_the_window_in_tz(cli, pinned):
    agreement(cli)
    run = cli(
        "rerate", "create", "--from", "2026-03-01", "--till", "2026-03-02", "--tz", "Europe/Madrid",
        "--company", "Client A", "--draft", "-o", "json",
    )  # fmt: skip
    d = run.json
    assert (d["from"], d["till"], d["tz"]) == ("2026-02-28T23:00:00Z", "2026-03-01T23:00:00Z", "Europe/Madrid")
    assert (d["from_local"], d["till_local"]) == ("2026-03-01T00:00:00+01:00", "2026-03-02T00:00:00+01:00")
    assert "widened to whole billing periods" in run.stderr
    utc = cli.json(
        "rerate", "create", "--from", "2026-03-01", "--till", "2026-03-02", "--company", "Client A", "--draft"
    )
    assert (utc["from"], utc["tz"]) == ("2026-03-01T00:00:00Z", "UTC")
    bad = cli("rerate", "create", "--from", "2026-03-01", "--till", "2026-03-02", "--tz", "Mars/Olympus",
              "--company", "Client A", expect=4)  # fmt: skip
    assert "--tz" in bad.stderr
    help_text = cli("rerate", "create", "--help").stdout
    assert "whole" in help_text and "billing" in help_text and "--tz" in help_text


def test_confirm_of_a_running_period_needs_ad_hoc(cli, pinned):
    agreement(cli)
    fee(cli, "2026-03-05T00:00:00Z", "10")
    # a draft of March made ahead of time (March has not closed: now is 15 March)
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    assert inv["local_start_date"] == "2026-03-01"
    run = cli("invoice", "confirm", str(inv["id"]), "-o", "json", expect=5)
    assert "has not closed" in run.stderr and "--ad-hoc" in run.stderr and run.stdout == ""
    # an issue time after the period's end does not make it closed while now is inside it
    cli("invoice", "confirm", str(inv["id"]), "--at", "2026-04-02", expect=5)
    assert cli.json("invoice", "show", str(inv["id"]))["status"] == "draft"
    run = cli("invoice", "confirm", str(inv["id"]), "--ad-hoc", "-o", "json")
    assert (run.json["status"], run.json["reference"], run.json["issue_date"]) == ("confirmed", "INV-1", "2026-03-15")
    assert "(ad hoc)" in run.stderr
    # a charge of March that comes later goes to the next invoice, never into the confirmed one
    fee(cli, "2026-03-20T00:00:00Z", "5")
    clock.set_clock(lambda: datetime(2026, 5, 2, tzinfo=UTC))
    later = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z")
    assert [i["net"] for i in later] == ["5.00"]
    assert cli.json("invoice", "show", "INV-1")["net"] == "10.00"
    (april,) = later
    cli.json("invoice", "confirm", str(april["id"]), "--at", "2026-05-02", "--tz", "Europe/Madrid")
    invariant(cli.url)
