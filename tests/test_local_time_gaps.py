"""One rule for local times in every command: a wall-clock time that a
daylight-saving change skips is refused (exit 4), naming the option and the gap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpaas_cli import clock
from cpaas_cli.timeutil import TimeError, parse_time
from tests.helpers import client, owner_le

GAP = "clocks skip from 2026-03-29 02:00 to 03:00"


def test_parse_time_refuses_a_skipped_local_time_and_names_the_gap():
    with pytest.raises(TimeError, match=GAP):
        parse_time("2026-03-29 02:30", "Europe/Madrid")
    with pytest.raises(TimeError, match="clocks skip from 2026-03-08 02:00 to 03:00"):
        parse_time("2026-03-08T02:15:30", "America/New_York")
    # a gap of a whole day (Samoa crossed the date line): the end names its date
    with pytest.raises(TimeError, match="from 2011-12-30 00:00 to 2011-12-31 00:00"):
        parse_time("2011-12-30 12:00", "Pacific/Apia")


def test_parse_time_keeps_the_times_that_exist():
    assert parse_time("2026-03-29 01:59", "Europe/Madrid") == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert parse_time("2026-03-29 03:00", "Europe/Madrid") == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # twice in the night the clocks go back: the first of the two
    assert parse_time("2026-10-25 02:30", "Europe/Madrid") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # an offset given with the time wins over the zone
    assert parse_time("2026-03-29T02:30+01:00", "Europe/Madrid") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # a bare date is the first instant of that local day, even when midnight is skipped
    assert parse_time("2026-09-06", "America/Santiago") == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)


@pytest.fixture
def world(cli):
    clock.set_clock(lambda: datetime(2026, 1, 15, tzinfo=UTC))
    owner_le(cli)
    client(cli, "Acme")
    yield cli
    clock.set_clock(None)


def test_agreement_create_refuses_a_skipped_time_like_campaign_schedule(world):
    run = world(
        "agreement",
        "create",
        "AC-1",
        "--company",
        "Acme",
        "--currency",
        "EUR",
        "--from",
        "2026-03-29 02:30",
        "--tz",
        "Europe/Madrid",
        expect=4,
    )
    assert run.stderr.startswith("error: --from: 2026-03-29 02:30 does not exist in Europe/Madrid")
    assert GAP in run.stderr and len(run.stderr.splitlines()) == 1
    assert world.json("agreement", "list") == []


def test_every_tz_option_follows_the_rule(world):
    world.json("agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR", "--from", "2026-01-01")
    commands = [
        ["agreement", "version", "add", "AC-1", "--from", "2026-03-29 02:30", "--tz", "Europe/Madrid"],
        ["agreement", "show", "AC-1", "--at", "2026-03-29 02:30", "--tz", "Europe/Madrid"],
        ["report", "summary", "--from", "2026-03-29 02:30", "--tz", "Europe/Madrid"],
        ["edr", "export", "--from", "2026-03-29 02:30", "--till", "2026-04-01", "--tz", "Europe/Madrid"],
    ]
    for args in commands:
        run = world(*args, expect=4)
        assert GAP in run.stderr, args
    assert len(world.json("agreement", "show", "AC-1")["versions"]) == 1
