"""Chain rating (RAT-10, issue 29 item 2): a message of a reseller's client is
charged at every level of the chain, each at its own prices, or at none.

Hand-computed vectors (micro-units): the owner sells ES to reseller R at 0.030
per part, R sells ES to its client C at 0.045 per part.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from cpaas_cli.agreements import reselling
from cpaas_cli.agreements import service as agreements
from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.models.catalog import Service
from cpaas_cli.tenancy import service as tenancy
from tests.helpers import client, owner_le
from tests.test_catalog import write_csv

AT = "2026-06-01T10:00:00+00:00"


def tree(es: str, fr: str | None = None, rule: str = "submitted", de: str | None = None) -> dict:
    mt: dict = {"depends_on": "country", "children": {"ES": {"price": es}}}
    if fr is not None:
        mt["children"]["FR"] = {"price": fr}
    if de is not None:
        mt["children"]["DE"] = {"price": de}
    return {
        "tree": {
            "sms": {
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "billing_rule": rule,
                        "quantity_rule": "segments",
                        "children": {"mt": mt},
                    }
                }
            }
        }
    }


def service(cli, tmp_path, name: str, t: dict, owner: str | None = None) -> None:
    (tmp_path / f"{name}.json").write_text(json.dumps(t))
    cli.json("service", "create", name, "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", name, "--from", "2026-01-01")
    cli("service", "tree", "apply", name, str(tmp_path / f"{name}.json"))
    if owner is not None:
        with make_session(get_engine(cli.url), actor="pytest") as s:
            svc = s.exec(sa.select(Service).where(Service.name == name)).scalar_one()
            svc.owner_company_id = tenancy.company(s, owner).id
            s.add(svc)
            s.commit()


def link(cli, reseller: str, agreement: str, start: str = "2026-01-01T00:00:00+00:00") -> None:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        co = tenancy.company(s, reseller)
        le = tenancy.default_legal_entity(s, co.id)
        reselling.add(s, le, agreements.get(s, agreement), effective_from=datetime.fromisoformat(start))
        s.commit()


def chain(cli, tmp_path, *, reseller_credit: str | None = None, with_link: bool = True) -> None:
    """owner → reseller R (purchase agreement R-PUR) → client C (agreement C-1)."""
    owner_le(cli)
    cli.json("tenant", "create", "Reseller R", "--type", "reseller")
    cli.json(
        "tenant", "legal-entity", "add", "R LE", "--company", "Reseller R", "--legal-name", "R Legal",
        "--country", "ES", "--legal-id", "B00000002",
    )  # fmt: skip
    extra = ["--credit-limit", reseller_credit] if reseller_credit is not None else []
    cli.json(
        "agreement", "create", "R-PUR", "--company", "Reseller R", "--currency", "EUR", "--from", "2026-01-01", *extra
    )
    # SID-15: the sender ID R's client uses is delegated to R
    cli.json("sender", "delegate", "ACME", "--reseller", "Reseller R", "--agreement", "R-PUR")
    client(cli, "Client C", parent="Reseller R")
    cli.json("agreement", "create", "C-1", "--company", "Client C", "--currency", "EUR", "--from", "2026-01-01")
    service(cli, tmp_path, "Wholesale", tree("0.030", "0.020"))
    service(cli, tmp_path, "Retail R", tree("0.045", "0.040", de="0.050"), owner="Reseller R")
    cli.json("agreement", "enable", "Wholesale", "--agreement", "R-PUR", "--from", "2026-01-01")
    cli.json("agreement", "enable", "Retail R", "--agreement", "C-1", "--from", "2026-01-01")
    if with_link:
        link(cli, "Reseller R", "R-PUR")


def edrs(tmp_path, rows: list[tuple[str, str, int]]) -> str:
    """(external id, destination, segments) → an EDR file of client agreement C-1."""
    head = ["external_id", "agreement", "sender", "destination", "segments", "submitted_at", "status"]
    mcc = {"34": "21401", "33": "20801", "49": "26201"}
    body = [[e, "C-1", "ACME", d, str(n), AT, "submitted"] for e, d, n in rows]
    head.append("mccmnc")
    for r, (_e, d, _n) in zip(body, rows, strict=True):
        r.append(mcc[d[:2]])
    path = tmp_path / "edrs.csv"
    write_csv(path, [head, *body])
    return str(path)


def charges(cli) -> dict[str, int]:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        got = s.execute(
            sa.text(
                "SELECT a.code, SUM(c.amount) FROM charge c JOIN agreement a ON a.id = c.agreement_id GROUP BY a.code"
            )
        ).all()
    return {code: int(total) for code, total in got}


def test_each_level_charged_at_its_own_prices(cli, tmp_path):
    chain(cli, tmp_path)
    got = cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "33600000002", 1)]))
    assert (got["inserted"], got["rated"]) == (2, 2)
    # C-1: 2 × 0.045 + 0.040 = 0.130; R-PUR: 2 × 0.030 + 0.020 = 0.080
    assert charges(cli) == {"C-1": 130_000, "R-PUR": 80_000}
    with make_session(get_engine(cli.url), actor="pytest") as s:
        rows = s.execute(
            sa.text("SELECT level, unit_price, quantity, cost, currency FROM edr_level ORDER BY edr_id")
        ).all()
    assert [tuple(r) for r in rows] == [(1, 30_000, 2, 60_000, "EUR"), (1, 20_000, 1, 20_000, "EUR")]
    r = cli.json("balance", "show", "R-PUR")
    assert r["charges"] in ("0.08", "0.080000", "0.080")


def test_reseller_credit_refuses_the_message_at_every_level(cli, tmp_path):
    # R may owe 0.070: e1 (0.060 at R) fits, e2 (another 0.060) does not.
    chain(cli, tmp_path, reseller_credit="0.07")
    got = cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "34600000002", 2)]))
    assert (got["rated"], got["rejected"]) == (1, 1)
    assert charges(cli) == {"C-1": 90_000, "R-PUR": 60_000}
    e2 = cli.json("edr", "show", "e2")
    assert e2["rating_state"] == "rejected" and e2["rating_reason"] == "insufficient_credit"
    assert "level 1" in e2["rating_note"] and "R-PUR" in e2["rating_note"]


def test_missing_reselling_agreement_rejects_with_the_level_named(cli, tmp_path):
    chain(cli, tmp_path, with_link=False)
    got = cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 1)]))
    assert (got["rated"], got["rejected"]) == (0, 1)
    assert charges(cli) == {}
    e1 = cli.json("edr", "show", "e1")
    assert e1["rating_reason"] == "no_reselling_agreement"
    assert "level 1" in e1["rating_note"] and "R LE" in e1["rating_note"]


def test_no_price_above_refuses_the_message(cli, tmp_path):
    # The client is sold DE, but the reseller buys no DE: refused at every level, nothing charged.
    chain(cli, tmp_path)
    got = cli.json("edr", "ingest", edrs(tmp_path, [("e1", "49150000001", 1), ("e2", "34600000002", 1)]))
    assert (got["rated"], got["rejected"]) == (1, 1)
    assert charges(cli) == {"C-1": 45_000, "R-PUR": 30_000}
    e1 = cli.json("edr", "show", "e1")
    assert e1["rating_reason"] == "no_rate" and "level 1" in e1["rating_note"]


def _edr_id(cli, ext: str) -> int:
    return int(cli.json("edr", "show", ext)["id"])


def test_refund_of_an_unsent_message_gives_back_every_level(cli, tmp_path):
    from cpaas_cli import clock
    from cpaas_cli.charging import refunds
    from cpaas_cli.charging.plans import Plans

    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "34600000002", 1)]))
    with make_session(get_engine(cli.url), actor="pytest") as s:
        got = refunds.refund_unsent(s, [_edr_id(cli, "e1")], Plans(s), now=clock.now())
        s.commit()
    assert (got["edrs"], got["refunded"], got["amount"]) == (1, 2, 90_000)  # two refund rows: C-1 and R-PUR
    # Only e2 stays charged: 0.045 at C-1, 0.030 at R-PUR.
    assert charges(cli) == {"C-1": 45_000, "R-PUR": 30_000}
    assert cli.json("balance", "show", "R-PUR")["charges"] in ("0.03", "0.030000")
    with make_session(get_engine(cli.url), actor="pytest") as s:
        cost = s.execute(sa.text("SELECT cost, quantity FROM edr_level WHERE level = 1 ORDER BY edr_id")).all()
    assert [tuple(c) for c in cost] == [(0, 0), (30_000, 1)]


def test_refused_parts_are_given_back_at_every_level(cli, tmp_path):
    from cpaas_cli import clock
    from cpaas_cli.charging import refunds
    from cpaas_cli.charging.plans import Plans

    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 3)]))
    assert charges(cli) == {"C-1": 135_000, "R-PUR": 90_000}
    with make_session(get_engine(cli.url), actor="pytest") as s:
        refunds.refund_refused_parts(s, {_edr_id(cli, "e1"): (1, 2, "refused")}, Plans(s), now=clock.now())
        s.commit()
    # One part sent: 0.045 at C-1, 0.030 at R-PUR.
    assert charges(cli) == {"C-1": 45_000, "R-PUR": 30_000}
    with make_session(get_engine(cli.url), actor="pytest") as s:
        row = s.execute(sa.text("SELECT quantity, cost, unit_price FROM edr_level")).one()
    assert tuple(row) == (1, 30_000, 30_000)


def test_campaign_funds_are_checked_at_every_level(cli, tmp_path):
    # R may owe 0.05: one ES message costs R 0.030 (fits), two cost 0.060 (do not).
    chain(cli, tmp_path, reseller_credit="0.05")
    cli.json("sender", "add", "ACME", "--company", "Client C", "--agreement", "C-1", "--active")
    args = ["campaign", "create", "--company", "Client C", "--sender", "ACME", "--text", "x"]
    two = cli.json(*args, "--to", "+34600000001", "--to", "+34600000002")["id"]
    e = cli.json("campaign", "estimate", str(two))
    assert (e["estimated_cost"], e["fits"]) == ("0.09", False)
    assert e["reseller_levels"] == [
        {"level": 1, "agreement": "R-PUR", "estimated_cost": "0.06", "available": "0.05", "fits": False}
    ]
    run = cli("campaign", "send", str(two), "-o", "json", expect=7)
    assert "level 1" in run.stderr and "R-PUR" in run.stderr
    one = cli.json(*args, "--to", "+34600000001")["id"]
    assert cli.json("campaign", "send", str(one))["state"] == "in_progress"


def _reprice(cli, tmp_path, name: str, t: dict) -> None:
    (tmp_path / f"{name}-2.json").write_text(json.dumps(t))
    cli("service", "tree", "apply", name, str(tmp_path / f"{name}-2.json"))


def _rerate(cli, company: str, *agreements: str) -> dict:
    args: list[str] = []
    for a in agreements:
        args += ["--agreement", a]
    task = cli.json(
        "rerate", "create", "--from", "2026-06-01", "--till", "2026-06-02", "--company", company, "--draft", *args
    )
    return cli.json("rerate", "run", str(task["id"]))


def test_rerate_of_one_level_leaves_the_other_alone(cli, tmp_path):
    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "33600000002", 1)]))
    assert charges(cli) == {"C-1": 130_000, "R-PUR": 80_000}
    # The owner lowers ES to a tier: the first unit 0.030, then 0.010 (a counter of the reseller level).
    scaled = tree("0.030", "0.020")
    scaled["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"] = {
        "scale": {"type": "tier", "steps": [[1, "0.030"], [None, "0.010"]]}
    }
    _reprice(cli, tmp_path, "Wholesale", scaled)
    done = _rerate(cli, "Reseller R", "R-PUR")
    # a level unit's counters are reseller CDRs' (RR-04), not EDRs'
    assert (done["status"], done["cdr_processed"], done["cdr_updated"], done["cdr_unchanged"]) == (
        "completed", 2, 1, 1)  # fmt: skip
    assert (done["estimated"], done["processed"], done["updated"], done["unchanged"], done["failed"]) == (0, 0, 0, 0, 0)
    assert (done["cdr_created"], done["cdr_failed"]) == (0, 0)
    # R-PUR: e1 2 parts = 0.030 + 0.010; e2 FR 0.020 → 0.060. The client level is untouched.
    assert charges(cli) == {"C-1": 130_000, "R-PUR": 60_000}
    assert cli.json("balance", "show", "R-PUR")["charges"] == "0.06"
    with make_session(get_engine(cli.url), actor="pytest") as s:
        got = s.execute(sa.text("SELECT cost FROM edr_level ORDER BY edr_id")).scalars().all()
        kinds = s.execute(
            sa.text(
                "SELECT kind, amount FROM charge c JOIN agreement a ON a.id = c.agreement_id WHERE a.code = 'R-PUR'"
            )
        ).all()
    assert list(got) == [40_000, 20_000]
    assert sorted(tuple(k) for k in kinds) == [("edr", 20_000), ("edr", 60_000), ("rerate", -20_000)]
    # Again with unchanged prices: nothing moves. A client rerate leaves the reseller level alone.
    again = _rerate(cli, "Reseller R", "R-PUR")
    assert (again["cdr_processed"], again["cdr_updated"], again["cdr_unchanged"]) == (2, 0, 2)
    _reprice(cli, tmp_path, "Retail R", tree("0.050", "0.040", de="0.050"))
    client_run = _rerate(cli, "Client C", "C-1")
    assert (client_run["processed"], client_run["cdr_processed"]) == (2, 0)
    assert charges(cli) == {"C-1": 140_000, "R-PUR": 60_000}


def test_invoices_per_level_at_each_levels_prices(cli, tmp_path):
    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "34600000002", 1)]))
    made = cli.json("invoice", "run", "--as-of", "2026-07-01T00:00:00Z")
    by_ag = {i["agreement"]: i for i in made}
    assert set(by_ag) == {"C-1", "R-PUR"}
    client_inv = cli.json("invoice", "show", str(by_ag["C-1"]["id"]))
    reseller_inv = cli.json("invoice", "show", str(by_ag["R-PUR"]["id"]))
    # The owner invoices the reseller for its client's traffic at the reseller's purchase price.
    assert [(ln["volume"], ln["unit_price"], ln["net"]) for ln in reseller_inv["lines"]] == [(3, "0.03", "0.09")]
    assert [(ln["volume"], ln["unit_price"], ln["net"]) for ln in client_inv["lines"]] == [(3, "0.045", "0.135")]


def test_margin_report_shows_the_owners_revenue_and_margin(cli, tmp_path):
    chain(cli, tmp_path)
    (tmp_path / "vendor.json").write_text(json.dumps(tree("0.020", "0.050")))
    cli.json("service", "create", "Vendor X", "--type", "vendor", "--currency", "EUR")
    cli.json("service", "scope", "add", "Vendor X", "--from", "2026-01-01")
    cli("service", "tree", "apply", "Vendor X", str(tmp_path / "vendor.json"))
    cli.json(
        "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", "2775", "--system-id", "x",
        "--password-env", "SIM_PW",
    )  # fmt: skip
    cli.json("connection", "update", "sim", "--vendor-plan", "Vendor X")
    path = edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "33600000002", 1)])
    cli.json("edr", "ingest", path, "--connection", "sim")
    rows = cli.json("report", "margin", "--from", "2026-06-01", "--till", "2026-06-02", "--by", "country")
    got = {r["country"]: r for r in rows}
    # ES: client 2 × 0.045, owner (R's price) 2 × 0.030, vendor 2 × 0.020
    es = got["ES"]
    assert (es["revenue"], es["owner_revenue"], es["vendor_cost"], es["margin"], es["owner_margin"]) == (
        "0.09", "0.06", "0.04", "0.05", "0.02")  # fmt: skip
    assert es["negative"] is False
    # FR: client 0.040, owner 0.020, vendor 0.050: the chain still earns nothing, the owner loses 0.030
    fr = got["FR"]
    assert (fr["revenue"], fr["owner_revenue"], fr["margin"], fr["owner_margin"], fr["negative"]) == (
        "0.04", "0.02", "-0.01", "-0.03", True)  # fmt: skip


def test_edr_show_lists_the_charges_and_levels(cli, tmp_path):
    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2)]))
    shown = cli.json("edr", "show", "e1")
    assert [(c["agreement"], c["kind"], c["amount"]) for c in shown["charges"]] == [
        ("C-1", "edr", "0.09"),
        ("R-PUR", "edr", "0.06"),
    ]
    assert [(x["level"], x["agreement"], x["unit_price"], x["quantity"], x["cost"]) for x in shown["levels"]] == [
        (1, "R-PUR", "0.03", 2, "0.06")
    ]
    assert "2 × 0.045 → 0.09 EUR" in shown["explanation"]


def _levels(cli) -> list[tuple]:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        rows = s.execute(
            sa.text(
                "SELECT l.level, a.code, l.unit_price, l.quantity, l.cost FROM edr_level l"
                " JOIN agreement a ON a.id = l.agreement_id ORDER BY l.edr_id, l.level"
            )
        ).all()
    return [tuple(r) for r in rows]


def _counters(t: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(EDRs: processed, updated, unchanged, failed), (CDRs: processed, created, updated, unchanged, failed)."""
    return (
        (t["processed"], t["updated"], t["unchanged"], t["failed"]),
        (t["cdr_processed"], t["cdr_created"], t["cdr_updated"], t["cdr_unchanged"], t["cdr_failed"]),
    )


def test_rerate_after_the_reselling_agreement_is_added_charges_every_level(cli, tmp_path):
    """RR-04 "created": the EDR refused for a missing reselling agreement is rated by a
    client rerate once the agreement is added, and charged at the reseller level too."""
    import subprocess
    import sys

    chain(cli, tmp_path, with_link=False)
    got = cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2)]))
    assert (got["rated"], got["rejected"]) == (0, 1)
    e1 = cli.json("edr", "show", "e1")
    assert e1["rating_reason"] == "no_reselling_agreement" and "level 1" in e1["rating_note"]

    # Rerated while the chain is still broken: it stays refused, the level named; never the client alone.
    early = _rerate(cli, "Client C", "C-1")
    assert _counters(early) == ((1, 0, 0, 1), (0, 0, 0, 0, 0))
    assert charges(cli) == {} and _levels(cli) == []
    assert cli.json("edr", "show", "e1")["rating_reason"] == "no_reselling_agreement"

    link(cli, "Reseller R", "R-PUR")
    task = cli.json(
        "rerate", "create", "--from", "2026-06-01", "--till", "2026-06-02", "--company", "Client C",
        "--agreement", "C-1", "--draft",
    )["id"]  # fmt: skip
    preview = cli.json("rerate", "preview", str(task))
    assert (preview["updated"], preview["cdr_created"], preview["cdr_processed"]) == (1, 1, 1)
    assert charges(cli) == {} and _levels(cli) == []  # a preview writes nothing

    # The run in a fresh `cpaas` process: nothing cached from the ingest.
    proc = subprocess.run(
        [sys.executable, "-m", "cpaas_cli", "--db", cli.url, "rerate", "run", str(task), "-o", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["status"] == "completed"
    assert _counters(done) == ((1, 1, 0, 0), (1, 1, 0, 0, 0))
    assert "reseller CDRs: created 1" in proc.stderr
    # C-1: 2 × 0.045; R-PUR, the reseller's own price: 2 × 0.030
    assert charges(cli) == {"C-1": 90_000, "R-PUR": 60_000}
    assert _levels(cli) == [(1, "R-PUR", 30_000, 2, 60_000)]
    e1 = cli.json("edr", "show", "e1")
    assert e1["rating_state"] == "rated"
    assert [(c["agreement"], c["amount"]) for c in e1["charges"]] == [("C-1", "0.09"), ("R-PUR", "0.06")]
    assert cli.json("balance", "show", "R-PUR")["charges"] == "0.06"
    shown = cli.json("rerate", "show", str(task))
    assert _counters(shown) == ((1, 1, 0, 0), (1, 1, 0, 0, 0))

    # Again: the EDR is rated and has its reseller CDR: nothing created, nothing moves.
    again = _rerate(cli, "Client C", "C-1")
    assert _counters(again) == ((1, 0, 1, 0), (0, 0, 0, 0, 0))
    assert charges(cli) == {"C-1": 90_000, "R-PUR": 60_000}
    assert len(_levels(cli)) == 1
    # The reselling agreement's rerate finds the created CDR priced as it would price it.
    level = _rerate(cli, "Reseller R", "R-PUR")
    assert _counters(level) == ((0, 0, 0, 0), (1, 0, 0, 1, 0))
    assert charges(cli) == {"C-1": 90_000, "R-PUR": 60_000}


def test_rerate_keeps_an_edr_refused_above_refused_until_the_level_has_a_price(cli, tmp_path):
    # DE is sold to the client, but the reseller buys no DE: refused at level 1 (no_rate).
    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "49150000001", 1)]))
    assert cli.json("edr", "show", "e1")["rating_reason"] == "no_rate"
    early = _rerate(cli, "Client C", "C-1")
    assert (early["failed"], early["cdr_created"]) == (1, 0)
    assert charges(cli) == {}
    # The owner now sells DE to the reseller: the client's rerate charges both levels.
    _reprice(cli, tmp_path, "Wholesale", tree("0.030", "0.020", de="0.035"))
    done = _rerate(cli, "Client C", "C-1")
    assert _counters(done) == ((1, 1, 0, 0), (1, 1, 0, 0, 0))
    assert charges(cli) == {"C-1": 50_000, "R-PUR": 35_000}
    assert _levels(cli) == [(1, "R-PUR", 35_000, 1, 35_000)]


def test_level_unit_counts_reseller_cdrs_not_edrs_in_every_output(cli, tmp_path):
    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "33600000002", 1)]))
    _reprice(cli, tmp_path, "Wholesale", tree("0.031", "0.020"))
    done = _rerate(cli, "Reseller R", "R-PUR")
    assert done["estimated"] == 0  # EDRs only
    assert _counters(done) == ((0, 0, 0, 0), (2, 0, 1, 1, 0))
    listed = {t["id"]: t for t in cli.json("rerate", "list")}
    assert _counters(listed[done["id"]]) == ((0, 0, 0, 0), (2, 0, 1, 1, 0))
    csv = cli("rerate", "list", "-o", "csv").stdout.splitlines()
    head = csv[0].split(",")
    row = dict(zip(head, csv[1].split(","), strict=True))
    assert (row["processed"], row["cdr_processed"], row["cdr_updated"], row["cdr_unchanged"]) == ("0", "2", "1", "1")
    table = cli("rerate", "show", str(done["id"]), env={"COLUMNS": "400"}).stdout
    assert "cdr_created" in table and "cdr_updated" in table


def test_migration_0035_moves_a_level_units_counters_to_the_cdr_counters(cli, tmp_path):
    """Down to 0034 the CDR counters fold back into the EDR ones (as a level unit counted
    before); up again, 0035 moves them back, on the unit marker and the task."""
    from cpaas_cli.db import migrate
    from cpaas_cli.db.engine import dispose_all

    chain(cli, tmp_path)
    cli.json("edr", "ingest", edrs(tmp_path, [("e1", "34600000001", 2), ("e2", "33600000002", 1)]))
    _reprice(cli, tmp_path, "Wholesale", tree("0.031", "0.020"))
    done = _rerate(cli, "Reseller R", "R-PUR")
    client_run = _rerate(cli, "Client C", "C-1")
    want = {done["id"]: _counters(done), client_run["id"]: _counters(client_run)}
    assert want[done["id"]] == ((0, 0, 0, 0), (2, 0, 1, 1, 0))
    dispose_all()
    migrate.downgrade(cli.url, "0034")
    with get_engine(cli.url).connect() as c:
        old = c.execute(sa.text("SELECT processed, updated, unchanged, failed FROM rerate_task WHERE id = :i"),
                        {"i": done["id"]}).one()  # fmt: skip
    assert tuple(old) == (2, 1, 1, 0)  # as a level unit counted before 0035
    dispose_all()
    migrate.upgrade(cli.url)
    assert {i: _counters(cli.json("rerate", "show", str(i))) for i in want} == want


def test_a_resellers_client_uses_only_sender_ids_delegated_to_the_reseller(cli, tmp_path):
    """SID-15: `sender add` for a client of a reseller takes a text the tenant delegated
    to that reseller; not another text, and not once the delegation is disabled."""
    chain(cli, tmp_path)
    add = ["sender", "add", "--company", "Client C", "--agreement", "C-1"]
    r = cli(*add[:2], "OTHER", *add[2:], "-o", "json", expect=4)
    assert "'OTHER' is not a sms sender ID delegated to 'Reseller R'" in r.stderr
    assert cli.json("sender", "list", "--company", "Client C") == []
    got = cli.json(*add[:2], "ACME", *add[2:])
    assert (got["sender"], got["company"], got["agreement"]) == ("ACME", "Client C", "C-1")
    # the delegation row is the reseller's, on its purchase agreement
    mine = cli.json("sender", "list", "--company", "Reseller R")
    assert [(x["sender"], x["agreement"]) for x in mine] == [("ACME", "R-PUR")]
    cli.json("sender", "delegate", "BETA", "--reseller", "Reseller R", "--agreement", "R-PUR")
    cli.json("sender", "disable", str(cli.json("sender", "list", "--company", "Reseller R")[1]["id"]))
    r = cli(*add[:2], "BETA", *add[2:], "-o", "json", expect=4)
    assert "the delegation of 'BETA' to 'Reseller R' is disabled" in r.stderr, r.stderr
    # a delegation goes to a reseller on its own purchase agreement only
    r = cli("sender", "delegate", "GAMMA", "--reseller", "Client C", "--agreement", "C-1", "-o", "json", expect=4)
    assert "delegated to resellers" in r.stderr, r.stderr


def test_a_reseller_sends_nothing_with_a_delegated_sender_id(cli, tmp_path):
    """TEN-11: the reseller's delegated row (even active) is no sender for its own traffic."""
    from cpaas_cli.campaigns import senders
    from cpaas_cli.errors import InvalidInput

    chain(cli, tmp_path)
    sid = cli.json("sender", "list", "--company", "Reseller R")[0]
    cli.json("sender", "activate", str(sid["id"]))
    with make_session(get_engine(cli.url), actor="pytest") as s:
        reseller = s.execute(sa.text("SELECT id FROM company WHERE name = 'Reseller R'")).scalar_one()
        with pytest.raises(InvalidInput, match="a reseller sends no traffic of its own"):
            senders.usable(s, "ACME", company_id=reseller)
    r = cli("campaign", "create", "--company", "Reseller R", "--sender", "ACME", "--text", "x", "--to", "+34600000001",
            "-o", "json", expect=4)  # fmt: skip
    assert "is a reseller" in r.stderr
