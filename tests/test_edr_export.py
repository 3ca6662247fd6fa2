"""EDR export: fields, time zones, filters, formats, XLSX sheet roll-over, e-mail, background tasks."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta

import openpyxl
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.edr.tasks import STALE_CLAIM
from cpaas_cli.models.edr import Edr
from tests.smtp import smtp_server  # noqa: F401

T0 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


def add_edrs(db_url: str, n: int = 10, **over) -> None:
    """n EDRs of company 1, one every hour from T0; every third is ES, statuses cycle."""
    statuses = ["delivered", "undelivered", "failed", "submitted", "seen"]
    rows = []
    for i in range(n):
        r = {
            "external_id": f"e-{over.get('tag', '')}{i}",
            "company_id": 1,
            "campaign_id": 7 if i % 2 == 0 else 8,
            "sender": "ACME" if i % 2 == 0 else "INFO",
            "channel": "sms",
            "direction": "mt",
            "destination": f"3460000{i:04d}",
            "country": "ES" if i % 3 == 0 else "FR",
            "mcc": "214" if i % 3 == 0 else "208",
            "mnc": "01",
            "segments": 1 + i % 2,
            "status": statuses[i % 5],
            "event_at": T0 + timedelta(hours=i),
            "delivered_at": T0 + timedelta(hours=i, seconds=5) if statuses[i % 5] == "delivered" else None,
            "rating_state": "rated",
            "cost": 40_000 * (1 + i % 2),
            "currency": "EUR",
            "ingested_at": T0,
        }
        r.update({k: v for k, v in over.items() if k != "tag"})
        rows.append(r)
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(Edr.__table__), rows)


WINDOW = ["--from", "2026-03-01", "--till", "2026-03-10"]


def test_fields_and_utc_times_to_stdout(cli, db_url):
    add_edrs(db_url, 3)
    out = cli("edr", "export", *WINDOW, "--fields", "external_id,event_at,cost,delivered_at").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["external_id", "event_at", "cost", "delivered_at"]
    assert rows[1] == ["e-0", "2026-03-01T22:30:00Z", "0.04", "2026-03-01T22:30:05Z"]
    assert rows[2] == ["e-1", "2026-03-01T23:30:00Z", "0.08", ""]
    assert len(rows) == 4


def test_time_zone_reads_window_and_writes_times(cli, db_url):
    add_edrs(db_url, 4)
    # local Madrid day 2 March starts at 23:00 UTC on 1 March: e-0 (22:30Z) is outside
    out = cli(
        "edr",
        "export",
        "--from",
        "2026-03-02",
        "--till",
        "2026-03-03",
        "--tz",
        "Europe/Madrid",
        "--fields",
        "external_id,event_at",
        "--format",
        "jsonl",
    ).jsonl
    assert [r["external_id"] for r in out] == ["e-1", "e-2", "e-3"]
    assert out[0]["event_at"] == "2026-03-02T00:30:00+01:00"


def test_filters(cli, db_url):
    add_edrs(db_url, 10)
    base = ["edr", "export", *WINDOW, "--fields", "external_id", "--format", "jsonl"]

    def ids(*args):
        return [r["external_id"] for r in cli(*base, *args).jsonl]

    assert ids("--country", "es") == ["e-0", "e-3", "e-6", "e-9"]
    assert ids("--status", "delivered", "--status", "seen") == ["e-0", "e-4", "e-5", "e-9"]
    assert ids("--campaign", "8", "--sender", "INFO") == ["e-1", "e-3", "e-5", "e-7", "e-9"]
    assert ids("--company", "1", "--channel", "whatsapp") == []
    bad = cli(*base, "--status", "bogus", expect=4)
    assert "bogus" in bad.stderr
    assert "unknown EDR field" in cli("edr", "export", *WINDOW, "--fields", "nope", expect=4).stderr
    assert cli("edr", "export", "--from", "2026-03-03", "--till", "2026-03-01", expect=4).exit_code == 4


def test_tsv_gzip_file_and_summary(cli, db_url, tmp_path):
    add_edrs(db_url, 5)
    f = tmp_path / "e.tsv.gz"
    got = cli.json("edr", "export", *WINDOW, "--out", str(f), "--fields", "id,status")
    assert (got["rows"], got["format"], got["gzip"]) == (5, "tsv", True)
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    assert lines[0] == "id\tstatus" and lines[1].endswith("\tdelivered") and len(lines) == 6


def test_xlsx_rolls_over_to_next_sheet(cli, db_url, tmp_path):
    add_edrs(db_url, 7)
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[export]\nxlsx_sheet_rows = 3\n")  # header + 2 rows per sheet
    f = tmp_path / "e.xlsx"
    got = cli.json("--config", str(cfg), "edr", "export", *WINDOW, "--out", str(f), "--fields", "external_id,segments")
    assert (got["rows"], got["sheets"]) == (7, 4)
    book = openpyxl.load_workbook(f, read_only=True)
    assert book.sheetnames == ["edr", "edr-2", "edr-3", "edr-4"]
    values = []
    for ws in book.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == ("external_id", "segments")
        values += [r[0] for r in rows[1:]]
    assert values == [f"e-{i}" for i in range(7)]


def test_email_to_real_smtp_server(cli, db_url, smtp_server, tmp_path):  # noqa: F811
    add_edrs(db_url, 3)
    got = cli.json("edr", "export", *WINDOW, "--email", "ops@client.test, cfo@client.test", "--fields", "external_id")
    assert got["emailed"] is True and "file" not in got
    (msg,) = smtp_server.messages
    assert msg["X-Envelope-To"] == "ops@client.test, cfo@client.test"
    (part,) = [p for p in msg.walk() if p.get_filename()]
    assert part.get_filename() == "edr-export.csv"
    assert part.get_payload(decode=True).decode().splitlines() == ["external_id", "e-0", "e-1", "e-2"]


def test_email_refused_over_size_limit_keeps_file(cli, db_url, smtp_server, tmp_path):  # noqa: F811
    add_edrs(db_url, 50)
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[smtp]\nmax_attachment_mb = 0.001\n")
    f = tmp_path / "big.csv"
    run = cli("--config", str(cfg), "edr", "export", *WINDOW, "--out", str(f), "--email", "a@b.test", "-o", "json")
    got = run.json
    assert got["emailed"] is False and "over the" in got["email_note"] and "over the" in run.stderr
    assert f.exists() and got["rows"] == 50 and smtp_server.messages == []


def _task(cli, *extra):
    return cli.json("edr", "export", *WINDOW, "--background", "--fields", "external_id,status", *extra)


def test_task_lifecycle(cli, db_url, tmp_path, smtp_server):  # noqa: F811
    add_edrs(db_url, 4)
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text(f'[export]\ndir = "{tmp_path / "exports"}"\n')
    c = ["--config", str(cfg)]
    t1 = _task(cli, "--country", "ES")
    assert (t1["state"], t1["filter"], t1["format"]) == ("waiting", {"country": "ES"}, "csv")
    t2 = _task(cli, "--email", "ops@client.test")
    t3 = _task(cli)
    # a waiting task has no file yet
    assert cli("edr", "export-task", "fetch", str(t1["id"]), "--out", str(tmp_path / "x"), expect=5).exit_code == 5
    assert cli.json("edr", "export-task", "cancel", str(t3["id"]))["state"] == "canceled"
    assert cli("edr", "export-task", "cancel", str(t3["id"]), expect=5).exit_code == 5
    counts = cli.json(*c, "edr", "export-task", "run")
    assert counts == {"processed": 2, "ready": 1, "sent": 1, "failed": 0, "canceled": 0}
    shown = cli.json("edr", "export-task", "show", str(t1["id"]))
    assert (shown["state"], shown["rows"]) == ("ready", 2)
    assert cli.json("edr", "export-task", "show", str(t2["id"]))["state"] == "sent"
    assert len(smtp_server.messages) == 1
    # a finished task can neither be canceled nor restarted
    assert cli("edr", "export-task", "cancel", str(t1["id"]), expect=5).exit_code == 5
    assert cli("edr", "export-task", "restart", str(t1["id"]), expect=5).exit_code == 5
    out = tmp_path / "t1.csv"
    assert cli.json("edr", "export-task", "fetch", str(t1["id"]), "--out", str(out))["rows"] == 2
    assert out.read_text().splitlines() == ["external_id,status", "e-0,delivered", "e-3,submitted"]
    # the canceled one is restarted and processed on its own
    assert cli.json("edr", "export-task", "restart", str(t3["id"]))["state"] == "waiting"
    assert cli.json(*c, "edr", "export-task", "run", str(t3["id"]))["ready"] == 1
    states = {r["id"]: r["state"] for r in cli.json("edr", "export-task", "list")}
    assert states == {t1["id"]: "ready", t2["id"]: "sent", t3["id"]: "ready"}
    assert [r["id"] for r in cli.json("edr", "export-task", "list", "--state", "sent")] == [t2["id"]]
    assert cli("edr", "export-task", "show", "999", expect=3).exit_code == 3


def test_task_failure_and_restart(cli, db_url, tmp_path):
    add_edrs(db_url, 2)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text(f'[export]\ndir = "{blocker}"\n')
    t = _task(cli)
    assert cli.json("--config", str(cfg), "edr", "export-task", "run")["failed"] == 1
    shown = cli.json("edr", "export-task", "show", str(t["id"]))
    assert shown["state"] == "failed" and shown["note"]
    assert cli.json("edr", "export-task", "restart", str(t["id"]))["state"] == "waiting"
    cfg.write_text(f'[export]\ndir = "{tmp_path / "ok"}"\n')
    assert cli.json("--config", str(cfg), "edr", "export-task", "run")["ready"] == 1


def test_claimed_task_is_not_taken_twice_until_stale(cli, db_url, tmp_path):
    from cpaas_cli.edr import tasks

    add_edrs(db_url, 1)
    t = _task(cli)
    engine = get_engine(db_url)
    assert tasks._claim(engine, None) == t["id"]
    assert tasks._claim(engine, None) is None  # claimed by the first worker
    with engine.begin() as conn:
        old = datetime.now(UTC) - STALE_CLAIM - timedelta(minutes=1)
        conn.execute(sa.update(tasks.T).values(started_at=old))
    assert tasks._claim(engine, None) == t["id"]  # a crashed worker's claim is taken over


def test_task_canceled_while_building_ends_canceled(cli, db_url, tmp_path, monkeypatch):
    from cpaas_cli.config import Settings
    from cpaas_cli.edr import export, tasks

    add_edrs(db_url, 2)
    t = _task(cli)
    real = export.write

    def write_then_cancel(*a, **kw):
        out = real(*a, **kw)
        cli.json("edr", "export-task", "cancel", str(t["id"]))
        return out

    monkeypatch.setattr(export, "write", write_then_cancel)
    settings = Settings(raw={"export": {"dir": str(tmp_path / "x")}})
    assert tasks.process_waiting(get_engine(db_url), settings=settings)["canceled"] == 1
    assert cli.json("edr", "export-task", "show", str(t["id"]))["state"] == "canceled"
    assert list((tmp_path / "x").iterdir()) == []


def test_scheduler_lists_the_export_job():
    from cpaas_cli.edr.tasks import process_waiting
    from cpaas_cli.scheduler.jobs import all_jobs

    assert [j.func for j in all_jobs() if j.name == "edr-export-tasks"] == [process_waiting]


def test_task_json_is_stable(cli, db_url):
    t = _task(cli, "--tz", "Europe/Madrid", "--gzip")
    assert set(t) >= {"id", "state", "from", "till", "fields", "format", "tz", "gzip", "emails", "rows", "note"}
    assert (t["from"], t["tz"], t["gzip"]) == ("2026-02-28T23:00:00Z", "Europe/Madrid", True)
    json.dumps(t)


def test_every_field_as_the_database_holds_it(cli, db_url):
    """The export reads the driver's raw values; they must say what the typed ORM values say."""
    from cpaas_cli.edr.export import ALL_FIELDS, MONEY_FIELDS, TIME_FIELDS
    from cpaas_cli.money import format_micros
    from cpaas_cli.timeutil import iso

    add_edrs(db_url, 4, unit_price=40_000, rating_note='a, "quoted" note\nover two lines')
    out = cli("edr", "export", *WINDOW, "--fields", "all").stdout
    got = list(csv.DictReader(io.StringIO(out)))
    with get_engine(db_url).connect() as conn:
        db_rows = conn.execute(sa.select(Edr.__table__).order_by(Edr.__table__.c.event_at)).mappings().all()
    assert len(got) == len(db_rows) == 4
    for row, want in zip(got, db_rows, strict=True):
        assert list(row) == ALL_FIELDS
        for f in ALL_FIELDS:
            v = want[f]
            text = iso(v) if f in TIME_FIELDS else format_micros(v) if f in MONEY_FIELDS else v
            assert row[f] == ("" if text is None else str(text)), f
    assert got[0]["rating_note"] == 'a, "quoted" note\nover two lines'


def test_rows_past_one_read_chunk_all_come_in_order(cli, db_url, monkeypatch):
    from cpaas_cli.edr import export

    monkeypatch.setattr(export, "STREAM_CHUNK", 3)
    add_edrs(db_url, 10)
    out = cli("edr", "export", *WINDOW, "--fields", "external_id", "--status", "delivered", "--status", "failed").stdout
    assert out.split() == ["external_id", "e-0", "e-2", "e-5", "e-7"]
    out = cli("edr", "export", *WINDOW, "--fields", "external_id", "--format", "jsonl").jsonl
    assert [r["external_id"] for r in out] == [f"e-{i}" for i in range(10)]


def test_xlsx_holds_what_csv_holds(cli, db_url, tmp_path):
    from python_calamine import CalamineWorkbook

    # vendor_service_id: the last column (an XLSX row keeps no trailing empty cell)
    add_edrs(db_url, 6, network="AT&T <Mobility>", vendor_error=" 0x0B ", label="otp", vendor_service_id=3)
    add_edrs(
        db_url, 1, tag="z", mnc="001", sender="BANK\x0bX", destination="0034600000001", label="2026-01-01",
        vendor_service_id=3,
    )  # fmt: skip
    csv_rows = list(csv.reader(io.StringIO(cli("edr", "export", *WINDOW, "--fields", "all").stdout)))
    f = tmp_path / "e.xlsx"
    cli.json("edr", "export", *WINDOW, "--fields", "all", "--out", str(f))
    by_openpyxl = list(openpyxl.load_workbook(f, read_only=True).active.iter_rows(values_only=True))
    by_calamine = CalamineWorkbook.from_path(str(f)).get_sheet_by_index(0).to_python()
    assert len(csv_rows) == len(by_openpyxl) == len(by_calamine) == 8
    for want, a, b in zip(csv_rows, by_openpyxl, by_calamine, strict=True):
        assert ["" if v is None else str(v) for v in a] == [v.replace("\x0b", "_x000B_") for v in want]
        assert ["" if v == "" else str(int(v)) if isinstance(v, float) else v for v in b] == want
    head = by_openpyxl[0]
    (z,) = [r for r in by_openpyxl if r[head.index("external_id")] == "e-z0"]
    assert (z[head.index("mnc")], z[head.index("destination")]) == ("001", "0034600000001")  # text stays text
