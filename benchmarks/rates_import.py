"""Rate import and lookup throughput.

Generates a 50,000-row rate sheet (Country, Network, MCCMNC, Price) as CSV and
XLSX, imports each into a fresh SMS service (through the same code as
`cpaas rates import`, one transaction each) and times it; then times in-process
price lookups over the imported tree.

    .venv/bin/python benchmarks/rates_import.py [--rows 50000] [--db URL]

Default database: a temporary SQLite file. Targets: CSV ≤ 10 s, XLSX ≤ 20 s,
lookups ≥ 50,000/s.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from pathlib import Path

import openpyxl

from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import importer
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.db.engine import get_engine, session_scope
from cpaas_cli.db.migrate import upgrade
from cpaas_cli.rating import lookup as lk

SKELETON = {
    "tree": {
        "sms": {
            "children": {
                "sms_message": {
                    "depends_on": "direction",
                    "billing_rule": "submitted",
                    "quantity_rule": "segments",
                    "children": {"mt": {"depends_on": "country", "children": {"others": {"price": "0.1"}}}},
                }
            }
        }
    }
}


def make_rows(n: int) -> list[list[str]]:
    countries, _ = dic.mcc_table()
    rng = random.Random(7)
    rows = [["Country", "Network", "MCCMNC", "Price"]]
    for i in range(n):
        mcc = sorted(countries)[i // 1000]
        mnc = f"{i % 1000:03d}"
        name = dic.country_name(countries[mcc])
        rows.append([name, f"Net {mcc}-{mnc}", mcc + mnc, f"{rng.randint(1000, 90000) / 1_000_000:.6f}"])
    return rows


def run_import(url: str, name: str, path: Path) -> tuple[float, int]:
    engine = get_engine(url)
    with session_scope(engine, actor="bench") as s:
        svc = catalog.create(s, name=name, type="payg", currency="EUR")
        sc = catalog.scope_add(s, svc, effective_from=None, draft=True)
        catalog.tree_apply(s, svc, sc, SKELETON)
    t0 = time.perf_counter()
    with session_scope(engine, actor="bench") as s:
        res = importer.run(
            s,
            path=path,
            service_ref=name,
            scope_id=None,
            node_path="sms/sms_message/mt",
            maps={"country": "Country", "network": "Network", "mccmnc": "MCCMNC", "price": "Price"},
            actor="bench",
        )
    elapsed = time.perf_counter() - t0
    assert res.written and not res.errors, res.errors[:3]
    return elapsed, res.rows_imported


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cpaas-bench-"))
    url = args.db or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    rows = make_rows(args.rows)
    csv_path = tmp / "rates.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    xlsx_path = tmp / "rates.xlsx"
    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("Rates")
    for r in rows:
        ws.append(r)
    book.save(xlsx_path)

    t_csv, n = run_import(url, "bench csv", csv_path)
    print(f"CSV  import: {n:,} rows in {t_csv:.2f} s ({n / t_csv:,.0f} rows/s)")
    t_xlsx, n = run_import(url, "bench xlsx", xlsx_path)
    print(f"XLSX import: {n:,} rows in {t_xlsx:.2f} s ({n / t_xlsx:,.0f} rows/s)")

    engine = get_engine(url)
    with session_scope(engine) as s:
        svc = catalog.get(s, "bench csv")
        sc = catalog.pick_scope(s, svc, None)
        t0 = time.perf_counter()
        snap = lk.Snapshot.of(tr.load(s, sc.id), currency="EUR")
        print(f"snapshot load: {time.perf_counter() - t0:.2f} s")
    keys = [r[2] for r in rows[1:]]
    countries, _ = dic.mcc_table()
    queries = [
        lk.query(channel="sms", mccmnc=k, country=countries[k[:3]]) for k in random.Random(1).choices(keys, k=100_000)
    ]
    queries += [lk.query(channel="sms", mccmnc="99999", country="ZZ")] * 1000
    for q in queries[:5000]:  # warm-up
        lk.resolve(snap, q)
    t0 = time.perf_counter()
    found = sum(1 for q in queries if lk.resolve(snap, q).found)
    dt = time.perf_counter() - t0
    print(f"lookups: {len(queries):,} in {dt:.2f} s = {len(queries) / dt:,.0f}/s ({found:,} priced)")


if __name__ == "__main__":
    main()
