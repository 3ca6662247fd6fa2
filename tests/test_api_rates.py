"""Rates through the HTTP API (RIM-14, TEN-13): a reseller's user exports the prices it
buys at, edits them and imports them into its own plan; the refusals around it."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.api_helpers import api, assert_problem, auth  # noqa: F401
from tests.helpers import client, owner_le, reseller
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_api_serve import start_serve, stop
from tests.test_catalog import EXAMPLE1

FROM = "2026-01-01"
AT = "2026-06-01T00:00:00Z"
MAPS = [("map", "country=country"), ("map", "mcc=mcc"), ("map", "mnc=mnc"), ("map", "price=price")]
NODE = "sms/sms_message/mt"


def _key(cli, login: str, company: str, role: str = "Admin", **opts) -> str:
    make_user(cli, login, company, role=role, **opts)
    return cli.json("apikey", "create", "--user", login, "--name", f"{login}-key")["key"]


@pytest.fixture
def world(cli):
    """The owner sells "SMS Std" (example 1) to R1 (R1-BUY) and R2 (R2-BUY); R1 owns the
    plan "R1 SMS" (enabled on C1-AG, its client C1's agreement), R2 owns "R2 SMS"."""
    owner_le(cli)
    reseller(cli, "R1")
    reseller(cli, "R2")
    client(cli, "C1", parent="R1")
    for code, company in (("R1-BUY", "R1"), ("R2-BUY", "R2"), ("C1-AG", "C1")):
        cli.json("agreement", "create", code, "--company", company, "--currency", "EUR", "--from", FROM)
    cli.json("service", "create", "SMS Std", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS Std", "--from", FROM)
    cli("service", "tree", "apply", "SMS Std", str(EXAMPLE1))
    for name, owner in (("R1 SMS", "R1"), ("R2 SMS", "R2")):
        cli.json("service", "create", name, "--type", "payg", "--currency", "EUR", "--company", owner)
        cli.json("service", "scope", "add", name, "--from", FROM)
    for svc, ag in (("SMS Std", "R1-BUY"), ("SMS Std", "R2-BUY"), ("R1 SMS", "C1-AG")):
        cli.json("agreement", "enable", svc, "--agreement", ag, "--from", FROM)
    return cli


def _edited(text: str, mccmnc: str, price: str) -> bytes:
    """The reseller's work on the exported file: the flat-priced rows, one price changed."""
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
    writer.writeheader()
    for row in reader:
        if row["price_type"] == "flat" and row["price"]:
            writer.writerow({**row, "price": price} if row["mccmnc"] == mccmnc else row)
    return out.getvalue().encode()


def _lookup(cli, agreement: str, mccmnc: str) -> str | None:
    run = cli("rates", "lookup", "--agreement", agreement, "--mccmnc", mccmnc, "--at", AT, "-o", "json", expect=None)
    return run.json["price"]


def _imports(cli) -> int:
    return len(cli.json("rates", "import-history"))


def test_reseller_exports_edits_and_imports_over_a_real_serve(world, cli, db_url):
    key = _key(cli, "r1_admin", "R1")
    proc, base = start_serve(db_url, "--no-workers")
    try:
        with httpx.Client(base_url=base, headers=auth(key), timeout=60) as http:
            got = http.get("/v1/rates/export", params={"agreement": "R1-BUY", "at": AT})
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("text/csv")
            assert got.headers["content-disposition"] == 'attachment; filename="coverage-R1-BUY.csv"'
            # the same file as the CLI writes
            assert got.text == cli("rates", "export", "--agreement", "R1-BUY", "--at", AT).stdout
            rows = {r["mccmnc"]: r for r in csv.DictReader(io.StringIO(got.text))}
            assert (rows["21401"]["price"], rows["21401"]["service"]) == ("0.04", "SMS Std")
            assert rows["214"]["price"] == "0.08" and rows["214"]["network"] == "all networks"

            sheet = _edited(got.text, "21401", "0.05")
            params = [("service", "R1 SMS"), ("node", NODE), ("create_node", "true"), *MAPS]
            put = http.post("/v1/rates/import", params=params, content=sheet, headers={"Content-Type": "text/csv"})
            assert put.status_code == 200, put.text
            body = put.json()
            assert body["written"] is True and body["service"] == "R1 SMS" and body["errors"] == []
            assert NODE in body["created_nodes"] and body["summary"]["added"] > 1
            assert body["import_id"] is not None

            # its client's price is the new one, as the reseller exports it and as rating finds it
            mine = http.get("/v1/rates/export", params={"agreement": "C1-AG", "at": AT, "format": "json"}).json()
            assert mine["agreement"] == "C1-AG" and mine["at"] == AT
            by_key = {r["mccmnc"]: r for r in mine["rows"]}
            assert (by_key["21401"]["price"], by_key["21401"]["service"]) == ("0.05", "R1 SMS")
            assert by_key["21403"]["price"] == "0.08"
    finally:
        stop(proc)
    assert _lookup(cli, "C1-AG", "21401") == "0.05"
    assert _lookup(cli, "R1-BUY", "21401") == "0.04"  # the purchase price is the owner's, unchanged
    (hist,) = cli.json("rates", "import-history", "--service", "R1 SMS")
    assert (hist["actor"], hist["file_name"], hist["node_path"]) == ("user:r1_admin", "upload.csv", NODE)


def _post(api, key, service, sheet: bytes, *extra, content_type="text/csv"):  # noqa: F811
    params = [("service", service), ("node", NODE), ("create_node", "true"), *MAPS, *extra]
    headers = {**auth(key), "Content-Type": content_type} if content_type else auth(key)
    return api.post("/v1/rates/import", params=params, content=sheet, headers=headers)


SHEET = b"country,mcc,mnc,price\nES,214,,0.08\nES,214,01,0.05\nES,214,03,0.06\n"


def test_refusals_of_other_companies_plans_and_agreements(world, cli, api):  # noqa: F811
    key = _key(cli, "r1_admin", "R1")
    # the owner's service: seen (R1 buys it) but not R1's to price
    got = assert_problem(_post(api, key, "SMS Std", SHEET), 403, "forbidden")
    assert "may not import rates into 'SMS Std': it belongs to 'System owner'" in got["detail"]
    # another reseller's plan is not seen at all, nor its purchase agreement
    assert_problem(_post(api, key, "R2 SMS", SHEET), 404, "not-found")
    assert_problem(api.get("/v1/rates/export", params={"agreement": "R2-BUY"}, headers=auth(key)), 404, "not-found")
    assert_problem(api.get("/v1/rates/export", params={"agreement": "NOPE"}, headers=auth(key)), 404, "not-found")
    assert _imports(cli) == 0
    # R2's own user may
    other = _key(cli, "r2_admin", "R2")
    assert _post(api, other, "R2 SMS", SHEET).json()["written"] is True


def test_permissions(world, cli, api):  # noqa: F811
    # a client's portal user: no rates area; its prices are finance data
    broadcaster = _key(cli, "c1_broadcast", "C1", role="Broadcast manager", department="Admin")
    assert_problem(api.get("/v1/rates/export", params={"agreement": "C1-AG"}, headers=auth(broadcaster)), 403,
                   "forbidden")  # fmt: skip
    assert_problem(_post(api, broadcaster, "R1 SMS", SHEET), 403, "forbidden")
    finance = _key(cli, "c1_finance", "C1", role="Finance manager", department="Admin")
    got = api.get("/v1/rates/export", params={"agreement": "C1-AG", "format": "json"}, headers=auth(finance))
    assert got.status_code == 200 and got.json()["agreement"] == "C1-AG", got.text
    assert_problem(_post(api, finance, "R1 SMS", SHEET), 403, "forbidden")
    assert_problem(api.get("/v1/rates/export", params={"agreement": "R1-BUY"}, headers=auth(finance)), 404,
                   "not-found")  # fmt: skip
    # a BackOffice user whose role has no rates area
    manager = _key(cli, "r1_clients", "R1", role="Client manager")
    assert_problem(api.get("/v1/rates/export", params={"agreement": "R1-BUY"}, headers=auth(manager)), 403,
                   "forbidden")  # fmt: skip
    assert_problem(_post(api, manager, "R1 SMS", SHEET), 403, "forbidden")
    refused = [a for a in cli.json("audit", "list") if a["action"] == "permission_refused"]
    assert refused and _imports(cli) == 0


def test_replace_needs_confirmation_and_bad_rows_write_nothing(world, cli, api, monkeypatch):  # noqa: F811
    key = _key(cli, "r1_admin", "R1")
    assert _post(api, key, "R1 SMS", SHEET).json()["written"] is True
    assert _imports(cli) == 1 and _lookup(cli, "C1-AG", "21401") == "0.05"

    smaller = b"country,mcc,mnc,price\nES,214,,0.07\n"
    got = assert_problem(_post(api, key, "R1 SMS", smaller, ("mode", "replace")), 409, "conflict")
    assert got["removed"] == 2 and "confirm_removal=true" in got["detail"]
    assert _imports(cli) == 1 and _lookup(cli, "C1-AG", "21401") == "0.05"
    dry = _post(api, key, "R1 SMS", smaller, ("mode", "replace"), ("dry_run", "true"))
    assert dry.status_code == 200 and dry.json()["written"] is False and dry.json()["summary"]["removed"] == 2
    assert _imports(cli) == 1
    done = _post(api, key, "R1 SMS", smaller, ("mode", "replace"), ("confirm_removal", "true")).json()
    assert done["written"] is True and done["summary"]["removed"] == 2
    assert _lookup(cli, "C1-AG", "21401") == "0.07"

    bad = b"country,mcc,mnc,price\nES,214,01,0.09\nES,214,03,cheap\n"
    got = assert_problem(_post(api, key, "R1 SMS", bad), 422, "invalid-input")
    (problem,) = got["problems"]
    assert (problem["row"], problem["field"]) == (3, "price")
    assert got["result"]["written"] is False and got["result"]["errors"][0]["value"] == "cheap"
    assert _imports(cli) == 2 and _lookup(cli, "C1-AG", "21401") == "0.07"
    skipped = _post(api, key, "R1 SMS", bad, ("skip_invalid", "true")).json()
    assert skipped["written"] is True and skipped["rows_skipped"] == 1
    assert _lookup(cli, "C1-AG", "21401") == "0.09"

    # the body: its kind from Content-Type or filename, its size capped
    assert_problem(_post(api, key, "R1 SMS", bad, content_type="application/json"), 415, "unsupported-media-type")
    assert_problem(_post(api, key, "R1 SMS", bad, ("filename", "x.pdf")), 415, "unsupported-media-type")
    assert _post(api, key, "R1 SMS", bad, ("filename", "price list.csv"), ("skip_invalid", "true"),
                 content_type=None).status_code == 200  # fmt: skip
    assert cli.json("rates", "import-history")[-1]["file_name"] == "price_list.csv"
    assert_problem(_post(api, key, "R1 SMS", b""), 422, "invalid-input")
    from cpaas_cli.api import rates

    monkeypatch.setattr(rates, "MAX_SHEET_BYTES", 40)
    assert_problem(_post(api, key, "R1 SMS", bad), 413, "payload-too-large")


def test_xlsx_body(world, cli, api, tmp_path):  # noqa: F811
    import openpyxl

    key = _key(cli, "r1_admin", "R1")
    book = openpyxl.Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(SHEET.decode())):
        sheet.append(row)
    path = tmp_path / "prices.xlsx"
    book.save(path)
    from cpaas_cli.api.rates import XLSX_TYPE

    got = _post(api, key, "R1 SMS", path.read_bytes(), content_type=XLSX_TYPE)
    assert got.status_code == 200 and got.json()["rows_imported"] == 3, got.text
    assert _lookup(cli, "C1-AG", "21403") == "0.06"
