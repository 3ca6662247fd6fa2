"""Packs through the CLI: the purchase charge (ENS-06, written off once on the
pack's start), billing required on enable, monetary pack prices, the pack
associated first used first (ENS-05), and EDR explanations in money."""

from __future__ import annotations

import threading

import sqlalchemy as sa
import yaml

from cpaas_cli.billing import packs
from cpaas_cli.db.engine import get_engine, make_session
from tests.test_money_cli import edr_file, row
from tests.test_money_cli import setup as money_setup

PRICES = {
    "tree": {
        "service_purchase": {
            "children": {
                "unit_pack": {
                    "depends_on": "pack",
                    "children": {"Spain 10": {"price": "30"}, "Spain 20": {"price": "50"}},
                },
                "monetary_pack": {"depends_on": "pack", "children": {"Money 5": {"price": "4.50"}}},
            }
        }
    }
}
SPAIN_ONLY = {
    "tree": {
        "sms": {
            "children": {
                "sms_message": {
                    "depends_on": "country",
                    "children": {"ES": {"price_type": "included"}, "others": {"price_type": "not_included"}},
                }
            }
        }
    }
}


def apply(cli, tmp_path, service: str, doc: dict, expect: int = 0):
    path = tmp_path / f"{service.replace(' ', '_')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return cli("service", "tree", "apply", service, str(path), expect=expect)


def world(cli, tmp_path):
    """AG-1 (EUR) with the SMS service of example 1, a price service for the packs,
    two unit packs (10 and 20 messages) and a 5 EUR monetary pack, all Spain only."""
    money_setup(cli)
    cli.json("service", "create", "Pack prices", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "Pack prices", "--from", "2026-01-01")
    apply(cli, tmp_path, "Pack prices", PRICES)
    cli.json("agreement", "enable", "Pack prices", "--agreement", "AG-1", "--from", "2026-01-01")
    for name, kind, size in (("Spain 10", "unit-pack", "10"), ("Spain 20", "unit-pack", "20")):
        cli.json("service", "create", name, "--type", kind, "--size", size)
    cli.json("service", "create", "Money 5", "--type", "monetary-pack", "--size", "5", "--currency", "EUR")
    for name in ("Spain 10", "Spain 20", "Money 5"):
        cli.json("service", "scope", "add", name, "--from", "2026-01-01")
        apply(cli, tmp_path, name, SPAIN_ONLY)


def at(when: str) -> dict:
    return {"CPAAS_NOW": when}


def purchases(url: str) -> list[tuple]:
    with get_engine(url).connect() as c:
        q = "SELECT enabled_service_id, amount, at FROM charge WHERE kind = 'pack_purchase' ORDER BY id"
        return [tuple(r) for r in c.execute(sa.text(q))]


# ------------------------------------------------------------------ item 13


def test_a_charged_pack_that_started_is_written_off_at_enable_once(cli, tmp_path):
    """Enabled on 1 Mar with a start on 1 Feb: the 30.00 is on the balance at
    once, dated 1 Feb, though no EDR was ever rated; rating, invoicing and the
    job afterwards charge nothing more."""
    world(cli, tmp_path)
    now = at("2026-03-01T12:00:00+00:00")
    en = cli.json("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-02-01", "--charge", env=now)
    assert (en["billing"], en["cost"], en["status"]) == ("charge", "30.00", "active")
    bal = cli.json("balance", "show", "AG-1", env=now)
    assert (bal["charges"], bal["balance"]) == ("30.00", "-30.00")
    assert en["purchase"] == {"amount": "30.00", "currency": "EUR", "at": "2026-02-01T00:00:00Z"}
    hist = cli.json("balance", "history", "AG-1", env=now)
    assert [(h["kind"], h["amount"]) for h in hist] == [("pack_purchase", "-30.00")]
    assert cli.json("balance", "show", "AG-1", "--at", "2026-01-31", env=now)["charges"] == "0.00"
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i) for i in range(3)])), env=now)
    cli.json("invoice", "run", "--as-of", "2026-03-01T00:00:00Z", env=now)
    assert packs.run_job(get_engine(cli.url)) == {"charged": 0, "unpriced": 0}
    assert [(p[0], p[1]) for p in purchases(cli.url)] == [(en["id"], 30_000_000)]
    assert cli.json("balance", "show", "AG-1", env=now)["charges"] == "30.00"  # the 3 EDRs came from the pack


def test_a_pack_starting_later_is_charged_by_the_serve_job_on_its_start(cli, tmp_path, monkeypatch):
    world(cli, tmp_path)
    en = cli.json(
        "agreement", "enable", "Spain 20", "--agreement", "AG-1", "--from", "2026-04-01", "--charge",
        env=at("2026-03-01T12:00:00+00:00"),
    )  # fmt: skip
    assert cli.json("balance", "show", "AG-1", env=at("2026-03-01T12:00:00+00:00"))["charges"] == "0.00"
    from cpaas_cli.scheduler.serve import ServeOptions, serve_jobs

    job = next(j for j in serve_jobs(ServeOptions()) if j.name == "pack-purchases")
    engine = get_engine(cli.url)
    monkeypatch.setenv("CPAAS_NOW", "2026-03-31T23:59:59+00:00")
    assert job.func(engine) == {"charged": 0, "unpriced": 0}
    monkeypatch.setenv("CPAAS_NOW", "2026-04-01T00:00:00+00:00")
    assert job.func(engine) == {"charged": 1, "unpriced": 0}
    assert job.func(engine) == {"charged": 0, "unpriced": 0}
    monkeypatch.delenv("CPAAS_NOW")
    bal = cli.json("balance", "show", "AG-1", env=at("2026-04-02T00:00:00+00:00"))
    assert bal["charges"] == "50.00"
    assert [(p[0], p[1]) for p in purchases(cli.url)] == [(en["id"], 50_000_000)]
    assert en["purchase"] is None and en["status"] == "future"
    listed = cli.json("agreement", "enabled", "list", "--agreement", "AG-1", env=at("2026-04-02T00:00:00+00:00"))
    assert next(e for e in listed if e["id"] == en["id"])["purchase"]["at"] == "2026-04-01T00:00:00Z"


def test_invoice_run_charges_a_pack_that_started_before_building_the_invoice(cli, tmp_path):
    world(cli, tmp_path)
    cli.json(
        "agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-03-10", "--charge",
        env=at("2026-03-01T00:00:00+00:00"),
    )  # fmt: skip
    got = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z", env=at("2026-04-01T06:00:00+00:00"))
    march = [i for i in got if i["local_start_date"] == "2026-03-01"]
    assert [(i["local_end_date"], i["net"]) for i in march] == [("2026-03-31", "30.00")]
    later = cli.json(
        "agreement", "enable", "Spain 20", "--agreement", "AG-1", "--from", "2026-04-10", "--charge",
        env=at("2026-04-01T06:00:00+00:00"),
    )  # fmt: skip
    may = at("2026-05-01T06:00:00+00:00")
    dry = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z", "--dry-run", env=may)
    assert [i["net"] for i in dry if i["local_start_date"] == "2026-04-01"] == ["50.00"]
    assert [p[1] for p in purchases(cli.url)] == [30_000_000]  # a dry run writes nothing
    cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z", env=may)
    cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z", env=may)
    assert [(p[0], p[1]) for p in purchases(cli.url)][1:] == [(later["id"], 50_000_000)]


def test_an_unused_pack_is_charged_by_a_run_that_rates_nothing_for_it(cli, tmp_path):
    """The pack is never used (the EDRs go to France): rating still charges it, once."""
    world(cli, tmp_path)
    cli.json(
        "agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-04-01", "--charge",
        env=at("2026-03-01T00:00:00+00:00"),
    )  # fmt: skip
    fr = [row(i, mccmnc="20801") for i in range(2)]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "fr.jsonl", fr)), env=at("2026-04-05T00:00:00+00:00"))
    # 30.00 for the pack + 2 × 2 segments × 0.05 (France, pay-as-you-go)
    assert cli.json("balance", "show", "AG-1", env=at("2026-04-05T00:00:00+00:00"))["charges"] == "30.20"
    assert len(purchases(cli.url)) == 1


def test_two_writers_at_once_charge_a_pack_once(cli, tmp_path, monkeypatch):
    world(cli, tmp_path)
    cli.json(
        "agreement", "enable", "Spain 20", "--agreement", "AG-1", "--from", "2026-04-01", "--charge",
        env=at("2026-03-01T00:00:00+00:00"),
    )  # fmt: skip
    monkeypatch.setenv("CPAAS_NOW", "2026-04-02T00:00:00+00:00")
    engine = get_engine(cli.url)
    barrier = threading.Barrier(2)
    got: list[int] = []

    def writer():
        s = make_session(engine, actor="test")
        try:
            barrier.wait()
            got.append(packs.charge_due(s)["charged"])
            s.commit()
        finally:
            s.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [0, 1]
    assert [p[1] for p in purchases(cli.url)] == [50_000_000]


# ------------------------------------------------------------------ item 16


def test_a_pack_needs_its_billing_on_enable(cli, tmp_path):
    world(cli, tmp_path)
    run = cli("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-02-01", expect=2)
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "--charge" in run.stderr and "--free" in run.stderr
    assert cli.json("agreement", "enabled", "list", "--type", "unit-pack") == []
    free = cli.json("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    assert (free["billing"], free["cost"], free["purchase"]) == ("free", None, None)
    cli("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2027-01-01", "--free", expect=4)


def test_a_monetary_pack_is_priced_under_monetary_pack(cli, tmp_path):
    world(cli, tmp_path)
    en = cli.json(
        "agreement", "enable", "Money 5", "--agreement", "AG-1", "--from", "2026-02-01", "--charge",
        env=at("2026-03-01T00:00:00+00:00"),
    )  # fmt: skip
    assert (en["cost"], en["purchase"]["amount"]) == ("4.50", "4.50")
    assert cli.json("balance", "show", "AG-1", env=at("2026-03-01T00:00:00+00:00"))["charges"] == "4.50"


def test_tree_apply_refuses_a_pack_price_that_would_never_be_read(cli, tmp_path):
    world(cli, tmp_path)
    typo = {"tree": {"service_purchase": {"children": {"monetary_packs": {"depends_on": "pack", "children": {"Money 5": {"price": "1"}}}}}}}  # fmt: skip
    run = apply(cli, tmp_path, "Pack prices", typo, expect=4)
    assert "service_purchase/monetary_packs" in run.stderr and "never read" in run.stderr
    by_country = {"tree": {"service_purchase": {"children": {"unit_pack": {"depends_on": "country", "children": {"ES": {"price": "1"}}}}}}}  # fmt: skip
    run = apply(cli, tmp_path, "Pack prices", by_country, expect=4)
    assert "depends on pack" in run.stderr
    # the prices in force are untouched
    en = cli.json("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2027-01-01", "--charge")
    assert en["cost"] == "30.00"


def test_the_pack_associated_first_is_used_first(cli, tmp_path):
    """Spain 10 is enabled first but starts on 15 Feb; Spain 20, enabled after
    it, starts on 1 Feb: on 1 March Spain 10 (associated earlier) pays."""
    world(cli, tmp_path)
    first = cli.json("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-02-15", "--free")
    second = cli.json("agreement", "enable", "Spain 20", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i, segments=1) for i in range(3)])))
    used = [cli.json("edr", "show", f"x-{i}")["pack_enabled_id"] for i in range(3)]
    assert used == [first["id"]] * 3 and second["id"] != first["id"]
    r = cli.json("rates", "lookup", "--agreement", "AG-1", "--mccmnc", "21401", "--at", "2026-03-01")
    assert (r["source"], r["service"]) == ("pack", "Spain 10")


def test_edr_explanations_print_money_taken_from_a_monetary_pack(cli, tmp_path):
    world(cli, tmp_path)
    m = cli.json("agreement", "enable", "Money 5", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    u = cli.json("agreement", "enable", "Spain 10", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(0)])))  # 2 segments: 1 message of Spain 10
    one = cli.json("edr", "show", "x-0")
    assert (one["pack_enabled_id"], one["pack_units"]) == (u["id"], 1)
    assert f"1 unit taken from unit pack #{u['id']}" in one["explanation"]
    cli.json("agreement", "disable", str(u["id"]), env=at("2026-02-20T00:00:00+00:00"))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "f.jsonl", [row(1)])))  # 2 × 0.04 from the 5 EUR pack
    two = cli.json("edr", "show", "x-1")
    assert (two["pack_enabled_id"], two["pack_units"], two["cost"]) == (m["id"], 80_000, "0.08")
    assert f"0.08 EUR paid from monetary pack #{m['id']}" in two["explanation"]
    assert "80000" not in two["explanation"]
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.00"
