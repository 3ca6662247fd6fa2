"""No dead ends for a campaign: cancel asks --yes, reschedule/unschedule, retry after a payment,
schedule confirmations in the campaign's zone, templates in use cannot be deleted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpaas_cli import clock
from tests.test_campaigns import ES1, FR1, create, queue, setup, state

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def pinned_clock():
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


def test_cancel_needs_yes_off_a_terminal(cli):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    cli.json("campaign", "schedule", str(c), "--at", "2026-06-02 09:00", "--tz", "Europe/Madrid")
    run = cli("campaign", "cancel", str(c), "-o", "json", expect=2)
    assert "--yes" in run.stderr and run.stdout == ""
    assert state(cli, c) == "scheduled"
    assert cli.json("campaign", "cancel", str(c), "--yes")["state"] == "canceled"
    # a state that does not allow it is still a conflict (5), before any question
    d = create(cli, "--to", ES1, "--text", "y")["id"]
    assert "is draft" in cli("campaign", "cancel", str(d), expect=5).stderr


def test_schedule_is_shown_in_the_campaigns_zone(cli):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    run = cli("campaign", "schedule", str(c), "--at", "2026-12-01 09:00", "--tz", "Europe/Madrid", "-o", "json")
    d = run.json
    assert (d["scheduled_at"], d["scheduled_at_local"], d["schedule_tz"]) == (
        "2026-12-01T08:00:00Z",
        "2026-12-01T09:00:00+01:00",
        "Europe/Madrid",
    )
    assert "2026-12-01T09:00:00+01:00 Europe/Madrid" in run.stderr and "2026-12-01T08:00:00Z UTC" in run.stderr
    shown = cli.json("campaign", "show", str(c))
    assert shown["scheduled_at_local"] == "2026-12-01T09:00:00+01:00"
    draft = create(cli, "--to", ES1, "--text", "y")
    assert (draft["scheduled_at"], draft["scheduled_at_local"]) == (None, None)


def test_reschedule_and_unschedule(cli):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    # only a scheduled campaign
    assert "is draft" in cli("campaign", "reschedule", str(c), "--at", "2026-06-05 10:00", expect=5).stderr
    assert "is draft" in cli("campaign", "unschedule", str(c), expect=5).stderr
    cli.json("campaign", "schedule", str(c), "--at", "2026-06-02 09:00", "--tz", "Europe/Madrid")
    # the zone defaults to the one it was scheduled in (summer: +02:00)
    r = cli.json("campaign", "reschedule", str(c), "--at", "2026-06-05 10:00")
    assert (r["state"], r["scheduled_at"], r["scheduled_at_local"], r["schedule_tz"]) == (
        "scheduled",
        "2026-06-05T08:00:00Z",
        "2026-06-05T10:00:00+02:00",
        "Europe/Madrid",
    )
    r = cli.json("campaign", "reschedule", str(c), "--at", "2026-06-05 10:00", "--tz", "America/New_York")
    assert (r["scheduled_at"], r["schedule_tz"]) == ("2026-06-05T14:00:00Z", "America/New_York")
    run = cli("campaign", "reschedule", str(c), "--at", "2026-05-01 10:00", expect=4)
    assert "in the past" in run.stderr
    cli("campaign", "reschedule", str(c), "--at", "2026-07-01 10:00", "--tz", "Mars/Olympus", expect=4)
    assert cli.json("campaign", "show", str(c))["scheduled_at"] == "2026-06-05T14:00:00Z"
    u = cli.json("campaign", "unschedule", str(c))
    assert (u["state"], u["scheduled_at"], u["schedule_tz"]) == ("draft", None, None)
    assert cli.json("campaign", "send", str(c))["state"] == "in_progress"


def test_retry_after_a_payment(cli, db_url):
    setup(cli, credit="0.10")
    c = create(cli, "--to", ES1, "--to", FR1, "--text", "x")["id"]  # 0.08 + 0.05
    cli("campaign", "send", str(c), expect=7)
    assert state(cli, c) == "failed"
    # still short: stays failed, exit 7, nothing queued
    run = cli("campaign", "retry", str(c), "-o", "json", expect=7)
    assert "insufficient credit" in run.stderr and run.json["state"] == "failed"
    assert queue(db_url, c) == []
    cli.json("payment", "add", "--agreement", "AG-1", "--reference", "P-1", "--amount", "1", "--confirmed")
    r = cli.json("campaign", "retry", str(c))
    assert (r["state"], r["messages"], r["failure_reason"], r["finished_at"]) == ("in_progress", 2, None, None)
    assert [m["phone"] for m in queue(db_url, c)] == [ES1, FR1]
    # only a failed campaign, and only one that failed for credit
    assert "is in_progress" in cli("campaign", "retry", str(c), expect=5).stderr
    m = create(cli, "--to", ES1, "--text", "y")["id"]
    cli.json("tenant", "update", "Client A", "--moderation")
    cli.json("campaign", "send", str(m))
    cli.json("campaign", "reject", str(m), "--reason", "spam")
    run = cli("campaign", "retry", str(m), expect=5)
    assert "only a campaign that failed for insufficient credit" in run.stderr


def test_a_template_in_use_cannot_be_deleted(cli):
    setup(cli)
    add = ["campaign", "template", "add", "Promo", "--company", "Client A", "--sender", "ACME", "--text", "Hi"]
    cli.json(*add)
    c = create(cli, "--to", ES1, "--template", "Promo", "--name", "June promo")["id"]
    cli.json("campaign", "schedule", str(c), "--at", "2026-06-02 09:00", "--tz", "Europe/Madrid")
    run = cli("campaign", "template", "delete", "Promo", "--yes", expect=5)
    assert f"#{c} 'June promo' (scheduled)" in run.stderr and run.stdout == ""
    assert cli.json("campaign", "template", "show", "Promo")["name"] == "Promo"
    cli.json("campaign", "unschedule", str(c))
    cli.json("campaign", "send", str(c))
    assert "(in_progress)" in cli("campaign", "template", "delete", "Promo", "--yes", expect=5).stderr
    cli.json("campaign", "pause", str(c))
    assert "(paused)" in cli("campaign", "template", "delete", "Promo", "--yes", expect=5).stderr
    cli.json("campaign", "cancel", str(c), "--yes")
    cli("campaign", "template", "delete", "Promo", "--yes")
    cli("campaign", "template", "show", "Promo", expect=3)
    # the finished campaign kept its own copy of the text
    assert cli.json("campaign", "show", str(c))["text"] == "Hi"
