"""Vendor cost and margin (issue 29, item 3): a vendor price plan per vendor
connection, the vendor cost on each EDR, `report margin`, `rates compare`,
`edr cost`. Money vectors computed by hand below (micro-units exact)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from tests.test_catalog import setup_agreement, write_csv

NODE = "sms/sms_message/mt"

# The sale plan: ES Vodafone 0.040, other ES networks 0.045, FR 0.050, anywhere else 1.00;
# per segment.
SALE = {
    "tree": {
        "sms": {
            "children": {
                "sms_message": {
                    "depends_on": "direction",
                    "billing_rule": "submitted",
                    "quantity_rule": "segments",
                    "children": {
                        "mo": {"price_type": "free"},
                        "mt": {
                            "depends_on": "country",
                            "children": {
                                "ES": {
                                    "depends_on": "network",
                                    "children": {"21401": {"price": "0.040"}, "others": {"price": "0.045"}},
                                },
                                "FR": {"price": "0.050"},
                                "others": {"price": "1"},
                            },
                        },
                    },
                }
            }
        }
    }
}
# The vendor plan's skeleton: nothing priced under mt until the vendor's sheet is imported.
VENDOR_SKELETON = {
    "tree": {
        "sms": {
            "children": {
                "sms_message": {
                    "depends_on": "direction",
                    "billing_rule": "submitted",
                    "quantity_rule": "segments",
                    "children": {"mt": {"depends_on": "country", "children": {"AQ": {"price": "9"}}}},
                }
            }
        }
    }
}
# The vendor's sheet: ES Vodafone 0.031, FR Orange 0.0625 (above our FR price: a negative margin).
VENDOR_SHEET = [
    ["Country", "MCCMNC", "Rate"],
    ["ES", "21401", "0.031"],
    ["FR", "20801", "0.0625"],
]
AT = "2026-06-01T10:00:00+00:00"


def _plans(cli, tmp_path):
    setup_agreement(cli)
    (tmp_path / "sale.json").write_text(json.dumps(SALE))
    (tmp_path / "vendor.json").write_text(json.dumps(VENDOR_SKELETON))
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli("service", "tree", "apply", "SMS service", str(tmp_path / "sale.json"))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    vendor = cli.json("service", "create", "Vendor X", "--type", "vendor", "--currency", "EUR")
    assert vendor["type"] == "vendor"
    cli.json("service", "scope", "add", "Vendor X", "--from", "2026-01-01")
    cli("service", "tree", "apply", "Vendor X", str(tmp_path / "vendor.json"))
    write_csv(tmp_path / "vendor.csv", VENDOR_SHEET)
    got = cli.json(
        "rates", "import", str(tmp_path / "vendor.csv"), "--service", "Vendor X", "--node", NODE,
        "--map", "country=Country", "--map", "mccmnc=MCCMNC", "--map", "price=Rate",
    )  # fmt: skip
    assert got["written"] is True and got["rows_imported"] == 2
    for name in ("sim", "bare"):
        cli.json(
            "connection", "add-smpp", name, "--host", "127.0.0.1", "--port", "2775", "--system-id", "x",
            "--password-env", "SIM_PW",
        )  # fmt: skip
    conn = cli.json("connection", "update", "sim", "--vendor-plan", "Vendor X")
    assert (conn["vendor_plan"], conn["vendor_plan_id"]) == ("Vendor X", vendor["id"])
    assert cli.json("connection", "show", "bare")["vendor_plan"] is None


# e1: ES Vodafone, 2 parts, through sim: charge 2 × 0.040 = 0.080, vendor 2 × 0.031 = 0.062
# e2: ES Vodafone, 1 part, sim (the file names no connection: --connection sim): 0.040 / 0.031
# e3: FR Orange, 1 part, sim: 0.050 / 0.0625 → margin −0.0125
# e4: DE, 1 part, sim: 1.00 / no vendor price → cost unknown
# e5: ES Vodafone, 1 part, bare (no vendor plan): 0.040 / unknown
# e6: FR, failed without a submit: not counted
EDRS = [
    ["external_id", "agreement", "sender", "destination", "mccmnc", "segments", "submitted_at", "failed_at", "status",
     "connection"],
    ["e1", "AG-1", "ACME", "34600000001", "21401", "2", AT, "", "submitted", "sim"],
    ["e2", "AG-1", "ACME", "34600000002", "21401", "1", AT, "", "submitted", ""],
    ["e3", "AG-1", "ACME", "33600000003", "20801", "1", AT, "", "submitted", "sim"],
    ["e4", "AG-1", "ACME", "49150000004", "26201", "1", AT, "", "submitted", "sim"],
    ["e5", "AG-1", "ACME", "34600000005", "21401", "1", AT, "", "submitted", "bare"],
    ["e6", "AG-1", "ACME", "33600000006", "20801", "1", "", AT, "failed", "sim"],
]  # fmt: skip
WINDOW = ("--from", "2026-06-01", "--till", "2026-06-02")


def _ingest(cli, tmp_path, *extra):
    write_csv(tmp_path / "edrs.csv", EDRS)
    got = cli.json("edr", "ingest", str(tmp_path / "edrs.csv"), "--connection", "sim", *extra)
    assert got["inserted"] == 6


def _edrs(cli):
    return {e["external_id"]: e for e in cli.json("edr", "list", *WINDOW)}


def test_vendor_cost_on_ingested_edrs_and_margin_by_country(cli, tmp_path):
    _plans(cli, tmp_path)
    _ingest(cli, tmp_path)
    vendor_id = cli.json("service", "show", "Vendor X")["id"]
    edrs = {e["external_id"]: cli.json("edr", "show", str(e["id"])) for e in _edrs(cli).values()}
    got = {
        k: (e["cost"], e["vendor_cost"], e["vendor_currency"], e["connection_id"] is not None) for k, e in edrs.items()
    }
    assert got == {
        "e1": ("0.08", "0.062", "EUR", True),
        "e2": ("0.04", "0.031", "EUR", True),
        "e3": ("0.05", "0.0625", "EUR", True),
        "e4": ("1.00", None, None, True),
        "e5": ("0.04", None, None, True),
        "e6": ("0.00", "0.00", "EUR", True),  # never reached the vendor: nothing there
    }
    assert edrs["e1"]["vendor_service_id"] == vendor_id

    rows = cli.json("report", "margin", *WINDOW, "--by", "country")
    assert rows == [
        {
            "country": "DE", "currency": "EUR", "messages": 1, "revenue": "1.00", "owner_revenue": "1.00",
            "vendor_cost": None, "margin": None, "margin_pct": None, "owner_margin": None, "cost_unknown": 1, "negative": False,
        },
        {
            # revenue 0.080 + 0.040 + 0.040; cost 0.062 + 0.031 (e5 unknown); margin 0.120 − 0.093 = 0.027
            # = 22.50 % of 0.120
            "country": "ES", "currency": "EUR", "messages": 3, "revenue": "0.16", "owner_revenue": "0.16",
            "vendor_cost": "0.093", "margin": "0.027", "margin_pct": "22.50", "owner_margin": "0.027",
            "cost_unknown": 1, "negative": False,
        },
        {
            # 0.050 − 0.0625 = −0.0125 = −25.00 % of 0.050
            "country": "FR", "currency": "EUR", "messages": 1, "revenue": "0.05", "owner_revenue": "0.05",
            "vendor_cost": "0.0625", "margin": "-0.0125", "margin_pct": "-25.00", "owner_margin": "-0.0125",
            "cost_unknown": 0, "negative": True,
        },
    ]  # fmt: skip
    total = cli.json("report", "margin", *WINDOW)
    # revenue 1.00 + 0.16 + 0.05 = 1.21; known cost 0.093 + 0.0625 = 0.1555 on revenue 0.17 → 0.0145 = 8.53 %
    assert total == [
        {
            "currency": "EUR", "messages": 5, "revenue": "1.21", "owner_revenue": "1.21",
            "vendor_cost": "0.1555", "margin": "0.0145", "margin_pct": "8.53", "owner_margin": "0.0145",
            "cost_unknown": 2, "negative": False,
        }
    ]  # fmt: skip
    by_conn = {r["connection"]: r for r in cli.json("report", "margin", *WINDOW, "--by", "connection")}
    assert (by_conn["bare"]["messages"], by_conn["bare"]["cost_unknown"], by_conn["bare"]["margin"]) == (1, 1, None)
    assert (by_conn["sim"]["revenue"], by_conn["sim"]["vendor_cost"], by_conn["sim"]["margin"]) == (
        "1.17",
        "0.1555",
        "0.0145",
    )
    by_net = cli.json("report", "margin", *WINDOW, "--by", "network")
    assert [(r["mccmnc"], r["negative"]) for r in by_net] == [("20801", True), ("21401", False), ("26201", False)]
    # every output format carries the same rows
    csv_out = cli("report", "margin", *WINDOW, "--by", "country", "-o", "csv").stdout.splitlines()
    assert csv_out[0] == (
        "country,currency,messages,revenue,vendor_cost,margin,margin_pct,owner_revenue,owner_margin,cost_unknown,negative"
    )
    assert csv_out[3] == "FR,EUR,1,0.05,0.0625,-0.0125,-25.00,0.05,-0.0125,0,true"
    tsv = cli("report", "margin", *WINDOW, "--by", "country", "-o", "tsv").stdout.splitlines()
    assert tsv[2].split("\t")[:6] == ["ES", "EUR", "3", "0.16", "0.093", "0.027"]
    jl = cli("report", "margin", *WINDOW, "--by", "country", "-o", "jsonl").jsonl
    assert [r["country"] for r in jl] == ["DE", "ES", "FR"]
    table = cli("report", "margin", *WINDOW, "--by", "country", "-o", "table")
    assert "-0.0125" in table.stdout and "1 group with a negative margin" in table.stderr
    cli("report", "margin", *WINDOW, "--by", "planet", expect=4)


def test_unknown_cost_becomes_known_with_edr_cost_and_a_price_change(cli, tmp_path):
    _plans(cli, tmp_path)
    _ingest(cli, tmp_path)
    # bare gets the vendor plan; the vendor raises ES Vodafone to 0.035 and prices DE at 0.90
    cli.json("connection", "update", "bare", "--vendor-plan", "Vendor X")
    write_csv(
        tmp_path / "notice.csv", [["Country", "MCCMNC", "Rate"], ["ES", "21401", "0.035"], ["DE", "26201", "0.9"]]
    )
    cli.json(
        "rates", "import", str(tmp_path / "notice.csv"), "--service", "Vendor X", "--node", NODE,
        "--map", "country=Country", "--map", "mccmnc=MCCMNC", "--map", "price=Rate",
    )  # fmt: skip
    before = cli.json("report", "margin", *WINDOW, "--by", "country")
    assert [r["cost_unknown"] for r in before] == [1, 1, 0]  # stored costs stay until `edr cost`
    got = cli.json("edr", "cost", *WINDOW)
    # e1, e2, e4, e5 change; e3 (FR, same price) and e6 (not sent) do not
    assert got == {"edrs": 6, "changed": 4, "known": 6, "unknown": 0}
    rows = {r["country"]: r for r in cli.json("report", "margin", *WINDOW, "--by", "country")}
    # ES: revenue 0.16, cost 2 × 0.035 + 0.035 + 0.035 = 0.14, margin 0.02 = 12.50 %
    assert (rows["ES"]["vendor_cost"], rows["ES"]["margin"], rows["ES"]["margin_pct"]) == ("0.14", "0.02", "12.50")
    assert (rows["DE"]["vendor_cost"], rows["DE"]["margin"], rows["DE"]["cost_unknown"]) == ("0.90", "0.10", 0)
    assert cli.json("edr", "cost", *WINDOW, "--connection", "bare")["changed"] == 0  # idempotent
    # detached: EDRs of the connection go back to unknown, never to zero
    cli.json("connection", "update", "bare", "--no-vendor-plan")
    assert cli.json("edr", "cost", *WINDOW, "--connection", "bare") == {
        "edrs": 1,
        "changed": 1,
        "known": 0,
        "unknown": 1,
    }


def test_vendor_plans_are_not_sale_plans(cli, tmp_path):
    _plans(cli, tmp_path)
    run = cli("agreement", "enable", "Vendor X", "--agreement", "AG-1", "--from", "2026-01-01", expect=5)
    assert "vendor price plan" in run.stderr
    run = cli("connection", "update", "sim", "--vendor-plan", "SMS service", expect=4)
    assert "a vendor plan is a service of type vendor" in run.stderr
    cli("connection", "update", "sim", "--vendor-plan", "Nope", expect=3)
    cli("connection", "update", "sim", "--vendor-plan", "Vendor X", "--no-vendor-plan", expect=2)
    write_csv(
        tmp_path / "e.csv", [["external_id", "agreement", "submitted_at", "connection"], ["x1", "AG-1", AT, "zz"]]
    )
    run = cli("edr", "ingest", str(tmp_path / "e.csv"), expect=4)
    assert "no vendor connection 'zz'" in run.stderr


def test_rates_compare_sale_and_vendor_plans(cli, tmp_path):
    _plans(cli, tmp_path)
    rows = cli.json("rates", "compare", "SMS service", "Vendor X", "--at", "2026-06-01")
    by = {r["destination"]: r for r in rows}
    es = by["sms/sms_message/mt/ES/21401"]
    assert (es["price_a"], es["price_b"], es["difference"], es["match_a"], es["match_b"], es["only_in"]) == (
        "0.04",
        "0.031",
        "0.009",
        "exact",
        "exact",
        None,
    )
    assert (es["country"], es["mccmnc"], es["negative"]) == ("ES", "21401", False)
    fr = by["sms/sms_message/mt/FR/20801"]  # the sale plan prices all of FR at 0.050: a fallback, only in B
    assert (fr["price_a"], fr["price_b"], fr["difference"], fr["negative"]) == ("0.05", "0.0625", "-0.0125", True)
    assert (fr["match_a"], fr["match_b"], fr["only_in"]) == ("fallback", "exact", "B")
    es_other = by["sms/sms_message/mt/ES/others"]  # only the sale plan has it; the vendor prices no other ES network
    assert (es_other["price_a"], es_other["price_b"], es_other["match_b"], es_other["only_in"]) == (
        "0.045",
        None,
        "none",
        "A",
    )
    mo = by["sms/sms_message/mo"]
    assert (mo["price_a"], mo["match_a"], mo["match_b"]) == ("0.00", "exact", "none")
    diffs = cli.json("rates", "compare", "SMS service", "Vendor X", "--at", "2026-06-01", "--differences")
    assert "sms/sms_message/mt/ES/21401" in {r["destination"] for r in diffs}
    assert all(r["only_in"] or r["price_a"] != r["price_b"] for r in diffs)
    run = cli("rates", "compare", "SMS service", "Vendor X", "--at", "2026-06-01", "-o", "csv")
    assert run.stdout.splitlines()[0].startswith("destination,country,mccmnc,sender_type,price_a,price_b,difference")
    assert "priced lower in A than in B" in run.stderr
    cli("rates", "compare", "SMS service", "Vendor X", "--at", "2025-01-01", expect=3)


def test_pure_vendor_cost_rules():
    from cpaas_cli.catalog import tree as tr
    from cpaas_cli.rating import lookup as lk
    from cpaas_cli.rating import vendor as vd

    doc = json.loads(json.dumps(VENDOR_SKELETON))
    mt = doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]
    mt["ES"] = {"price": "0.031"}
    mt["PT"] = {"price_type": "scale", "scale": {"type": "tier", "steps": [[1000, "0.02"], [None, "0.01"]]}}
    mt["IT"] = {"price_type": "free"}
    snap = lk.Snapshot.of(tr.parse_document(doc), service_id=7, scope_id=1, currency="EUR")
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    plan = vd.VendorPlan(7, "EUR", ((t0, t1, snap),))
    at = datetime(2026, 6, 1, tzinfo=UTC)

    def q(country):
        return lk.query(channel="sms", direction="mt", country=country)

    assert vd.cost(plan, at, q("ES"), 3, True) == (93_000, "EUR", 7)  # 3 parts × 0.031
    assert vd.cost(plan, at, q("IT"), 2, True) == (0, "EUR", 7)  # free
    assert vd.cost(plan, at, q("PT"), 1, True) == vd.UNKNOWN  # scale: no counters yet, so unknown
    assert vd.cost(plan, at, q("DE"), 1, True) == vd.UNKNOWN  # no price
    assert vd.cost(plan, at, q("DE"), 1, False) == (0, "EUR", 7)  # never reached the vendor
    assert vd.cost(plan, t1, q("ES"), 1, True) == vd.UNKNOWN  # no scope in force
    assert vd.cost(None, at, q("ES"), 1, True) == vd.UNKNOWN
    # the chunk path (one connection, one scope over the chunk's times) gives the same amounts
    qs, segs, sent = [q("ES"), q("IT"), q("PT"), q("DE"), q("ES")], [3, 2, 1, 1, 1], [True, True, True, True, False]
    i = vd.one_scope(plan, t0, at)
    assert i == 0 and vd.one_scope(plan, at, t1) is None  # a window past the scope's end has no one scope
    expected = [vd.cost(plan, at, x, n, s)[0] for x, n, s in zip(qs, segs, sent, strict=True)]
    assert vd.amounts(plan, i, qs, segs, sent) == expected == [93_000, 0, None, None, 0]


def test_margin_report_in_a_fresh_process(cli, db_url, tmp_path):
    _plans(cli, tmp_path)
    _ingest(cli, tmp_path)
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "report", "margin", *WINDOW, "--by", "country"]
    done = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["country"], r["margin"], r["negative"]) for r in rows] == [
        ("DE", None, False),
        ("ES", "0.027", False),
        ("FR", "-0.0125", True),
    ]
    assert "1 group with a negative margin" in done.stderr
    done = subprocess.run([*cmd, "-o", "table"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "22.50" in done.stdout and "\x1b[" not in done.stdout  # no colour off a terminal
    bad = subprocess.run([*cmd[:-2], "--by", "planet"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 4 and bad.stdout == ""


def test_edr_rate_later_costs_too_and_exports_show_the_vendor_cost(cli, tmp_path):
    _plans(cli, tmp_path)
    _ingest(cli, tmp_path, "--no-rate")
    assert {e["external_id"]: e["vendor_cost"] for e in _edrs(cli).values()}["e1"] is None
    cli.json("edr", "rate")
    got = {e["external_id"]: cli.json("edr", "show", str(e["id"]))["vendor_cost"] for e in _edrs(cli).values()}
    assert got == {"e1": "0.062", "e2": "0.031", "e3": "0.0625", "e4": None, "e5": None, "e6": "0.00"}
    out = cli("edr", "export", *WINDOW, "--fields", "external_id,vendor_cost,vendor_currency", "--format", "csv")
    assert "e3,0.0625,EUR" in out.stdout.splitlines()
