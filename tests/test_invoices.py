"""Invoices through the CLI: run, periods, late charges, confirm/numbering, void,
exports (PDF text, CSV/XLSX), e-mail to aiosmtpd, and the money invariant."""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from fractions import Fraction

import sqlalchemy as sa
from pypdf import PdfReader

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.invoices import Invoice, InvoiceCharge, InvoiceLine
from cpaas_cli.money import MICROS, minor_units, round_half_up, round_minor, to_micros
from tests.helpers import client, owner_le
from tests.smtp import smtp_server  # noqa: F401
from tests.test_money_cli import edr_file, row
from tests.test_money_cli import setup as money_setup

CHG = Charge.__table__
INV = Invoice.__table__
IC = InvoiceCharge.__table__
LINE = InvoiceLine.__table__


def agreement(cli, code="AG-1", *extra, company=None):
    if company is None:
        owner_le(cli)
        company = client(cli)["name"]
    return cli.json(
        "agreement", "create", code, "--company", company, "--currency", "EUR", "--from", "2026-01-01", *extra
    )


def fee(cli, at, amount, code="AG-1", desc=None):
    args = ["fee", "add", "--agreement", code, "--amount", amount, "--at", at]
    if desc:
        args += ["--description", desc]
    return cli.json(*args)


def invariant(db_url):
    """Every live invoice: charges_total = Σ its charges = Σ line.exact, charge_count = how
    many; the invoice rounds once (SPEC AMB-25): net = charges_total rounded half-up to the
    currency's minor units, rounding = net − charges_total (at most half a minor unit), tax
    = net × rate rounded once, total = net + tax. Lines carry max(line_decimals, minor units)
    decimals, total = net + tax each; with the currency's decimals they add up to net and tax."""
    eng = get_engine(db_url)
    with eng.connect() as c:
        for inv in c.execute(sa.select(INV).where(INV.c.status != "void")).mappings():
            linked = c.execute(
                sa.select(sa.func.coalesce(sa.func.sum(CHG.c.amount), 0), sa.func.count())
                .select_from(IC.join(CHG, CHG.c.id == IC.c.charge_id))
                .where(IC.c.invoice_id == inv["id"])
            ).one()
            lines = c.execute(sa.select(LINE).where(LINE.c.invoice_id == inv["id"])).mappings().all()
            cur, m = inv["currency"], minor_units(inv["currency"])
            assert inv["charges_total"] == linked[0] == sum(ln["exact"] for ln in lines)
            assert inv["charge_count"] == linked[1]
            assert inv["net"] == round_minor(inv["charges_total"], cur) == inv["charges_total"] + inv["rounding"]
            assert 2 * abs(inv["rounding"]) <= 10 ** (6 - m)
            assert inv["tax"] == round_minor(Fraction(inv["net"] * inv["tax_rate"], 100 * MICROS), cur)
            assert inv["total"] == inv["net"] + inv["tax"]
            e = max(inv["line_decimals"], m)
            for ln in lines:
                assert ln["net"] % 10 ** (6 - e) == 0 and ln["total"] == ln["net"] + ln["tax"]
                assert ln["rounding"] == ln["net"] - ln["exact"]
                if e > m:
                    assert ln["net"] == round_half_up(ln["exact"], e)
            if e == m:
                assert sum(ln["net"] for ln in lines) == inv["net"] and sum(ln["tax"] for ln in lines) == inv["tax"]


def test_run_lines_idempotent_late_charge_and_correction(cli, db_url, tmp_path):
    money_setup(cli)
    cli.json("agreement", "version", "add", "AG-1", "--from", "2026-02-01", "--tax-rate", "20")
    rows = [row(i) for i in range(5)] + [row(5, mccmnc="33201")]
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert got["rated"] == 6
    fee(cli, "2026-03-10T00:00:00Z", "12.345", desc="Onboarding")
    res = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    # Jan (version 1), Feb and Mar (version 2, cut at its start) have closed; only March has charges.
    assert [(i["local_start_date"], i["action"]) for i in res] == [("2026-03-01", "created")]
    march = cli.json("invoice", "show", str(res[0]["id"]))
    # 5 × 2 × 0.04 = 0.40 (ES), 1 × 0.10 (others) = 0.10, fee 12.345: net 12.845 → 12.85 once (+0.005)
    assert (march["tax_rate"], march["charges_total"], march["net"]) == ("20", "12.845", "12.85")
    assert (march["tax"], march["total"], march["rounding"]) == ("2.57", "15.42", "0.005")
    descs = [(ln["description"], ln["count"], ln["volume"], ln["net"]) for ln in march["lines"]]
    assert descs[-1] == ("Additional fee: Onboarding", 1, 1, "12.345")
    usage = [d for d in descs if d[0].startswith("SMS service")]
    assert sorted((c, v) for _d, c, v, _n in usage) == [(1, 2), (5, 10)]
    assert march["due_date"] == "2026-05-01" and march["issue_date"] == "2026-04-01"
    assert cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") == []
    # Dry run shows, writes nothing (April has no charges: only with --include-empty).
    assert cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z", "--dry-run") == []
    assert len(cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z", "--dry-run", "--include-empty")) == 3
    assert len(cli.json("invoice", "list")) == 1
    # A late charge of March: the draft is recalculated by the next run.
    fee(cli, "2026-03-31T23:00:00Z", "1")
    again = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    assert [(i["id"], i["action"], i["net"]) for i in again] == [(march["id"], "recalculated", "13.85")]
    conf = cli.json("invoice", "confirm", str(march["id"]), "--at", "2026-04-02T09:00:00Z")
    assert (conf["reference"], conf["status"], conf["issue_date"], conf["due_date"]) == (
        "INV-1",
        "confirmed",
        "2026-04-02",
        "2026-05-02",
    )
    # Later March charge: March stays, April gets a correction line.
    fee(cli, "2026-03-20T00:00:00Z", "2.5")
    assert cli("invoice", "recalculate", "INV-1", expect=5).exit_code == 5
    fee(cli, "2026-04-03T00:00:00Z", "1")
    res = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z")
    assert [i["local_start_date"] for i in res] == ["2026-04-01"]
    april = cli.json("invoice", "show", str(res[0]["id"]))
    assert [(ln["correction"], ln["net"]) for ln in april["lines"]] == [(False, "1.00"), (True, "2.50")]
    assert cli.json("invoice", "show", "INV-1")["net"] == "13.85"
    invariant(db_url)
    # Every charge is covered exactly once; the charges of a period = its invoice's own lines.
    eng = get_engine(db_url)
    with eng.connect() as c:
        assert (
            c.execute(sa.select(sa.func.count()).select_from(CHG)).scalar()
            == c.execute(sa.select(sa.func.count()).select_from(IC)).scalar()
        )


def test_confirm_numbering_void_and_reinvoice(cli, db_url):
    agreement(cli)
    for m in ("01", "02", "03"):
        fee(cli, f"2026-{m}-05T00:00:00Z", "10")
    ids = [i["id"] for i in cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")]
    assert cli("invoice", "confirm", str(ids[0]), "--at", "2026-01-20T00:00:00Z", expect=5).exit_code == 5
    refs = [cli.json("invoice", "confirm", str(i), "--at", "2026-04-02T00:00:00Z")["reference"] for i in ids[:2]]
    assert refs == ["INV-1", "INV-2"]
    assert cli("invoice", "confirm", str(ids[0]), expect=5).exit_code == 5
    void = cli.json("invoice", "void", "INV-2", "--yes")
    assert void["status"] == "void" and void["reference"] == "INV-2"
    # The voided period is invoiced again; the next number follows, no gap, no reuse.
    res = cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
    assert [(i["local_start_date"], i["generation"], i["net"]) for i in res] == [("2026-02-01", 1, "10.00")]
    assert cli.json("invoice", "confirm", str(ids[2]), "--at", "2026-04-02T00:00:00Z")["reference"] == "INV-3"
    assert cli.json("invoice", "confirm", str(res[0]["id"]), "--at", "2026-04-02T00:00:00Z")["reference"] == "INV-4"
    # A second own legal entity has its own sequence.
    le2 = owner_le(cli, "Hub GmbH")
    c2 = client(cli, "Client B")
    cli.json(
        "agreement", "create", "AG-2", "--company", c2["name"], "--currency", "EUR", "--from", "2026-01-01",
        "--own-legal-entity", le2["name"],
    )  # fmt: skip
    fee(cli, "2026-01-05T00:00:00Z", "3", code="AG-2")
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z", "--agreement", "AG-2")
    assert cli.json("invoice", "confirm", str(inv["id"]), "--at", "2026-02-02T00:00:00Z")["reference"] == "INV-1"
    assert len(cli.json("invoice", "list", "--status", "confirmed")) == 4
    # The same reference under two own legal entities: the id is needed.
    assert cli("invoice", "show", "INV-1", expect=4).exit_code == 4
    invariant(db_url)


def _starts(cli, code="AG-1"):
    return [
        (i["local_start_date"], i["local_end_date"])
        for i in cli.json("invoice", "run", "--as-of", "2027-01-15T00:00:00Z", "--agreement", code)
    ]


def test_split_by_month_weekly(cli):
    agreement(
        cli, "AG-1", "--billing-period", "weekly", "--billing-day", "1", "--split-by-month", "--till", "2026-02-09"
    )
    fee(cli, "2026-01-30T12:00:00Z", "5")
    fee(cli, "2026-02-01T12:00:00Z", "7")
    got = cli.json("invoice", "run", "--as-of", "2026-02-10T00:00:00Z", "--include-empty")
    spans = [(i["local_start_date"], i["local_end_date"], i["net"]) for i in got]
    # 2026-01-01 is a Thursday: Thu-Sun, then weeks; the week of 26 Jan is cut at 1 Feb.
    assert spans == [
        ("2026-01-01", "2026-01-04", "0.00"),
        ("2026-01-05", "2026-01-11", "0.00"),
        ("2026-01-12", "2026-01-18", "0.00"),
        ("2026-01-19", "2026-01-25", "0.00"),
        ("2026-01-26", "2026-01-31", "5.00"),
        ("2026-02-01", "2026-02-01", "7.00"),
        ("2026-02-02", "2026-02-08", "0.00"),
    ]


def test_monthly_day_31_in_february(cli):
    agreement(cli, "AG-1", "--billing-day", "31", "--till", "2026-04-30", "--billing-tz", "Europe/Madrid")
    fee(cli, "2026-02-27T22:59:59Z", "1")  # 27 Feb 23:59:59 Madrid: period 31 Jan - 27 Feb
    fee(cli, "2026-02-27T23:00:00Z", "2")  # 28 Feb 00:00 Madrid: period from 28 Feb
    got = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z")
    spans = [(i["local_start_date"], i["local_end_date"], i["net"]) for i in got]
    assert spans == [("2026-01-31", "2026-02-27", "1.00"), ("2026-02-28", "2026-03-30", "2.00")]
    assert got[0]["period_start"] == "2026-01-30T23:00:00Z"


def test_quarterly_across_year_end(cli):
    owner_le(cli)
    c = client(cli)
    cli.json(
        "agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2025-11-15",
        "--billing-period", "quarterly", "--billing-day", "15",
    )  # fmt: skip
    fee(cli, "2025-12-31T23:00:00Z", "4")
    fee(cli, "2026-01-14T23:59:59Z", "6")
    fee(cli, "2026-01-15T00:00:00Z", "100")
    got = cli.json("invoice", "run", "--as-of", "2026-05-01T00:00:00Z")
    assert [(i["local_start_date"], i["local_end_date"], i["net"]) for i in got] == [
        ("2025-11-15", "2026-01-14", "10.00"),
        ("2026-01-15", "2026-04-14", "100.00"),
    ]


def test_version_change_mid_period(cli):
    agreement(cli, "AG-1", "--days-for-payment", "10")
    cli.json(
        "agreement", "version", "add", "AG-1", "--from", "2026-02-10", "--tax-rate", "7.5", "--days-for-payment", "45"
    )
    fee(cli, "2026-02-09T00:00:00Z", "10")
    fee(cli, "2026-02-10T00:00:00Z", "10")
    got = cli.json("invoice", "run", "--as-of", "2026-03-01T00:00:00Z")
    spans = [(i["local_start_date"], i["local_end_date"], i["tax_rate"], i["tax"], i["due_date"]) for i in got]
    assert spans == [  # January has no charges: no invoice
        ("2026-02-01", "2026-02-09", "0", "0.00", "2026-03-11"),
        ("2026-02-10", "2026-02-28", "7.5", "0.75", "2026-04-15"),
    ]


def test_pdf_csv_xlsx_exports(cli, tmp_path):
    money_setup(cli)
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i) for i in range(3)])))
    (inv,) = [i for i in cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") if i["net"] != "0.00"]
    cli.json("invoice", "confirm", str(inv["id"]), "--at", "2026-04-02T00:00:00Z")
    out = cli.json("invoice", "export", "INV-1", "--format", "pdf", "--out", str(tmp_path / "i.pdf"), "--with-charges")
    assert [f["content"] for f in out] == ["invoice", "charges"]
    text = "\n".join(p.extract_text() for p in PdfReader(tmp_path / "i.pdf").pages)
    assert "Invoice INV-1" in text and "Hub SL S.L." in text and "Client A Legal" in text
    assert "0.24 EUR" in text and "SMS service" in text
    assert "Unit price" in text and "0.04" in text and "rounded once" in text  # 3 × 2 segments × 0.04
    with open(tmp_path / "i-charges.csv", newline="") as fh:
        charges = list(csv.DictReader(fh))
    assert len(charges) == 3 and {c["external_id"] for c in charges} == {"x-0", "x-1", "x-2"}
    assert sum(Decimal(c["amount"]) for c in charges) == Decimal("0.24")
    cli.json("invoice", "export", "INV-1", "--format", "xlsx", "--out", str(tmp_path / "i.xlsx"), "--with-charges")
    import openpyxl

    book = openpyxl.load_workbook(tmp_path / "i-charges.xlsx")
    sheet = book.active
    assert sheet.max_row == 4
    assert book.sheetnames == ["Charges"] and sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:S4"
    amounts = [r[3] for r in sheet.iter_rows(min_row=2)]
    assert {c.data_type for c in amounts} == {"n"} and sum(Decimal(str(c.value)) for c in amounts) == Decimal("0.24")
    book = openpyxl.load_workbook(tmp_path / "i.xlsx")
    lines = book.active
    assert book.sheetnames == ["INV-1 lines"] and lines.freeze_panes == "A2"
    assert lines.auto_filter.ref == f"A1:O{lines.max_row}"
    assert [c.value for c in lines[1]][:5] == ["position", "description", "count", "volume", "unit_price"]
    # money and counts are numbers with a number format, never text
    assert [c.value for c in lines[2]][2:5] == [3, 6, 0.04]
    assert [c.number_format for c in lines[2]][2:5] == ["#,##0", "#,##0", "#,##0.00####"]
    total = lines.cell(row=2, column=10)
    assert total.data_type == "n" and total.number_format == "#,##0.00" and total.value == 0.24


def test_confirm_and_send_to_loopback_smtp(cli, smtp_server, tmp_path):  # noqa: F811
    agreement(cli, "AG-1", "--email", "invoice=ap@client.test,cfo@client.test", "--tax-rate", "21")
    fee(cli, "2026-01-05T00:00:00Z", "100")
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z")
    data = cli.json("invoice", "confirm", str(inv["id"]), "--send", "--at", "2026-02-01T08:00:00Z")
    assert data["sent_to"] == ["ap@client.test", "cfo@client.test"] and data["sent_at"]
    (msg,) = smtp_server.messages
    assert msg["X-Envelope-To"] == "ap@client.test, cfo@client.test"
    assert msg["Subject"].startswith("Invoice INV-1")
    (att,) = [p for p in msg.walk() if p.get_filename()]
    assert att.get_filename() == "INV-1.pdf"
    path = tmp_path / "mail.pdf"
    path.write_bytes(att.get_payload(decode=True))
    assert "121.00 EUR" in PdfReader(path).pages[0].extract_text()


def test_send_without_invoice_email_is_invalid(cli, smtp_server):  # noqa: F811
    agreement(cli)
    (inv,) = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z", "--include-empty")
    assert cli("invoice", "send", str(inv["id"]), expect=4).exit_code == 4
    cli.json("invoice", "confirm", str(inv["id"]), "--at", "2026-02-01T08:00:00Z")
    assert cli("invoice", "send", "INV-1", expect=4).exit_code == 4
    assert smtp_server.messages == []


def test_invariant_random_sub_cent_charges(cli, db_url):
    """Sub-cent charges in micro-units, several kinds and both sides of the period: the
    invoice equals its charges exactly, and the charges of the period are all there."""
    agreement(cli, "AG-1", "--tax-rate", "19.6")
    eng = get_engine(db_url)
    rnd = random.Random(7)
    rows = []
    for _ in range(400):
        day = rnd.randint(1, 59)
        rows.append(
            {
                "agreement_id": 1,
                "kind": rnd.choice(["fee", "scale_adjustment", "edr"]),
                "amount": rnd.randint(-2_000, 50_000),
                "currency": "EUR",
                "_day": day,
            }
        )
    from datetime import UTC, datetime, timedelta

    with eng.begin() as c:
        c.execute(
            sa.insert(CHG),
            [
                {
                    "agreement_id": 1,
                    "kind": r["kind"],
                    "edr_id": None,
                    "amount": r["amount"],
                    "currency": "EUR",
                    "at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=r["_day"], seconds=rnd.randint(0, 86399)),
                    "details": {"description": f"d{r['_day'] % 3}"} if r["kind"] == "fee" else {},
                    "created_at": datetime(2026, 3, 1, tzinfo=UTC),
                }
                for r in rows
            ],
        )
    got = cli.json("invoice", "run", "--as-of", "2026-03-01T00:00:00Z")
    assert len(got) == 2
    invariant(db_url)
    with eng.connect() as c:
        for inv in c.execute(sa.select(INV)).mappings():
            in_period = c.execute(
                sa.select(sa.func.sum(CHG.c.amount)).where(
                    CHG.c.at >= inv["period_start"], CHG.c.at < inv["period_end"]
                )
            ).scalar()
            assert inv["charges_total"] == in_period
            assert abs(inv["net"] - in_period) <= 5_000  # rounded once, however many lines
    assert to_micros("0.01") == MICROS // 100
