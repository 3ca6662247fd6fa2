"""Rerate throughput: N EDRs ingested and rated (as in benchmarks/rating.py),
then every pay-as-you-go price raised and the whole window re-rated.

    .venv/bin/python benchmarks/rerate.py --rows 1000000            # SQLite
    .venv/bin/python benchmarks/rerate.py --rows 10000000 --db postgresql://…

Prints the timed `rerate run` (all EDRs re-rated, ~every one changes cost,
one ledger row each) and the idempotent second run, each with its wall time
and this process's CPU time (on PostgreSQL the server's CPU is not in it).
Targets: 1,000,000 EDRs in ≤ 30 s on SQLite; 10,000,000 in ≤ 5 minutes on
PostgreSQL. ``--levels 3``: the EDRs of a client under two resellers; the
owner's plan rises and the top reseller's level (its reseller CDRs) is
re-rated, within the same target.

SQLite, 1M EDRs, 2 cores, 2026-12-08, fresh databases one after the other:
single level 20.3 s (9.8 s with rates unchanged); the top reseller's level of a
client under two resellers (2M reseller CDRs, 3M ledger rows) 21.0 s (10.8 s).
Before, in the same session: 30.3 s single level (a test run beside it) and 33.6 s for the level. The
difference: the staged UPDATE … FROM of the changed rows (db/bulk_sqlite.py) had
SQLite scan the whole target table per 50k chunk (1M CDRs: 6.8 s → 1.9 s; 1M
EDRs: 5.4 s → 3.2 s), and the level's read packs its columns as the EDR read
does. Where a level's 21 s go: the read with each CDR's Σ of ledger rows ~7 s,
the engine and the loop ~6 s, the ledger rows ~5 s, the CDR update ~1 s, the
commit ~1.5 s.

PostgreSQL, 10M EDRs, 2 cores, a throwaway server (shared_buffers=4GB,
max_wal_size=32GB, checkpoint_timeout=30min, fsync on): 281 s for the
rerate (client CPU 143 s), 288 s for a second one (--reuse --rise 20) on
the same table, 136 s with rates unchanged. Before migration 0018 it took
688-723 s: the EDR pages were full after the ingest, so no UPDATE of the
price columns was HOT and each new row version took an entry in every index
of the table (~27 µs a row, four fifths of it index upkeep). With the
pages half filled (fillfactor 50) the updates stay in their page. The
ledger COPY comes next (~10-17 µs a row, the foreign key check on
agreement ~2-7 µs of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from rating import bench_ingest, cpaas, networks, tree_doc  # noqa: E402

from cpaas_cli.db.engine import dispose_all, get_engine, session_scope  # noqa: E402
from cpaas_cli.rerate import tasks as rerate  # noqa: E402


def raise_prices(node: object, percent: int = 10) -> None:
    """Every price in the tree document up by ``percent`` % (exact decimals, to the micro-unit)."""
    if isinstance(node, dict):
        if "price" in node:
            node["price"] = str((Decimal(node["price"]) * (100 + percent) / 100).quantize(Decimal("0.000001")))
        for v in node.values():
            raise_prices(v, percent)


def timed_run(url: str, label: str, company: str = "Client A") -> dict:
    engine = get_engine(url)
    with session_scope(engine, actor="bench", command="rerate") as s:
        t = time.perf_counter()
        task = rerate.create(
            s,
            time_from=rerate.clock.now().replace(year=2026, month=3, day=1, hour=0, minute=0, second=0, microsecond=0),
            time_till=rerate.clock.now().replace(year=2026, month=4, day=1, hour=0, minute=0, second=0, microsecond=0),
            company=company,
            draft=True,
        )
        s.commit()
        est = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        res = rerate.run(s, task.id)
        dt, dc = time.perf_counter() - t, time.process_time() - c
    # a reseller's level counts its reseller CDRs apart from EDRs (RR-04)
    pre, what = ("cdr_", "reseller CDRs") if res.get("cdr_processed") else ("", "EDRs")
    n = res[f"{pre}processed"]
    print(
        f"{label} ({engine.dialect.name}): estimate {est:.1f} s; run {n:,} {what} in {dt:.1f} s "
        f"(CPU {dc:.1f} s) = {n / dt:,.0f}/s; updated {res[f'{pre}updated']:,}, "
        f"unchanged {res[f'{pre}unchanged']:,}, failed {res[f'{pre}failed']:,}"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="the --db of an earlier run: no ingest; prices --rise %% above the base tree, then the two timed runs",
    )
    ap.add_argument("--rise", type=int, default=10, help="price rise in %% over the base tree (default 10)")
    ap.add_argument(
        "--levels",
        type=int,
        default=1,
        help="the client under N−1 resellers; the owner's plan rises and the top reseller's level is re-rated",
    )
    a = ap.parse_args()
    if a.reuse and not a.db:
        ap.error("--reuse needs --db")
    nets = networks()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = a.db or f"sqlite:///{work / 'bench.db'}"
        if not a.reuse:
            bench_ingest(url, a.rows, nets, work, levels=a.levels)
        doc = tree_doc(nets)
        raise_prices(doc, a.rise)
        (work / "tree2.json").write_text(json.dumps(doc))
        cpaas(url, "service", "tree", "apply", "SMS", str(work / "tree2.json"))
        dispose_all()
        # With resellers, the owner's plan is what Reseller 1 buys at: its reseller CDRs are re-rated.
        who = "Client A" if a.levels == 1 else "Reseller 1"
        timed_run(url, f"rerate after a price rise ({who})", who)
        timed_run(url, f"rerate again, rates unchanged ({who})", who)
        dispose_all()


if __name__ == "__main__":
    main()
