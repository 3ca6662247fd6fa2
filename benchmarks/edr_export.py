"""EDR export and summary throughput on SQLite, against a raw `sqlite3 -csv` dump.

    .venv/bin/python benchmarks/edr_export.py [--rows 1000000] [--dir /tmp/edr-bench]

Builds a migrated SQLite database, bulk-inserts N EDRs (executemany, not
through ingest), then runs each step as its own `cpaas` process and reports
wall time, that process's CPU time (user + sys) and its peak RSS (os.wait4);
on a shared machine the CPU time is the steadier figure:

  * `cpaas edr export` to CSV and to XLSX (the default 20 fields),
  * `cpaas report summary --by day,country`,
  * `sqlite3 -csv` selecting the same rows and columns (the physical limit).

Targets (issue 8): CSV ≤ 10 s, XLSX ≤ 90 s, RSS ≤ 300 MB, summary ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPAAS = str(ROOT / ".venv" / "bin" / "cpaas")


def default_fields() -> list[str]:
    """The export's default fields, asked of a child: importing cpaas_cli here would grow this
    process, and a child's peak RSS as wait4 reports it starts from its parent's size at fork."""
    code = "from cpaas_cli.edr.export import DEFAULT_FIELDS as F; print(','.join(F))"
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return out.stdout.strip().split(",")


def run(cmd: list[str], *, stdout=subprocess.DEVNULL) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    return dt, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def build(db: Path, n: int) -> None:
    if db.exists():
        db.unlink()
    subprocess.run([CPAAS, "--db", f"sqlite:///{db}", "db", "upgrade"], check=True, capture_output=True)
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    rnd = random.Random(8)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    nets = [("214", "01", "ES", "Vodafone ES"), ("214", "07", "ES", "Movistar"), ("208", "01", "FR", "Orange")]
    nets += [("262", "01", "DE", "Telekom"), ("234", "15", "GB", "Vodafone UK"), ("222", "10", "IT", "Vodafone IT")]
    statuses = ["delivered"] * 8 + ["undelivered", "failed", "submitted", "seen"]
    cols = (
        "id, external_id, company_id, campaign_id, sender, channel, direction, destination, mcc, mnc, country, "
        "network, encoding, segments, status, event_at, submitted_at, delivered_at, rating_state, billing_rule, "
        "unit_price, quantity, cost, currency, ingested_at"
    )
    sql = f"INSERT INTO edr ({cols}) VALUES ({', '.join(['?'] * 25)})"
    step = timedelta(days=30) / n
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    chunk = []
    for i in range(1, n + 1):
        at = start + step * i
        mcc, mnc, cc, net = nets[i % len(nets)]
        st = statuses[rnd.randrange(len(statuses))]
        seg = 1 + (i % 7 == 0)
        t = at.replace(tzinfo=None).strftime(fmt)
        dl = (at + timedelta(seconds=3)).replace(tzinfo=None).strftime(fmt) if st == "delivered" else None
        chunk.append(
            (
                i,
                f"gw-{i:09d}",
                1,
                1 + i % 40,
                ("ACME", "INFO", "BANK")[i % 3],
                "sms",
                "mt",
                f"34600{i:07d}",
                mcc,
                mnc,
                cc,
                net,
                "gsm7",
                seg,
                st,
                t,
                t,
                dl,
                "rated",
                "submitted",
                4000,
                seg,
                4000 * seg,
                "EUR",
                t,
            )
        )
        if len(chunk) == 50_000:
            con.executemany(sql, chunk)
            chunk = []
    if chunk:
        con.executemany(sql, chunk)
    con.commit()
    con.execute("ANALYZE")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/edr-bench")
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    db = d / "bench.db"
    t0 = time.perf_counter()
    build(db, args.rows)
    print(f"built {args.rows:,} EDRs in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
    url = f"sqlite:///{db}"
    window = ["--from", "2026-03-01", "--till", "2026-04-01"]
    base = [CPAAS, "-q", "--db", url]
    results = []

    # the physical limit: sqlite3's own CSV writer over the same rows and columns, times left as stored
    if shutil.which("sqlite3"):
        cols = ", ".join(default_fields())
        q = (
            f"SELECT {cols} FROM edr WHERE event_at >= '2026-03-01 00:00:00.000000' "
            "AND event_at < '2026-04-01 00:00:00.000000' ORDER BY event_at, id;"
        )
        with open(d / "raw.csv", "wb") as fh:
            raw = run(["sqlite3", "-csv", "-header", str(db), q], stdout=fh)
        results.append(("sqlite3 -csv (raw dump)", *raw, (d / "raw.csv").stat().st_size))
    else:
        raw = None
        print("sqlite3 shell not found: no raw baseline")

    csv_ = run([*base, "edr", "export", *window, "--out", str(d / "e.csv")])
    results.append(("cpaas edr export → CSV", *csv_, (d / "e.csv").stat().st_size))
    gz = run([*base, "edr", "export", *window, "--out", str(d / "e.csv.gz")])
    results.append(("cpaas edr export → CSV.gz", *gz, (d / "e.csv.gz").stat().st_size))
    xlsx = run([*base, "edr", "export", *window, "--out", str(d / "e.xlsx")])
    results.append(("cpaas edr export → XLSX", *xlsx, (d / "e.xlsx").stat().st_size))
    summ = run([*base, "report", "summary", *window, "--by", "day,country", "-o", "json"])
    results.append(("cpaas report summary --by day,country", *summ, 0))
    summ_tz = run([*base, "report", "summary", *window, "--by", "day,country", "--tz", "Europe/Madrid", "-o", "json"])
    results.append(("  … same with --tz Europe/Madrid", *summ_tz, 0))

    print(f"\n{'step':42} {'seconds':>8} {'CPU s':>7} {'peak RSS MB':>12} {'file MB':>8}")
    for name, secs, cpu, rss, size in results:
        print(f"{name:42} {secs:8.2f} {cpu:7.2f} {rss:12.0f} {size / 1e6:8.1f}")
    if raw:
        print(f"\nCSV export / raw sqlite3 dump: {csv_[0] / raw[0]:.1f}× wall, {csv_[1] / raw[1]:.1f}× CPU")
    ok = csv_[0] <= 10 and xlsx[0] <= 90 and max(csv_[2], xlsx[2]) <= 300 and summ[0] <= 2
    print("targets (CSV ≤ 10 s, XLSX ≤ 90 s, RSS ≤ 300 MB, summary ≤ 2 s):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
