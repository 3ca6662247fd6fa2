"""Input limits (issue 23, denial of service): business dates in a sane range,
bounded template rendering, bounded echoes of values in error lines, and
workbooks refused before the XLSX reader can be made to crash or to eat memory."""

from __future__ import annotations

import pytest

from cpaas_cli.campaigns.service import resolve_local
from cpaas_cli.errors import InvalidInput
from tests.helpers import client, owner_le

# ---------------------------------------------------------------- business dates


@pytest.fixture
def acme(cli):
    owner_le(cli)
    client(cli, "Acme")
    return cli


def test_year_typo_in_agreement_start_is_refused(acme):
    run = acme(
        "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR",
        "--from", "0026-01-01", "--billing-period", "daily", expect=4,
    )  # fmt: skip
    assert run.stderr.startswith("error: --from: 0026-01-01 is before 2000-01-01")
    assert len(run.stderr.strip().splitlines()) == 1
    assert acme.json("agreement", "list") == []


@pytest.mark.parametrize(
    ("args", "option", "bound"),
    [
        (["invoice", "run", "--as-of", "2101-01-01"], "--as-of", "2100-12-31"),
        (["invoice", "run", "--as-of", "1999-12-31T23:00:00Z"], "--as-of", "2000-01-01"),
        (["edr", "export", "--from", "0202-05-01", "--till", "2026-01-01", "--out", "x.csv"], "--from", "2000-01-01"),
        (["audit", "list", "--since", "9999-01-01"], "--since", "2100-12-31"),
    ],
)
def test_dates_outside_the_range_name_option_and_bound(cli, args, option, bound, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = cli(*args, expect=4)
    assert run.stderr.startswith(f"error: {option}: ") and bound in run.stderr, run.stderr


def test_agreement_date_is_bounded(acme):
    run = acme(
        "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR", "--date", "3026-01-01", expect=4
    )
    assert "--date: 3026-01-01 is after 2100-12-31" in run.stderr


def test_campaign_schedule_time_is_bounded():
    with pytest.raises(InvalidInput, match=r"at: 0026-03-01 is before 2000-01-01"):
        resolve_local("0026-03-01 10:00", "Europe/Madrid")
    assert resolve_local("2026-03-01 10:00", "UTC").year == 2026


def test_range_is_configurable(acme, tmp_path):
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text('[limits]\nmin_date = 1990-01-01\nmax_date = "2200-12-31"\n')
    ag = acme.json(
        "--config", str(cfg), "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR",
        "--from", "1995-01-01",
    )  # fmt: skip
    assert ag["effective_from"] == "1995-01-01T00:00:00Z"
    run = acme("--config", str(cfg), "invoice", "run", "--as-of", "1989-12-31", expect=4)
    assert "before 1990-01-01" in run.stderr
    cfg.write_text('[limits]\nmin_date = "soon"\n')
    run = acme("--config", str(cfg), "invoice", "run", "--as-of", "2026-01-01", expect=4)
    assert "[limits] min_date must be a date" in run.stderr
