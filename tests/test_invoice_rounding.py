"""Invoices through the CLI round once (SPEC AMB-25): back-to-first lines at the final
price, tax on the net, `[invoice] line_decimals`, every currency's minor unit, no 0.00
drafts without `--include-empty`, and the net − charges invariant on SQLite and
PostgreSQL (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.invoices import service as invoices
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.invoices import Invoice
from cpaas_cli.money import minor_units, round_minor
from tests.conftest import Cli
from tests.helpers import client, owner_le
from tests.test_money_cli import edr_file, row

CHG = Charge.__table__
INV = Invoice.__table__
FR, DE = "20801", "26201"


def setup(cli, tmp_path, steps, *agreement_args):
    owner_le(cli)
    c = client(cli)
    cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01",
             *agreement_args)  # fmt: skip
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    doc = {"service": "SMS service", "tree": {"sms": {"depends_on": "resource", "children": {"sms_message": {
        "depends_on": "direction", "billing_rule": "submitted", "quantity_rule": "messages", "children": {
            "mt": {"depends_on": "country", "children": {
                "others": {"scale": {"type": "back_to_first", "steps": steps}}}}}}}}}}  # fmt: skip
    (tmp_path / "tree.yaml").write_text(yaml.safe_dump(doc))
    cli("service", "tree", "apply", "SMS service", str(tmp_path / "tree.yaml"))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")


def ingest(cli, tmp_path, mccmncs):
    rows = [row(i, mccmnc=mm, segments=1) for i, mm in enumerate(mccmncs)]
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert got["rated"] == len(rows)


def usage(lines):
    return [(ln["kind"], ln["country"], ln["count"], ln["volume"], ln["unit_price"], ln["exact"], ln["net"])
            for ln in lines]  # fmt: skip


def test_back_to_first_11_messages_one_line_net_rounded_once(cli, tmp_path):
    """11 × 0.0111 back-to-first (0.0125 up to 10): one line 0.1221 (4 decimals), net
    0.12 — not 0.14 for the events and −0.01 for the scale adjustment (0.13)."""
    setup(cli, tmp_path, [[10, "0.0125"], [None, "0.0111"]])
    ingest(cli, tmp_path, [FR] * 11)
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    got = cli.json("invoice", "show", str(inv["id"]))
    assert usage(got["lines"]) == [("usage", "FR", 11, 11, "0.0111", "0.1221", "0.1221")]
    assert (got["charge_count"], got["charges_total"], got["net"], got["rounding"], got["total"]) == (
        12, "0.1221", "0.12", "-0.0021", "0.12"
    )  # fmt: skip
    assert got["line_decimals"] == 4
    # [invoice] line_decimals = 2: the line is allocated the net.
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[invoice]\nline_decimals = 2\n")
    again = cli.json("--config", str(cfg), "invoice", "recalculate", str(inv["id"]))
    assert usage(again["lines"]) == [("usage", "FR", 11, 11, "0.0111", "0.1221", "0.12")]
    assert (again["net"], again["line_decimals"], again["lines"][0]["rounding"]) == ("0.12", 2, "-0.0021")
    # The next run without the setting rebuilds the draft with the default; then nothing changes.
    (rerun,) = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    assert (rerun["action"], rerun["line_decimals"], rerun["net"]) == ("recalculated", 4, "0.12")
    assert cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") == []


def test_the_serve_job_uses_the_configured_line_decimals(cli, tmp_path, monkeypatch):
    owner_le(cli)
    c = client(cli)
    cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01")
    cli.json("fee", "add", "--agreement", "AG-1", "--amount", "0.005", "--at", "2026-01-10T00:00:00Z")
    cfg = tmp_path / "job.toml"
    cfg.write_text("[invoice]\nline_decimals = 2\n")
    monkeypatch.setenv("CPAAS_CONFIG", str(cfg))
    assert invoices.run_job(get_engine(cli.url))["created"] == 1
    (inv,) = cli.json("invoice", "list")
    got = cli.json("invoice", "show", str(inv["id"]))
    assert (got["line_decimals"], got["net"], [ln["net"] for ln in got["lines"]]) == (2, "0.01", ["0.01"])


def test_back_to_first_final_price_for_the_whole_volume_per_destination(cli, tmp_path):
    """25 messages at 0.06 up to 10, then 0.05 for all: FR 17 × 0.05 and DE 8 × 0.05 = 1.25."""
    setup(cli, tmp_path, [[10, "0.06"], [None, "0.05"]], "--tax-rate", "20")
    ingest(cli, tmp_path, [DE if i % 3 == 2 else FR for i in range(25)])
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    got = cli.json("invoice", "show", str(inv["id"]))
    assert sorted(usage(got["lines"])) == [
        ("usage", "DE", 8, 8, "0.05", "0.40", "0.40"),
        ("usage", "FR", 17, 17, "0.05", "0.85", "0.85"),
    ]
    assert (got["net"], got["tax"], got["total"]) == ("1.25", "0.25", "1.50")


def test_tax_is_computed_on_the_net(cli, tmp_path):
    """Net 25.50 at 21 %: 5.36 (5.355 half-up), where a tax per line gave 5.33."""
    owner_le(cli)
    c = client(cli)
    cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01",
             "--tax-rate", "21")  # fmt: skip
    for a in ("1.02", "1.07", "1.21", "1.40", "2.40", "18.40"):
        cli.json("fee", "add", "--agreement", "AG-1", "--amount", a, "--at", "2026-01-10T00:00:00Z", "--description", a)
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z")
    assert (inv["net"], inv["tax"], inv["total"], inv["rounding"]) == ("25.50", "5.36", "30.86", "0.00")
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[invoice]\nline_decimals = 2\n")
    got = cli.json("--config", str(cfg), "invoice", "confirm", str(inv["id"]), "--at", "2026-02-01T08:00:00Z")
    assert (got["reference"], got["net"], got["tax"], got["total"]) == ("INV-1", "25.50", "5.36", "30.86")
    taxes = [Fraction(ln["tax"]) for ln in got["lines"]]
    assert sum(taxes) == Fraction("5.36") and sum(Fraction(ln["net"]) for ln in got["lines"]) == Fraction("25.50")


def test_line_decimals_setting_is_validated(cli, tmp_path):
    owner_le(cli)
    for bad in ("7", "-1", '"2"', "2.5", "true"):
        cfg = tmp_path / "cpaas.toml"
        cfg.write_text(f"[invoice]\nline_decimals = {bad}\n")
        run = cli("--config", str(cfg), "invoice", "run", "--as-of", "2026-02-01T00:00:00Z", expect=4)
        assert run.stdout == "" and run.stderr.count("\n") == 1
        assert run.stderr.startswith("error: ") and "line_decimals must be a whole number from 0 to 6" in run.stderr


def currency_agreement(cli, code, currency, tax_rate, fees):
    cli.json("agreement", "create", code, "--company", client(cli, f"Client {code}")["name"], "--currency", currency,
             "--from", "2026-01-01", "--tax-rate", tax_rate)  # fmt: skip
    for i, a in enumerate(fees):
        cli.json("fee", "add", "--agreement", code, "--amount", a, "--at", "2026-01-10T00:00:00Z", "--description",
                 f"f{i}")  # fmt: skip
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z", "--agreement", code)
    return cli.json("invoice", "show", str(inv["id"]))


def test_each_currencys_minor_unit(cli):
    """JPY has no decimals, EUR two, BHD and KWD three: the net and tax round to those, once."""
    owner_le(cli)
    cases = [
        ("JPY", "10", ["0.4", "0.4", "0.7"], ("1.50", "2", "0", "2"), ["0.4", "0.4", "0.7"]),
        ("EUR", "10", ["0.004", "0.004", "0.007"], ("0.015", "0.02", "0.00", "0.02"), ["0.004", "0.004", "0.007"]),
        ("BHD", "10", ["1.2345", "2.0001"], ("3.2346", "3.235", "0.324", "3.559"), ["1.2345", "2.0001"]),
        ("KWD", "5", ["0.00051", "0.00049"], ("0.001", "0.001", "0.000", "0.001"), ["0.0005", "0.0005"]),
    ]
    for i, (cur, rate, fees, totals, line_nets) in enumerate(cases):
        got = currency_agreement(cli, f"AG-{i}", cur, rate, fees)
        assert (got["charges_total"], got["net"], got["tax"], got["total"]) == totals, cur
        assert [ln["net"] for ln in got["lines"]] == line_nets, cur


def test_no_drafts_for_periods_without_charges(cli):
    """Only periods with charges get a draft; --include-empty makes the 0.00 ones; late
    charges of a confirmed period still reach the latest period's invoice when it has none."""
    owner_le(cli)
    c = client(cli)
    cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01")
    for at in ("2026-01-05T00:00:00Z", "2026-03-05T00:00:00Z"):
        cli.json("fee", "add", "--agreement", "AG-1", "--amount", "10", "--at", at)
    run = cli("invoice", "run", "--as-of", "2026-04-01T00:00:00Z", "-o", "json")
    assert run.exit_code == 0
    assert [(i["local_start_date"], i["net"]) for i in run.json] == [("2026-01-01", "10.00"), ("2026-03-01", "10.00")]
    assert cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") == []
    assert [i["local_start_date"] for i in cli.json("invoice", "list")] == ["2026-01-01", "2026-03-01"]
    empty = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z", "--include-empty")
    assert [(i["local_start_date"], i["net"], i["charge_count"], i["action"]) for i in empty] == [
        ("2026-02-01", "0.00", 0, "created")
    ]
    march = cli.json("invoice", "list")[-1]
    cli.json("invoice", "confirm", str(march["id"]), "--at", "2026-04-02T00:00:00Z")
    cli.json("fee", "add", "--agreement", "AG-1", "--amount", "2.5", "--at", "2026-03-20T00:00:00Z")
    (april,) = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z")
    lines = cli.json("invoice", "show", str(april["id"]))["lines"]
    assert (april["local_start_date"], april["net"]) == ("2026-04-01", "2.50")
    assert [(ln["correction"], ln["net"]) for ln in lines] == [(True, "2.50")]
    assert cli.json("invoice", "run", "--as-of", "2026-06-01T00:00:00Z") == []


CURRENCIES = {"AG-E": ("EUR", "0"), "AG-J": ("JPY", "10"), "AG-B": ("BHD", "19.6")}


@pytest.fixture
def agreement_ids(db_url):
    """Three agreements (EUR, JPY, BHD) without charges: their ids and currencies."""
    cli = Cli(db_url)
    owner_le(cli)
    out = {}
    for code, (cur, rate) in CURRENCIES.items():
        c = client(cli, f"Client {code}")
        ag = cli.json("agreement", "create", code, "--company", c["name"], "--currency", cur, "--from", "2026-01-01",
                      "--tax-rate", rate)  # fmt: skip
        out[ag["id"]] = cur
    return db_url, out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    decimals=st.integers(0, 6),
    charges=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 58),
            st.integers(-2_000, 60_000),
            st.sampled_from(["edr", "scale_adjustment", "rerate", "fee"]),
        ),
        min_size=1,
        max_size=40,
    ),  # fmt: skip
)
def test_invariant_net_minus_charges_below_one_minor_unit(agreement_ids, decimals, charges):
    """Any set of sub-cent charges in three currencies: each invoice's net differs from
    the Σ charges of its period by less than one minor unit (it is that sum rounded once)."""
    url, currencies = agreement_ids
    ids = sorted(currencies)
    s = make_session(get_engine(url), actor="pytest", command="test")
    try:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [{"agreement_id": ids[k], "kind": kind, "amount": amount, "currency": currencies[ids[k]],
                 "at": t0 + timedelta(days=day, seconds=i), "details": {}, "created_at": t0}
                for i, (k, day, amount, kind) in enumerate(charges)]  # fmt: skip
        s.execute(sa.insert(CHG), rows)
        invoices.run(s, as_of=datetime(2026, 3, 1, tzinfo=UTC), line_decimals=decimals)
        seen = set()
        for inv in s.execute(sa.select(INV)).mappings():
            in_period = s.execute(
                sa.select(sa.func.coalesce(sa.func.sum(CHG.c.amount), 0)).where(
                    CHG.c.agreement_id == inv["agreement_id"],
                    CHG.c.at >= inv["period_start"],
                    CHG.c.at < inv["period_end"],
                )
            ).scalar()
            unit = 10 ** (6 - minor_units(inv["currency"]))
            assert inv["charges_total"] == in_period and abs(inv["net"] - in_period) < unit
            assert inv["net"] == round_minor(in_period, inv["currency"]) and inv["net"] % unit == 0
            assert inv["total"] == inv["net"] + inv["tax"] and inv["line_decimals"] == decimals
            seen.add((inv["agreement_id"], inv["period_start"].month))
        # one invoice per agreement and month with charges, none for the others
        assert seen == {(ids[k], (t0 + timedelta(days=day)).month) for k, day, _a, _k in charges}
    finally:
        s.rollback()
        s.close()
