"""Services, scopes, rate trees (apply/export), lookups, rate import and enabled services."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from cpaas_cli.catalog import tree as tr
from cpaas_cli.rating import lookup as lk
from tests.helpers import client, owner_le

DATA = Path(__file__).parent / "data"
EXAMPLE1 = DATA / "example1.yaml"


def setup_agreement(cli, code="AG-1", currency="EUR"):
    owner_le(cli)
    c = client(cli)
    return cli.json("agreement", "create", code, "--company", c["name"], "--currency", currency, "--from", "2026-01-01")


def sms_service(cli, name="SMS service", currency="EUR", tree=EXAMPLE1):
    svc = cli.json("service", "create", name, "--type", "payg", "--currency", currency)
    cli.json("service", "scope", "add", name, "--from", "2026-01-01")
    if tree:
        cli("service", "tree", "apply", name, str(tree))
    return svc


def lookup(cli, mccmnc, *extra, expect=0):
    run = cli(
        "rates",
        "lookup",
        "--agreement",
        "AG-1",
        "--mccmnc",
        mccmnc,
        "--at",
        "2026-06-01",
        *extra,
        "-o",
        "json",
        expect=expect,
    )
    return run.json


def check_example1(cli):
    r = lookup(cli, "21401")
    assert (r["status"], r["price_type"], r["price"], r["currency"]) == ("rate", "flat", "0.04", "EUR")
    assert (r["billing_rule"], r["quantity_rule"]) == ("submitted", "segments")
    assert r["matched"] == "sms/sms_message/mt/ES/21401"
    assert r["source"] == "pay-as-you-go"
    r = lookup(cli, "21422")
    assert r["price_type"] == "scale" and r["counter_group"] == "sender_id"
    assert r["scale"] == {"type": "tier", "steps": [[1000, "0.005"], [None, "0.004"]]}
    r = lookup(cli, "21403")
    assert (r["price"], r["matched"]) == ("0.08", "sms/sms_message/mt/ES/others*")
    r = lookup(cli, "20801")
    assert r["matched"] == "sms/sms_message/mt/others*"
    assert r["scale"]["steps"] == [[10000, "0.05"], [50000, "0.04"], [None, "0.03"]]
    r = lookup(cli, "21401", "--direction", "mo")
    assert (r["status"], r["price"]) == ("free", "0.00")
    r = lookup(cli, "21422", "--resource", "sender_id_usage_fee")
    assert (r["price"], r["quantity_rule"], r["billing_rule"]) == ("15.00", "full_period", None)


def test_example1_with_tree_apply(cli, tmp_path):
    setup_agreement(cli)
    sms_service(cli)
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    check_example1(cli)
    # export then apply changes nothing (YAML and JSON)
    out = tmp_path / "t.yaml"
    cli("service", "tree", "export", "SMS service", "--out", str(out))
    assert cli.json("service", "tree", "apply", "SMS service", str(out))["changes"] == []
    js = tmp_path / "t.json"
    cli("service", "tree", "export", "SMS service", "--out", str(js))
    assert cli.json("service", "tree", "apply", "SMS service", str(js))["changes"] == []
    # a dry run prints the diff and writes nothing
    doc = yaml.safe_load(out.read_text())
    doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"]["children"]["21401"]["price"] = (
        "0.05"
    )
    out.write_text(yaml.safe_dump(doc))
    d = cli.json("service", "tree", "apply", "SMS service", str(out), "--dry-run")
    assert d["changes"] == [
        {"op": "change", "path": "sms/sms_message/mt/ES/21401", "changes": {"price": {"from": "0.04", "to": "0.05"}}}
    ]
    assert lookup(cli, "21401")["price"] == "0.04"
    cli("service", "tree", "apply", "SMS service", str(out))
    assert lookup(cli, "21401")["price"] == "0.05"


def test_no_rate_and_unusable(cli, tmp_path):
    setup_agreement(cli)
    doc = {
        "tree": {
            "sms": {
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "children": {
                            "mt": {
                                "depends_on": "country",
                                "children": {"ES": {"price": "0.04"}, "FR": {"depends_on": "network"}},
                            }
                        },
                    }
                }
            }
        }
    }
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    sms_service(cli, tree=f)
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    r = lookup(cli, "23415", expect=3)
    assert r["status"] == "no_rate" and "country=GB" in r["reason"]
    r = lookup(cli, "21401", expect=3)  # no billing/quantity rule anywhere above
    assert r["status"] == "unusable" and "billing rule" in r["reason"]
    r = lookup(cli, "20801", expect=3)
    assert r["status"] == "unusable" and "no children" in r["reason"]
    shown = cli.json("service", "tree", "show", "SMS service")
    assert {u["path"] for u in shown["unusable"]} == {"sms/sms_message/mt/ES", "sms/sms_message/mt/FR"}


def test_bad_tree_file_is_refused(cli, tmp_path):
    sms_service(cli, tree=None)
    f = tmp_path / "bad.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "tree": {
                    "sms": {
                        "children": {
                            "sms_message": {
                                "depends_on": "country",
                                "children": {
                                    "XX": {"price": "1"},
                                    "ES": {"price": "abc"},
                                    "FR": {"scale": {"type": "tier", "steps": [[5, "1"]]}},
                                },
                            }
                        }
                    }
                }
            }
        )
    )
    run = cli("service", "tree", "apply", "SMS service", str(f), expect=4)
    assert "XX" in run.stderr and "abc" in run.stderr and "open-ended" in run.stderr


def test_lookup_pure_speed_path():
    roots = tr.parse_document(yaml.safe_load(EXAMPLE1.read_text()))
    snap = lk.Snapshot.of(roots, currency="EUR")
    q = lk.query(channel="sms", mccmnc="21401", country="ES")
    assert lk.resolve(snap, q).price == 40000
    q = lk.query(channel="sms", mccmnc=None, mcc="214", country="ES")
    res = lk.resolve(snap, q)
    assert res.price == 80000 and res.path[-1]["others"] is True
    assert lk.resolve(snap, lk.query(channel="viber", country="ES")).status == lk.NO_RATE


def write_csv(path, rows, encoding="utf-8", delimiter=","):
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerows(rows)


SKELETON = {
    "tree": {
        "sms": {
            "children": {
                "sms_message": {
                    "depends_on": "direction",
                    "billing_rule": "submitted",
                    "quantity_rule": "segments",
                    "children": {
                        "mo": {"price_type": "free"},
                        "mt": {"depends_on": "country", "children": {"others": {"price": "1"}}},
                    },
                }
            }
        }
    }
}


def test_example1_with_rates_import(cli, tmp_path):
    setup_agreement(cli)
    skel = tmp_path / "skel.json"
    skel.write_text(json.dumps(SKELETON))
    sms_service(cli, tree=skel)
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    sheet = tmp_path / "rates.csv"
    write_csv(
        sheet,
        [
            ["Country", "Network", "MCCMNC", "Price"],
            ["Spain", "Vodafone Spain", "21401", "0.04"],
            ["Spain", "DIGI mobil", "214-22", "0,005"],
            ["Spain", "All networks", "214", "-0.08"],
            ["Others", "All networks", "", "0.05"],
        ],
        encoding="latin-1",
        delimiter=";",
    )
    args = [
        "rates",
        "import",
        str(sheet),
        "--service",
        "SMS service",
        "--node",
        "sms/sms_message/mt",
        "--map",
        "price=Price",
        "--map",
        "mccmnc=MCCMNC",
        "--map",
        "network=Network",
        "--map",
        "country=Country",
    ]
    dry = cli.json(*args, "--dry-run")
    assert dry["written"] is False and dry["errors"] == [] and dry["levels"] == ["country", "network"]
    assert lookup(cli, "21401")["price"] == "1.00"  # nothing written by the dry run
    res = cli.json(*args)
    assert res["written"] and res["rows_imported"] == 4
    # the scales of Example 1 are set on top of the imported tree
    out = tmp_path / "t.yaml"
    cli("service", "tree", "export", "SMS service", "--out", str(out))
    doc = yaml.safe_load(out.read_text())
    mt = doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]
    assert mt["ES"]["children"]["214"] == {"label": "All networks", "price_type": "flat", "price": "0.08"}
    assert mt["ES"]["children"]["21422"]["label"] == "DIGI mobil"
    mt["ES"]["children"]["21422"] = {
        "label": "DIGI mobil",
        "price_type": "scale",
        "counter_group": "sender_id",
        "scale": {"type": "tier", "steps": [[1000, "0.005"], [None, "0.004"]]},
    }
    mt["others"] = {
        "price_type": "scale",
        "scale": {"type": "tier", "steps": [[10000, "0.05"], [50000, "0.04"], [None, "0.03"]]},
    }
    out.write_text(yaml.safe_dump(doc))
    cli("service", "tree", "apply", "SMS service", str(out))
    r = lookup(cli, "21401")
    assert (r["price"], r["matched"]) == ("0.04", "sms/sms_message/mt/ES/21401")
    r = lookup(cli, "21422")
    assert r["scale"]["steps"] == [[1000, "0.005"], [None, "0.004"]] and r["counter_group"] == "sender_id"
    r = lookup(cli, "21403")  # the country row (MCC 214) answers for other Spanish networks
    assert (r["price"], r["matched"]) == ("0.08", "sms/sms_message/mt/ES/214")
    r = lookup(cli, "20801")
    assert r["scale"]["steps"][0] == [10000, "0.05"]
    hist = cli.json("rates", "import-history")
    assert len(hist) == 1 and hist[0]["file_name"] == "rates.csv" and hist[0]["actor"] == "tester"
    assert len(hist[0]["sha256"]) == 64 and hist[0]["rows_imported"] == 4


def test_import_errors_write_nothing(cli, tmp_path):
    skel = tmp_path / "skel.json"
    skel.write_text(json.dumps(SKELETON))
    sms_service(cli, tree=skel)
    sheet = tmp_path / "bad.csv"
    write_csv(
        sheet,
        [
            ["Country", "MCCMNC", "Price", "Billing"],
            ["Spain", "21401", "0.04", "Submited"],
            ["Mordor", "21403", "0.05", ""],
            ["Spain", "20801", "0.05", ""],
            ["Spain", "21404", "n/a", ""],
            ["Spain", "21401", "0.06", "delivered"],
            ["Spain", "21407", "0.07", "whenever"],
        ],
    )
    args = [
        "rates",
        "import",
        str(sheet),
        "--service",
        "SMS service",
        "--node",
        "sms/sms_message/mt",
        "--map",
        "country=Country",
        "--map",
        "mccmnc=MCCMNC",
        "--map",
        "price=Price",
        "--map",
        "billing_rule=Billing",
    ]
    run = cli(*args, "-o", "json", expect=4)
    errs = {(e["row"], e["column"]) for e in run.json["errors"]}
    assert errs == {
        (3, "Country"),
        (4, "MCCMNC"),
        (5, "Price"),
        (2, "Price, Billing"),
        (6, "Price, Billing"),
        (7, "Billing"),
    }
    assert "row 3, column 'Country', value 'Mordor'" in run.stderr
    assert cli.json("rates", "import-history") == []
    # --duplicates last + --skip-invalid imports the good rows
    res = cli.json(*args, "--duplicates", "last", "--skip-invalid")
    assert res["written"] and res["rows_imported"] == 1
    doc = cli.json("service", "tree", "show", "SMS service")
    leaf = doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"]["children"]["21401"]
    assert (leaf["price"], leaf["billing_rule"]) == ("0.06", "delivered")
    # a missing column or a target without rules is refused up front
    cli(*args[:-2], "--map", "billing_rule=Nope", expect=4)
    cli(
        "rates",
        "import",
        str(sheet),
        "--service",
        "SMS service",
        "--node",
        "sms",
        "--map",
        "country=Country",
        "--map",
        "price=Price",
        expect=4,
    )


def test_import_xlsx_with_sheet(cli, tmp_path):
    import openpyxl

    skel = tmp_path / "skel.json"
    skel.write_text(json.dumps(SKELETON))
    sms_service(cli, tree=skel)
    book = openpyxl.Workbook()
    book.active.title = "Cover"
    ws = book.create_sheet("Rates")
    for row in [["notes"], ["MCCMNC", "Price"], [21401, 0.04], [23415, 0.03]]:
        ws.append(row)
    path = tmp_path / "rates.xlsx"
    book.save(path)
    cli(
        "rates",
        "import",
        str(path),
        "--service",
        "SMS service",
        "--node",
        "sms/sms_message/mt",
        "--sheet",
        "Nope",
        "--map",
        "mccmnc=MCCMNC",
        "--map",
        "price=Price",
        expect=4,
    )
    # the notes above the header are skipped: the header is found on row 2 (or given with --header-row)
    res = cli.json(
        "rates",
        "import",
        str(path),
        "--service",
        "SMS service",
        "--node",
        "sms/sms_message/mt",
        "--sheet",
        "Rates",
        "--map",
        "mccmnc=MCCMNC",
        "--map",
        "price=Price",
        "--header-row",
        "2",
        "--mode",
        "replace",
        "--yes",
    )
    assert res["rows_imported"] == 2 and res["header_row"] == 2
    shown = cli.json("service", "tree", "show", "SMS service")
    mt = shown["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]
    assert mt["depends_on"] == "network" and list(mt["children"]) == ["21401", "23415"]


def test_scopes_current_and_copy(cli):
    sms_service(cli)
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-03-01", "--copy-from", "SMS service")
    scopes = cli.json("service", "scope", "list", "SMS service")
    assert [s["state"] for s in scopes] == ["current", "overlapped"]
    a = cli.json("service", "tree", "show", "SMS service", "--scope", str(scopes[0]["id"]))
    b = cli.json("service", "tree", "show", "SMS service", "--scope", str(scopes[1]["id"]))
    assert a["tree"] == b["tree"]
    cli.json("service", "scope", "update", "SMS service", str(scopes[0]["id"]), "--draft")
    assert [s["state"] for s in cli.json("service", "scope", "list", "SMS service")] == ["draft", "current"]
    cli("service", "scope", "add", "SMS service", expect=4)  # neither dates nor --draft
    d = cli.json("service", "scope", "add", "SMS service", "--draft")
    assert d["state"] == "draft"


def test_service_types_clone_archive(cli):
    setup_agreement(cli)
    cli("service", "create", "Pack", "--type", "unit-pack", "--currency", "EUR", "--size", "1000", expect=4)
    cli("service", "create", "Pack", "--type", "unit-pack", expect=4)  # no size
    p = cli.json("service", "create", "Pack", "--type", "unit-pack", "--size", "1000")
    assert (p["currency"], p["size"]) == (None, "1000")
    m = cli.json("service", "create", "Money", "--type", "monetary-pack", "--size", "100", "--currency", "usd")
    assert (m["currency"], m["size"]) == ("USD", "100.00")
    cli("service", "create", "Pack", "--type", "payg", "--currency", "EUR", expect=5)
    sms_service(cli)
    c = cli.json("service", "clone", "SMS service", "--name", "SMS copy")
    assert c["channels"] == ["sms"] and len(c["scopes"]) == 1
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    a = cli.json("service", "archive", "SMS service")
    assert a["agreements_losing_it"] == ["AG-1"]
    assert [x["name"] for x in cli.json("service", "list")] == ["Pack", "Money", "SMS copy"]
    rows = cli.json("agreement", "enabled", "list")
    assert rows[0]["status"] == "missed option SMS service"
    lookup(cli, "21401", expect=3)


def test_enable_rules(cli, tmp_path):
    setup_agreement(cli)
    sms_service(cli)
    sms_service(cli, name="SMS two")
    usd = sms_service(cli, name="SMS usd", currency="USD")
    cli.json(
        "agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01", "--till", "2026-07-01"
    )
    run = cli("agreement", "enable", "SMS two", "--agreement", "AG-1", "--from", "2026-06-01", expect=5)
    assert "SMS service" in run.stderr
    e = cli.json("agreement", "enable", "SMS two", "--agreement", "AG-1", "--from", "2026-07-01")
    cli("agreement", "enable", usd["name"], "--agreement", "AG-1", "--from", "2027-01-01", expect=4)
    # packs: a charged pack needs a pay-as-you-go price for it in the agreement currency
    pack = tmp_path / "pack.yaml"
    pack.write_text(
        yaml.safe_dump(
            {
                "tree": {
                    "sms": {
                        "children": {
                            "sms_message": {
                                "depends_on": "country",
                                "children": {
                                    "ES": {"price_type": "included"},
                                    "others": {"price_type": "not_included"},
                                },
                            }
                        }
                    }
                }
            }
        )
    )
    cli.json("service", "create", "Spain 1000", "--type", "unit-pack", "--size", "1000")
    cli.json("service", "scope", "add", "Spain 1000", "--from", "2026-01-01")
    cli("service", "tree", "apply", "Spain 1000", str(pack))
    run = cli("agreement", "enable", "Spain 1000", "--agreement", "AG-1", "--from", "2026-02-01", "--charge", expect=3)
    assert "rate not found" in run.stderr
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        yaml.safe_dump(
            {
                "tree": {
                    "service_purchase": {
                        "children": {"unit_pack": {"depends_on": "pack", "children": {"Spain 1000": {"price": "30"}}}}
                    }
                }
            }
        )
    )
    sms_service(cli, name="Pack prices", tree=prices)
    cli.json("agreement", "enable", "Pack prices", "--agreement", "AG-1", "--from", "2026-01-01")
    en = cli.json("agreement", "enable", "Spain 1000", "--agreement", "AG-1", "--from", "2026-02-01", "--charge")
    assert (en["billing"], en["cost"], en["currency"]) == ("charge", "30.00", "EUR")
    r = lookup(cli, "21401")
    assert (r["source"], r["status"], r["service"]) == ("pack", "included", "Spain 1000")
    r = lookup(cli, "20801")  # not included in the pack: pay-as-you-go
    assert (r["source"], r["service"]) == ("pay-as-you-go", "SMS service")
    assert (
        cli.json("agreement", "disable", str(e["id"]), env={"CPAAS_NOW": "2026-08-01T00:00:00+00:00"})["result"]
        == "ended"
    )
    cli("agreement", "disable", str(e["id"]), expect=5)  # ended already
    listed = cli.json("agreement", "enabled", "list", "--agreement", "AG-1")
    assert len(listed) == 4


def test_rates_export(cli, tmp_path):
    setup_agreement(cli)
    sms_service(cli)
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    out = tmp_path / "cov.csv"
    cli("rates", "export", "--agreement", "AG-1", "--at", "2026-06-01", "--out", str(out))
    rows = {r["mccmnc"]: r for r in csv.DictReader(out.open())}
    assert rows["21401"]["price"] == "0.04" and rows["21401"]["network"] == "Vodafone Spain"
    assert rows["214"]["price"] == "0.08" and rows["412"]["price_type"] == "scale"
    xl = tmp_path / "cov.xlsx"
    cli("rates", "export", "--agreement", "AG-1", "--at", "2026-06-01", "--out", str(xl))
    import openpyxl

    book = openpyxl.load_workbook(xl)
    sheet = book.active
    assert book.sheetnames == ["Coverage AG-1"] and sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:") and sheet.auto_filter.ref.endswith(str(sheet.max_row))
    header = [c.value for c in sheet[1]]
    by_key = {r[header.index("mccmnc")].value: r for r in sheet.iter_rows(min_row=2)}
    price = by_key["21401"][header.index("price")]
    assert price.data_type == "n" and price.value == 0.04 and price.number_format == "#,##0.00####"
    assert by_key["21401"][header.index("mcc")].value == "214"  # codes stay text
