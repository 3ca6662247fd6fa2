"""`rates import` as vendors send sheets (issue 25 items 1–2): a title above the
header, MCC and MNC columns, repeated rows, merge or replace with a destination
diff, and a first import with no tree file (`--create-node`, `service tree init`)."""

from __future__ import annotations

import csv
import io
import json

from tests.test_catalog import SKELETON, write_csv

NODE = "sms/sms_message/mt"


def service(cli, tmp_path, name="SMS service", tree=True):
    cli.json("service", "create", name, "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", name, "--from", "2026-01-01")
    if tree:
        skel = tmp_path / "skel.json"
        skel.write_text(json.dumps(SKELETON))
        cli("service", "tree", "apply", name, str(skel))


def imp(cli, path, *maps, expect=0, output="json", service_name="SMS service"):
    args = ["rates", "import", str(path), "--service", service_name, "--node", NODE]
    for m in maps:
        args += ["--map", m] if "=" in m else [m]
    return cli(*args, "-o", output, expect=expect)


def mt_children(cli, name="SMS service"):
    doc = cli.json("service", "tree", "show", name)
    return doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"].get("children", {})


TITLED = [
    ["Acme Telecom - SMS termination rates"],
    ["Valid from 2026-07-01", "", "", ""],
    [],
    ["Country", "MCCMNC", "Network", "Rate EUR"],
    ["Spain", "21401", "Vodafone Spain", "0.040"],
    ["Spain", "21403", "Orange Spain", "0.045"],
]
MAPS = ("country=Country", "mccmnc=MCCMNC", "network=Network", "price=Rate EUR")


def test_header_row_found_below_a_title(cli, tmp_path):
    service(cli, tmp_path)
    sheet = tmp_path / "acme.csv"
    write_csv(sheet, TITLED)
    run = imp(cli, sheet, *MAPS, "--dry-run")
    assert run.json["header_row"] == 4 and run.json["header_detected"] is True
    assert run.json["errors"] == [] and run.json["rows_read"] == 2
    assert "header: row 4 (the first row naming the mapped columns)" in run.stderr
    # --start-row (the old spelling, hidden, with a warning) means the header row, as --header-row does
    for option in ("--start-row", "--header-row"):
        run = imp(cli, sheet, *MAPS, option, "4", "--dry-run")
        assert (run.json["header_row"], run.json["header_detected"], run.json["rows_read"]) == (4, False, 2)
        assert "header: row 4 (as given)" in run.stderr
        assert ("is deprecated and will be removed; use `--header-row`" in run.stderr) is (option == "--start-row")
    # a header row that does not name the mapped columns is refused, naming them
    run = imp(cli, sheet, *MAPS, "--header-row", "2", expect=4)
    assert "row 2 has no column named 'Country', 'MCCMNC', 'Network', 'Rate EUR'" in run.stderr
    run = imp(cli, sheet, *MAPS, "--start-row", "4", "--header-row", "3", expect=2)
    # no row names them all: say what row 1 reads
    run = imp(cli, sheet, "country=Country", "price=Price", expect=4)
    assert "no row among the first 5 names every mapped column" in run.stderr and "Acme Telecom" in run.stderr
    # column names match ignoring case and spacing
    run = imp(cli, sheet, "country=country", "mccmnc=mccmnc", "price=rate  eur", "--dry-run")
    assert run.json["header_row"] == 4 and run.json["rows_imported"] == 2
    assert cli.json("rates", "import-history") == []


def test_header_row_found_in_a_workbook(cli, tmp_path):
    import openpyxl

    service(cli, tmp_path)
    book = openpyxl.Workbook()
    ws = book.active
    ws.cell(row=2, column=2, value="Acme rates")
    for i, row in enumerate([["MCC", "MNC", "Price"], [214, 1, 0.04], [214, 3, 0.045], [310, 260, 0.01]]):
        for j, v in enumerate(row):
            ws.cell(row=5 + i, column=1 + j, value=v)
    path = tmp_path / "acme.xlsx"
    book.save(path)
    run = imp(cli, path, "mcc=MCC", "mnc=MNC", "price=Price", "--mode", "replace", "--yes")
    assert run.json["header_row"] == 5 and run.json["written"] is True
    assert [(e["row"], e["column"]) for e in run.json["errors"]] == []
    assert set(mt_children(cli)) == {"21401", "21403", "310260"}


def test_mcc_and_mnc_columns(cli, tmp_path):
    service(cli, tmp_path)
    sheet = tmp_path / "mccmnc.csv"
    write_csv(
        sheet,
        [
            ["Country", "MCC", "MNC", "Price"],
            ["Spain", "214", "1", "0.04"],  # 1 → 01: Spain's MNCs have 2 digits
            ["Spain", "214", "03", "0.045"],
            ["Spain", "214", "", "0.05"],  # no MNC: the whole country
            ["United States", "310", "26", "0.01"],  # 26 → 026: US MNCs have 3 digits
            ["United States", "310", "410", "0.011"],
            ["Colombia", "732", "1", "0.02"],  # 3-digit MNCs are used there: ambiguous
            ["Colombia", "732", "101", "0.02"],
            ["Spain", "208", "01", "0.02"],  # MCC 208 is France
        ],
    )
    maps = ("country=Country", "mcc=MCC", "mnc=MNC", "price=Price")
    run = imp(cli, sheet, *maps, expect=4)
    errors = {(e["row"], e["column"]): e["reason"] for e in run.json["errors"]}
    assert set(errors) == {(7, "MNC"), (9, "MCC")}
    assert "ambiguous in MCC 732" in errors[(7, "MNC")] and "3 digits" in errors[(7, "MNC")]
    assert errors[(9, "MCC")] == "MCC 208 is FR, not ES"
    assert run.json["levels"] == ["country", "network"]
    run = imp(cli, sheet, *maps, "--skip-invalid")
    assert run.json["written"] and run.json["rows_imported"] == 6
    mt = mt_children(cli)
    assert set(mt["ES"]["children"]) == {"21401", "21403", "214"}
    assert mt["ES"]["children"]["21401"] == {"label": "Vodafone Spain", "price_type": "flat", "price": "0.04"}
    assert set(mt["US"]["children"]) == {"310026", "310410"}
    assert set(mt["CO"]["children"]) == {"732101"}
    # an MNC needs its MCC; and not with an MCCMNC column
    imp(cli, sheet, "country=Country", "mnc=MNC", "price=Price", expect=4)
    imp(cli, sheet, "mccmnc=MCC", "mcc=MCC", "mnc=MNC", "price=Price", expect=4)


def test_repeated_rows_are_not_errors_conflicting_ones_name_the_column(cli, tmp_path):
    service(cli, tmp_path)
    sheet = tmp_path / "dups.csv"
    rows = [
        ["MCCMNC", "Price", "Billing"],
        ["21401", "0.04", "submitted"],
        ["21401", "0.040", "Submitted"],  # the same price and rule: a repeat
        ["21403", "0.05", ""],
    ]
    write_csv(sheet, rows)
    maps = ("mccmnc=MCCMNC", "price=Price", "billing_rule=Billing")
    run = imp(cli, sheet, *maps, "--mode", "replace", "--yes")
    assert run.json["errors"] == [] and run.json["written"] is True
    assert (run.json["rows_read"], run.json["rows_imported"], run.json["rows_repeated"]) == (3, 2, 1)
    assert "1 repeated rows ignored" in run.stderr
    write_csv(sheet, [*rows, ["21403", "0.06", ""], ["21401", "0.04", "delivered"]])
    run = imp(cli, sheet, *maps, expect=4)
    got = {(e["row"], e["column"], e["value"]) for e in run.json["errors"]}
    assert got == {
        (2, "Billing", "submitted"),  # row 3 repeats row 2: ignored
        (6, "Billing", "delivered"),
        (4, "Price", "0.05"),
        (5, "Price", "0.06"),
    }
    reason = next(e["reason"] for e in run.json["errors"] if e["row"] == 4)
    assert reason == "21403 is in rows 4, 5 with different Price"
    assert "row 4, column 'Price', value '0.05'" in run.stderr
    run = imp(cli, sheet, *maps, "--duplicates", "last")
    assert run.json["written"] and run.json["errors"] == []
    kids = mt_children(cli)
    assert (kids["21403"]["price"], kids["21401"]["billing_rule"]) == ("0.06", "delivered")


def first_sheet(cli, tmp_path):
    sheet = tmp_path / "full.csv"
    write_csv(
        sheet,
        [
            ["Country", "MCCMNC", "Price"],
            ["Spain", "21401", "0.04"],
            ["Spain", "21403", "0.045"],
            ["France", "20801", "0.06"],
            ["France", "20810", "0.061"],
        ],
    )
    run = imp(cli, sheet, "country=Country", "mccmnc=MCCMNC", "price=Price")
    assert run.json["mode"] == "merge" and run.json["summary"]["added"] == 4
    return sheet


def test_merge_is_the_default_and_a_dry_run_prints_the_diff(cli, tmp_path):
    service(cli, tmp_path)
    first_sheet(cli, tmp_path)
    notice = tmp_path / "notice.csv"
    write_csv(notice, [["Country", "MCCMNC", "Price"], ["Spain", "21403", "0.05"], ["Spain", "21404", "0.07"]])
    maps = ("country=Country", "mccmnc=MCCMNC", "price=Price")
    dry = imp(cli, notice, *maps, "--dry-run").json
    assert dry["written"] is False and dry["mode"] == "merge"
    assert dry["summary"] == {"added": 1, "changed": 1, "removed": 0, "unchanged": 4}
    assert dry["by_country"] == [
        {"country": "ES", "added": 1, "changed": 1, "removed": 0, "unchanged": 1},
        {"country": "FR", "added": 0, "changed": 0, "removed": 0, "unchanged": 2},
        {"country": "others", "added": 0, "changed": 0, "removed": 0, "unchanged": 1},
    ]
    change = next(c for c in dry["changes"] if c["op"] == "change")
    assert (change["path"], change["old_price"], change["new_price"], change["fields"]) == (
        "ES/21403",
        "0.045",
        "0.05",
        "price",
    )
    table = imp(cli, notice, *maps, "--dry-run", output="table")
    assert table.stdout.splitlines() == [
        "~ ES/21403 (Orange Spain): 0.045 → 0.05 EUR",
        "+ ES/21404 (Yoigo): 0.07 EUR",
        "ES: +1 ~1 -0 (1 unchanged)",
    ]
    assert "merge: would add 1, would change 1, would remove 0" in table.stderr
    rows = list(csv.DictReader(io.StringIO(imp(cli, notice, *maps, "--dry-run", output="csv").stdout)))
    assert [(r["op"], r["path"], r["old_price"], r["new_price"]) for r in rows] == [
        ("change", "ES/21403", "0.045", "0.05"),
        ("add", "ES/21404", "", "0.07"),
    ]
    assert cli.json("rates", "import-history")[0]["file_name"] == "full.csv"  # dry runs wrote nothing
    done = imp(cli, notice, *maps).json
    assert done["written"] and done["summary"]["removed"] == 0
    mt = mt_children(cli)
    assert set(mt["ES"]["children"]) == {"21401", "21403", "21404"} and set(mt["FR"]["children"]) == {
        "20801",
        "20810",
    }
    assert mt["ES"]["children"]["21403"]["price"] == "0.05"


def test_replace_says_what_it_removes_and_asks(cli, tmp_path):
    service(cli, tmp_path)
    first_sheet(cli, tmp_path)
    notice = tmp_path / "notice.csv"
    write_csv(notice, [["Country", "MCCMNC", "Price"], ["Spain", "21403", "0.05"]])
    maps = ("country=Country", "mccmnc=MCCMNC", "price=Price", "--mode", "replace")
    run = imp(cli, notice, *maps, "--dry-run")
    assert "warning: --mode replace would remove 4 destinations that the sheet does not name" in run.stderr
    dry = run.json
    assert dry["summary"] == {"added": 0, "changed": 1, "removed": 4, "unchanged": 0}
    removed = {c["path"] for c in dry["changes"] if c["op"] == "remove"}
    assert removed == {"ES/21401", "FR/20801", "FR/20810", "others"}
    run = imp(cli, notice, *maps, expect=2)  # not a terminal and no --yes: a usage error (exit 2)
    assert "--mode replace removes 4 destinations that the sheet does not name" in run.stderr
    assert "Refusing without --yes" in run.stderr
    assert set(mt_children(cli)) == {"ES", "FR", "others"}  # nothing written
    run = imp(cli, notice, *maps, "--yes")
    assert run.json["written"] and run.json["summary"]["removed"] == 4
    assert "replace: added 0, changed 1, removed 4 destinations" in run.stderr
    assert set(mt_children(cli)) == {"ES"} and set(mt_children(cli)["ES"]["children"]) == {"21403"}
    imp(cli, notice, "country=Country", "price=Price", "--mode", "upsert", expect=4)


def test_merge_refuses_a_sheet_shaped_otherwise(cli, tmp_path):
    service(cli, tmp_path)
    first_sheet(cli, tmp_path)
    flat = tmp_path / "countries.csv"
    write_csv(flat, [["Country", "Price"], ["Spain", "0.05"]])
    run = imp(cli, flat, "country=Country", "price=Price", expect=4)
    assert "sms/sms_message/mt/ES is priced by network, the sheet prices it one price" in run.stderr
    assert "--mode replace" in run.stderr
    nets = tmp_path / "nets.csv"
    write_csv(nets, [["MCCMNC", "Price"], ["21401", "0.05"]])
    run = imp(cli, nets, "mccmnc=MCCMNC", "price=Price", expect=4)
    assert "sms/sms_message/mt is priced by country, the sheet by network" in run.stderr


def test_first_import_needs_no_tree_file(cli, tmp_path):
    service(cli, tmp_path, tree=False)
    sheet = tmp_path / "first.csv"
    write_csv(sheet, [["Country", "MCC", "MNC", "Price"], ["Spain", "214", "1", "0.04"]])
    maps = ("country=Country", "mcc=MCC", "mnc=MNC", "price=Price")
    run = imp(cli, sheet, *maps, expect=3)
    assert "--create-node builds it" in run.stderr
    dry = imp(cli, sheet, *maps, "--create-node", "--dry-run")
    assert dry.json["created_nodes"] == ["sms", "sms/sms_message", "sms/sms_message/mo", "sms/sms_message/mt"]
    assert "would create node sms/sms_message/mt" in dry.stderr
    assert cli.json("service", "tree", "show", "SMS service")["tree"] == {}
    run = imp(cli, sheet, *maps, "--create-node", "--billing-rule", "delivered", "--quantity-rule", "messages")
    assert run.json["written"] and run.json["summary"]["added"] == 1
    msg = cli.json("service", "tree", "show", "SMS service")["tree"]["sms"]["children"]["sms_message"]
    assert (msg["billing_rule"], msg["quantity_rule"]) == ("delivered", "messages")
    assert msg["children"]["mo"] == {"price_type": "free"}
    assert msg["children"]["mt"]["children"]["ES"]["children"]["21401"]["price"] == "0.04"
    # a second --create-node import finds the node there and builds nothing
    assert imp(cli, sheet, *maps, "--create-node").json["created_nodes"] == []
    imp(cli, sheet, *maps, "--create-node", "--billing-rule", "whenever", expect=4)


def test_service_tree_init(cli, tmp_path):
    service(cli, tmp_path, name="Plan B", tree=False)
    doc = cli.json("service", "tree", "init", "Plan B", "--template", "sms-country-network")
    msg = doc["tree"]["sms"]["children"]["sms_message"]
    assert (msg["depends_on"], msg["billing_rule"], msg["quantity_rule"]) == ("direction", "submitted", "segments")
    assert msg["children"]["mt"] == {"depends_on": "country"}
    assert [c["path"] for c in doc["changes"]] == [
        "sms",
        "sms/sms_message",
        "sms/sms_message/mo",
        "sms/sms_message/mt",
    ]
    run = cli("service", "tree", "init", "Plan B", "-o", "json", expect=5)
    assert "already has an sms tree" in run.stderr
    cli("service", "tree", "init", "Plan B", "--template", "nope", "-o", "json", expect=4)
    sheet = tmp_path / "first.csv"
    write_csv(sheet, [["Country", "Price"], ["Spain", "0.04"], ["Others", "0.09"]])
    run = imp(cli, sheet, "country=Country", "price=Price", service_name="Plan B")
    assert run.json["written"] and run.json["summary"]["added"] == 2
    assert set(mt_children(cli, "Plan B")) == {"ES", "others"}


def test_a_vendor_workbook_in_a_fresh_process(cli, tmp_path):
    """The sheet reader (imports/) and the importer (catalog/) meet in a new
    interpreter: a title above the header, MCC and MNC as numbers, no tree yet."""
    import openpyxl

    from tests.test_cli_startup import _fresh

    service(cli, tmp_path, tree=False)
    book = openpyxl.Workbook()
    ws = book.active
    for row in [["Vendor X rate notice"], [], ["MCC", "MNC", "Rate"], [214, 1, 0.04], [214, 1, 0.04], [310, 410, 0.01]]:
        ws.append(row)
    path = tmp_path / "vendor.xlsx"
    book.save(path)
    args = ["--db", cli.url, "rates", "import", str(path), "--service", "SMS service", "--node", NODE]
    args += ["--map", "mcc=MCC", "--map", "mnc=MNC", "--map", "price=Rate", "--create-node", "-o", "json"]
    run = _fresh(*args)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert (data["header_row"], data["rows_repeated"], data["written"]) == (3, 1, True)
    assert data["by_country"] == [
        {"country": "ES", "added": 1, "changed": 0, "removed": 0, "unchanged": 0},
        {"country": "US", "added": 1, "changed": 0, "removed": 0, "unchanged": 0},
    ]
    assert set(mt_children(cli)) == {"21401", "310410"}
