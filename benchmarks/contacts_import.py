"""Contact import throughput: generate a file and import it through the CLI, in-process.

    .venv/bin/python benchmarks/contacts_import.py [--rows 1000000] [--xlsx-rows 200000]
        [--db sqlite:////tmp/bench.db | postgresql://postgres@127.0.0.1:5432/bench]

The CSV has mixed phone formats (+34 …, 0034…, national with spaces, dots,
dashes and parentheses), 5% invalid numbers, 2% duplicate numbers and three
custom fields (text, number, date). It is imported with --skip-invalid (the
invalid rows are expected), then imported again in upsert mode; then an XLSX
file is imported into a fresh group. Prints rows/s per run and the peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from cpaas_cli.cli.app import app
from cpaas_cli.db.engine import dispose_all, normalise_url


def phone_text(n: int, rnd: random.Random) -> str:
    digits = f"6{n:08d}"
    kind = rnd.randrange(6)
    if kind == 0:
        return f"+34 {digits[:3]} {digits[3:6]} {digits[6:]}"
    if kind == 1:
        return f"0034{digits}"
    if kind == 2:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    if kind == 3:
        return f"({digits[:3]}) {digits[3:5]}.{digits[5:7]}.{digits[7:]}"
    if kind == 4:
        return f"34{digits}"
    return digits


def generate_rows(rows: int, seed: int = 7):
    rnd = random.Random(seed)
    cities = ["Madrid", "Sevilla", "Bilbao", "Valencia", "Zaragoza"]
    for i in range(rows):
        r = rnd.random()
        if r < 0.05:
            phone = rnd.choice(["12345", "+999 123 456", "phone?", "+34 6123", ""])
        elif r < 0.07 and i > 10:
            phone = phone_text(rnd.randrange(i), rnd)  # a number already used earlier in the file
        else:
            phone = phone_text(i, rnd)
        yield [
            phone,
            f"Name{i}",
            f"Surname{i}",
            rnd.choice(cities),
            str(rnd.randrange(18, 90)),
            f"2024-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}",
        ]


HEADER = ["Mobile", "First", "Last", "City", "Age", "Since"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(";".join(HEADER) + "\n")
        for r in generate_rows(rows):
            fh.write(";".join(r) + "\n")


def write_xlsx(path: Path, rows: int) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("Contacts")
    ws.append(HEADER)
    for r in generate_rows(rows, seed=11):
        ws.append(r)
    book.save(path)


def cli(db: str, *args: str) -> str:
    result = CliRunner().invoke(app, ["--db", db, "-q", *args], catch_exceptions=False)
    if result.exit_code != 0:
        sys.exit(f"cpaas {' '.join(args)} failed ({result.exit_code}): {result.stderr[-2000:]}")
    return result.stdout


def timed_import(db: str, label: str, path: Path, group: str, extra: list[str]) -> None:
    t0 = time.perf_counter()
    out = cli(
        db,
        "contacts",
        "import",
        str(path),
        "-c",
        "Bench",
        "-g",
        group,
        "--create-group",
        "-m",
        "phone=Mobile",
        "-m",
        "first_name=First",
        "-m",
        "last_name=Last",
        "-m",
        "field:city=City",
        "-m",
        "field:age=Age",
        "-m",
        "field:since=Since",
        "--default-country",
        "ES",
        "--skip-invalid",
        "--max-size",
        "500",
        "-o",
        "json",
        *extra,
    )
    dt = time.perf_counter() - t0
    import json

    res = json.loads(out)
    print(
        f"{label:<28} {res['read']:>9} rows  {dt:7.1f} s  {res['read'] / dt:9.0f} rows/s  "
        f"ins={res['inserted']} upd={res['updated']} rej={res['rejected']} dup={res['duplicates']}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=200_000)
    ap.add_argument("--db", default=None, help="database URL (default a fresh SQLite file)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cpaas-bench-"))
    db = args.db or f"sqlite:///{work / 'bench.db'}"
    if db.startswith("postgres"):
        url = sa.engine.make_url(normalise_url(db))
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
            c.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
        admin.dispose()
    csv_path, xlsx_path = work / "contacts.csv", work / "contacts.xlsx"
    t0 = time.perf_counter()
    write_csv(csv_path, args.rows)
    if args.xlsx_rows:
        write_xlsx(xlsx_path, args.xlsx_rows)
    print(
        f"generated {args.rows} CSV rows ({csv_path.stat().st_size / 1e6:.0f} MB) and {args.xlsx_rows} XLSX rows "
        f"in {time.perf_counter() - t0:.0f} s; database {db.split('://')[0]}",
        flush=True,
    )
    cli(db, "db", "upgrade")
    cli(
        db,
        "tenant",
        "legal-entity",
        "add",
        "Hub",
        "--company",
        "1",
        "--legal-name",
        "Hub SL",
        "--country",
        "ES",
        "--legal-id",
        "B1",
    )
    cli(db, "tenant", "create", "Bench")
    cli(db, "contacts", "field", "add", "City", "-c", "Bench")
    cli(db, "contacts", "field", "add", "Age", "--type", "number", "-c", "Bench")
    cli(db, "contacts", "field", "add", "Since", "--type", "date", "-c", "Bench")
    timed_import(db, "CSV first import", csv_path, "All", [])
    timed_import(db, "CSV re-import (upsert)", csv_path, "All", ["--mode", "upsert"])
    if args.xlsx_rows:
        timed_import(db, "XLSX import (new group)", xlsx_path, "Sheet", ["--sheet", "Contacts"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    dispose_all()


if __name__ == "__main__":
    main()
