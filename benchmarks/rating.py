"""Rating throughput: the pure engine, then ingest + rate + store end to end.

1. Pure engine: a tree of ~200 countries × 10 networks (2,000+ priced leaves,
   some tier scales per sender ID, an Others fallback) plus a unit pack that
   covers one country; events are built first, then ``engine.rate`` +
   ``engine.apply`` are timed on one core. Twice: with one lookup-query dict
   per destination shared by its events (as `edr ingest`, `serve` and
   `rerate` build their events; the engine's route memo is then probed by the
   dict's identity), and with a new dict per event.
2. End to end: a fresh database (temporary SQLite file, or --db URL: an empty
   database, which the script migrates), an agreement with that service, the
   pack and a payment; an EDR CSV of --rows rows is written, then `edr ingest`
   (validate, rate, store, commit per 50,000-row chunk) is timed in-process,
   then the same file again (every row skipped as stored already).

    .venv/bin/python benchmarks/rating.py [--events 300000] [--rows 1000000] [--db URL] [--skip-engine] [--vendor]
        [--levels 3]

``--levels N``: the same ingest twice in one run, for a client of the owner and for a
client under N − 1 resellers (each level charged at its own plan: one more engine
decision, ledger row and reseller CDR per level and EDR); prints the ratio.

``--vendor``: the EDRs go through a connection whose vendor plan has the same
tree, so each one also gets its vendor cost (issue 29, item 3).

Targets: engine ≥ 200,000 EDR/s; ingest + rate + store ≥ 50,000 EDR/s on SQLite; at three
levels ≥ 40 % of the single-level rate of the same run.

Where the ingest time goes (1M rows, SQLite, 2 cores): SQLite's own insert
work (B-trees of the EDR and charge tables and their 8 indexes, ~670 MB) is
the largest part, then reading and the column-wise parse, the engine (about
3.5 s on one core), results and the insert parameters. Two things overlap or
shrink it: a chunk's commit (WAL frames and checkpoints, ~2 s in all) runs in
a thread while the next chunk is read and parsed, and values that every row
of a chunk shares (agreement, currency, rating time, ...) go into the INSERT
as SQL literals instead of one bound parameter per row (~1.3 s less). On
PostgreSQL the rows go through COPY.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import tree as tr
from cpaas_cli.cli.app import app
from cpaas_cli.db.engine import dispose_all, get_engine, session_scope
from cpaas_cli.edr import ingest as edrs
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def networks() -> list[tuple[str, str, str]]:
    countries, _ = dic.mcc_table()
    out = []
    for mcc in sorted(countries)[:210]:
        for mnc in range(1, 11):
            out.append((countries[mcc], mcc, f"{mnc:02d}"))
    return out


def tree_doc(nets) -> dict:
    by_country: dict[str, dict] = {}
    rng = random.Random(3)
    for i, (cc, mcc, mnc) in enumerate(nets):
        node = by_country.setdefault(cc, {"depends_on": "network", "children": {"others": {"price": "0.07"}}})
        if i % 50 == 0:
            leaf = {"scale": {"type": "tier", "steps": [[100, "0.05"], [None, "0.04"]]}, "counter_group": "sender_id"}
        else:
            leaf = {"price": f"{rng.randint(1000, 90000) / 1_000_000:.6f}"}
        node["children"][mcc + mnc] = leaf
    by_country["others"] = {"price": "0.1"}
    return {
        "tree": {
            "sms": {
                "depends_on": "resource",
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "billing_rule": "submitted",
                        "quantity_rule": "segments",
                        "children": {
                            "mo": {"price_type": "free"},
                            "mt": {"depends_on": "country", "children": by_country},
                        },
                    }
                },
            }
        }
    }


PACK_DOC = {
    "tree": {
        "sms": {
            "depends_on": "resource",
            "children": {
                "sms_message": {
                    "depends_on": "country",
                    "billing_rule": "submitted",
                    "quantity_rule": "segments",
                    "children": {"ES": {"price_type": "included"}, "others": {"price_type": "not_included"}},
                }
            },
        }
    }
}


def bench_engine(n: int, nets, *, shared: bool = True) -> None:
    doc = tree_doc(nets)
    snap = lk.Snapshot.of(tr.parse_document(doc), service_id=1, scope_id=1, currency="EUR")
    pack = lk.Snapshot.of(tr.parse_document(PACK_DOC), service_id=2, scope_id=2, currency=None)
    far = T0 - timedelta(days=365)
    entries = (
        en.Entry(1, en.PACK, "unit-pack", far, None, ((far, None, pack),), 50_000),
        en.Entry(2, en.PAYG, "payg", far, None, ((far, None, snap),)),
    )
    plan = en.Plan(1, "EUR", entries, lambda at: T0)
    rng = random.Random(5)
    events = []
    queries: dict[tuple[str, str, str], dict] = {}
    for i in range(n):
        cc, mcc, mnc = nets[rng.randrange(len(nets))]
        at = T0 + timedelta(microseconds=i)
        q = queries.get((cc, mcc, mnc)) if shared else None
        if q is None:
            q = lk.query(channel="sms", direction="mt", mccmnc=mcc + mnc, country=cc)
            if shared:
                queries[(cc, mcc, mnc)] = q
        events.append(en.Event(i, at, q, segments=1 + (i % 3 == 0), sender=f"S{i % 20}", submitted_at=at, final=True))
    state = en.State()
    t, c = time.perf_counter(), time.process_time()
    total = 0
    for ev in events:
        d = en.rate(ev, plan, state)
        en.apply(state, d)
        total += d.amount
    dt, dc = time.perf_counter() - t, time.process_time() - c
    leaves = sum(1 for _ in nets)
    how = "one query dict per destination" if shared else "a new query dict per event"
    print(
        f"engine ({how}): {n:,} events over {leaves:,} network leaves in {dt:.2f} s = {n / dt:,.0f} EDR/s "
        f"(one core; CPU {dc:.2f} s = {n / dc:,.0f} EDR/s per CPU second)"
    )


def cpaas(url: str, *args: str) -> None:
    r = CliRunner().invoke(app, ["--db", url, *args], catch_exceptions=False)
    if r.exit_code != 0:
        raise SystemExit(f"cpaas {' '.join(args)} failed: {r.output}")


def _sql(url: str, statement: str) -> None:
    import sqlalchemy as sa

    with get_engine(url).begin() as conn:
        conn.execute(sa.text(statement))


def _chain(url: str, levels: int, work: Path) -> None:
    """owner → Reseller 1 → … → Reseller (levels − 1) → Client A: each reseller buys on a
    purchase agreement (R<n>-PUR) linked to its legal entity, and sells its own SMS plan
    (the same tree) to the level below; AG-1 is the client's agreement."""
    seller = None
    for n in range(1, levels):
        name = f"Reseller {n}"
        args = ["tenant", "create", name, "--type", "reseller", "--creator-of-resellers"]
        cpaas(url, *args, *(["--parent", seller] if seller else []))
        cpaas(url, "tenant", "legal-entity", "add", f"R{n} LE", "--company", name, "--legal-name", f"R{n}",
              "--country", "ES", "--legal-id", f"B{n + 1}")  # fmt: skip
        cpaas(url, "agreement", "create", f"R{n}-PUR", "--company", name, "--currency", "EUR", "--from", "2026-01-01")
        plan = "SMS" if seller is None else f"SMS {seller}"
        cpaas(url, "agreement", "enable", plan, "--agreement", f"R{n}-PUR", "--from", "2026-01-01")
        cpaas(url, "payment", "add", "--agreement", f"R{n}-PUR", "--reference", f"P{n}", "--amount", "10000000",
              "--confirmed", "--date", "2026-01-01")  # fmt: skip
        _sql(url, f"INSERT INTO reselling_agreement (created_at, updated_at, legal_entity_id, agreement_id, "
                  f"effective_from) SELECT a.created_at, a.created_at, a.company_id, a.id, a.effective_from "
                  f"FROM agreement a WHERE a.code = 'R{n}-PUR'")  # fmt: skip
        _sql(
            url,
            f"UPDATE reselling_agreement SET legal_entity_id = (SELECT id FROM legal_entity "
            f"WHERE name = 'R{n} LE') WHERE agreement_id = (SELECT id FROM agreement WHERE code = 'R{n}-PUR')",
        )
        cpaas(url, "service", "create", f"SMS {name}", "--type", "payg", "--currency", "EUR")
        cpaas(url, "service", "scope", "add", f"SMS {name}", "--from", "2026-01-01")
        cpaas(url, "service", "tree", "apply", f"SMS {name}", str(work / "tree.json"))
        _sql(url, f"UPDATE service SET owner_company_id = (SELECT id FROM company WHERE name = '{name}') "
                  f"WHERE name = 'SMS {name}'")  # fmt: skip
        seller = name
    cpaas(url, "tenant", "create", "Client A", *(["--parent", seller] if seller else []))
    cpaas(url, "tenant", "legal-entity", "add", "CA", "--company", "Client A", "--legal-name", "CA", "--country", "FR")
    cpaas(url, "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    return seller


def bench_ingest(url: str, rows: int, nets, work: Path, *, vendor: bool = False, levels: int = 1) -> float:
    """The ingest rate (EDR/s) of ``rows`` EDRs charged at ``levels`` levels."""
    cpaas(url, "db", "upgrade")
    cpaas(url, "tenant", "legal-entity", "add", "Hub", "--company", "1", "--legal-name", "Hub SL", "--country", "ES",
          "--legal-id", "B1")  # fmt: skip
    (work / "tree.json").write_text(json.dumps(tree_doc(nets)))
    (work / "pack.json").write_text(json.dumps(PACK_DOC))
    cpaas(url, "service", "create", "SMS", "--type", "payg", "--currency", "EUR")
    cpaas(url, "service", "scope", "add", "SMS", "--from", "2026-01-01")
    cpaas(url, "service", "tree", "apply", "SMS", str(work / "tree.json"))
    seller = _chain(url, levels, work)
    client_plan = "SMS" if seller is None else f"SMS {seller}"
    cpaas(url, "service", "create", "ES pack", "--type", "unit-pack", "--size", "50000")
    cpaas(url, "service", "scope", "add", "ES pack", "--from", "2026-01-01")
    cpaas(url, "service", "tree", "apply", "ES pack", str(work / "pack.json"))
    if seller is not None:
        _sql(url, f"UPDATE service SET owner_company_id = (SELECT id FROM company WHERE name = '{seller}') "
                  "WHERE name = 'ES pack'")  # fmt: skip
    cpaas(url, "agreement", "enable", "ES pack", "--agreement", "AG-1", "--from", "2026-01-01", "--free")
    cpaas(url, "agreement", "enable", client_plan, "--agreement", "AG-1", "--from", "2026-01-01")
    cpaas(url, "payment", "add", "--agreement", "AG-1", "--reference", "P", "--amount", "10000000", "--confirmed",
          "--date", "2026-01-01")  # fmt: skip
    connection_id = None
    if vendor:  # a vendor plan with the same tree on a connection: each EDR gets its vendor cost
        cpaas(url, "service", "create", "Vendor", "--type", "vendor", "--currency", "EUR")
        cpaas(url, "service", "scope", "add", "Vendor", "--from", "2026-01-01")
        cpaas(url, "service", "tree", "apply", "Vendor", str(work / "tree.json"))
        cpaas(url, "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", "2775", "--system-id", "b",
              "--password-env", "SIM_PW", "--vendor-plan", "Vendor")  # fmt: skip
        connection_id = 1
    path = work / "edrs.csv"
    rng = random.Random(9)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["external_id", "agreement", "sender", "destination", "mccmnc", "segments", "submitted_at", "status"]
        )
        for i in range(rows):
            _cc, mcc, mnc = nets[rng.randrange(len(nets))]
            at = (T0 + timedelta(milliseconds=i)).isoformat()
            w.writerow([f"m{i}", "AG-1", f"S{i % 20}", f"3460{i:07d}", mcc + mnc, 1 + (i % 3 == 0), at, "submitted"])
    dispose_all()
    engine = get_engine(url)
    t, c = time.perf_counter(), time.process_time()
    with session_scope(engine, actor="bench", command="edr ingest") as s:
        out = edrs.ingest(s, path, connection_id=connection_id)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    rate = out["inserted"] / dt
    what = f"{engine.dialect.name}, {levels} level{'s' if levels > 1 else ''}" + (
        ", with vendor cost" if vendor else ""
    )
    print(
        f"ingest+rate+store ({what}): {out['inserted']:,} EDRs in {dt:.1f} s = "
        f"{rate:,.0f} EDR/s (this process's CPU {dc:.1f} s); {out}"
    )
    if levels > 1:
        import sqlalchemy as sa

        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT COUNT(*) FROM edr_level")).scalar()
            ch = conn.execute(sa.text("SELECT COUNT(*) FROM charge")).scalar()
        print(f"  reseller CDRs written: {n:,}; ledger rows: {ch:,}")
    t = time.perf_counter()
    with session_scope(engine, actor="bench", command="edr ingest") as s:
        again = edrs.ingest(s, path)
    print(f"re-ingest (all skipped): {time.perf_counter() - t:.1f} s; inserted {again['inserted']}")
    dispose_all()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--vendor", action="store_true", help="ingest through a connection with a vendor plan")
    ap.add_argument(
        "--levels", type=int, default=1, help="also ingest for a client under N−1 resellers (chain rating, RAT-10)"
    )
    a = ap.parse_args()
    nets = networks()
    if not a.skip_engine:
        bench_engine(a.events, nets)
        bench_engine(a.events, nets, shared=False)
    if a.skip_ingest:
        return
    if a.levels > 1 and a.db:
        raise SystemExit("--levels runs two fresh databases: give no --db (SQLite temporary files)")
    rates = {}
    for levels in sorted({1, a.levels}):
        with tempfile.TemporaryDirectory() as tmp:
            url = a.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
            rates[levels] = bench_ingest(url, a.rows, nets, Path(tmp), vendor=a.vendor, levels=levels)
    if a.levels > 1:
        print(
            f"{a.levels} levels: {rates[a.levels]:,.0f} EDR/s = {rates[a.levels] / rates[1] * 100:.0f} % of the "
            f"single-level rate of this run ({rates[1]:,.0f} EDR/s; target ≥ 40 %)"
        )


if __name__ == "__main__":
    main()
