"""End-to-end dispatch throughput through `cpaas serve --once`, with receipts.

    .venv/bin/python benchmarks/serve.py [MESSAGES] [--db URL] [--processes N] [--kill] [--vendor]

Defaults: 20,000 messages, window 50, a fresh SQLite file, one serve process.
Sets up a client, agreement, priced SMS service, sender ID and a connection to
`cpaas dev smsc` (a subprocess), sends a campaign and times `serve --once`
(claim, EDR + charge, submit, submit_sm_resp, receipt, final rating).
`--processes 2` runs two serve processes at once (PostgreSQL: they share the
queue with SKIP LOCKED). `--kill` kills the first serve with SIGKILL once the
SMSC has accepted a third of the messages (a moment unrelated to serve's
commits) and restarts it: the 20,000-message crash check, with the figures the
crash test asserts on printed: numbers the SMSC saw twice (at most the window,
50), receipts lost (closed as no_receipt; none). `--vendor` attaches a vendor
plan (the same tree) to the connection: each EDR also gets its vendor cost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cpaas_cli.cli.app import app  # noqa: E402
from cpaas_cli.db.engine import get_engine  # noqa: E402
from cpaas_cli.db.migrate import upgrade  # noqa: E402
from cpaas_cli.dispatch.smsc import free_port  # noqa: E402

TREE = Path(__file__).resolve().parent.parent / "tests" / "data" / "example1.yaml"


def cli(url: str, *args: str) -> dict:
    r = CliRunner().invoke(app, ["--db", url, "--actor", "bench", *args, "-o", "json"], catch_exceptions=False)
    if r.exit_code != 0:
        raise SystemExit(f"cpaas {' '.join(args)}: {r.stderr or r.stdout}")
    return json.loads(r.stdout) if r.stdout.strip() else {}


def cpaas(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cpaas_cli", "--db", url, *args]


def count(url: str, sql: str) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def main() -> None:
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 20_000
    url = args[args.index("--db") + 1] if "--db" in args else None
    procs = int(args[args.index("--processes") + 1]) if "--processes" in args else 1
    kill = "--kill" in args
    vendor = "--vendor" in args
    tmp = Path(tempfile.mkdtemp(prefix="cpaas-serve-bench-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    port = free_port()
    cli(url, "init", "--owner", "Bench Hub")
    cli(
        url,
        "tenant",
        "legal-entity",
        "add",
        "Hub SL",
        "--company",
        "1",
        "--legal-name",
        "Hub S.L.",
        "--country",
        "ES",
        "--legal-id",
        "B1",
    )
    cli(url, "tenant", "create", "Client A")
    cli(url, "tenant", "legal-entity", "add", "A LE", "--company", "Client A", "--legal-name", "A", "--country", "FR")
    cli(url, "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli(url, "service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli(url, "service", "scope", "add", "SMS service", "--from", "2026-01-01")
    CliRunner().invoke(app, ["--db", url, "service", "tree", "apply", "SMS service", str(TREE)])
    cli(url, "agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    cli(url, "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", str(port), "--system-id", "bench",
        "--password-env", "SIM_PW", "--window", "50", "--message-id-format", "hex")  # fmt: skip
    if vendor:
        cli(url, "service", "create", "Vendor", "--type", "vendor", "--currency", "EUR")
        cli(url, "service", "scope", "add", "Vendor", "--from", "2026-01-01")
        CliRunner().invoke(app, ["--db", url, "service", "tree", "apply", "Vendor", str(TREE)])
        cli(url, "connection", "update", "sim", "--vendor-plan", "Vendor")
    cli(url, "sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active", "--connection", "sim")
    f = tmp / "to.csv"
    f.write_text("phone\n" + "".join(f"3460{i:07d}\n" for i in range(n)))
    c = cli(url, "campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f), "--text", "Bench")
    cli(url, "campaign", "send", str(c["id"]))
    env = {**os.environ, "SIM_PW": "pw"}
    rec = tmp / "smsc.txt"
    smsc = subprocess.Popen(
        cpaas(url, "dev", "smsc", "--port", str(port), "--id-width", "10", "--lifetime", "3600", "--record", str(rec)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)
    serve = cpaas(url, "-q", "serve", "--once", "--receipt-timeout", "5", "--receipt-expiry", "0", "-o", "json")
    try:
        t0 = time.perf_counter()
        if kill:
            first = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not rec.exists() or len(rec.read_text().splitlines()) < n // 3:
                time.sleep(0.005)
            first.send_signal(signal.SIGKILL)
            first.wait()
            claimed = count(url, "SELECT count(*) FROM outbound_message WHERE state = 'claimed'")
            sending = count(url, "SELECT count(*) FROM outbound_message WHERE state = 'sending'")
            print(f"killed serve with SIGKILL; rows at the kill: {claimed} claimed (not sent), {sending} sending")
        runs = [subprocess.Popen(serve, env=env, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
        outs = [json.loads(p.communicate()[0]) for p in runs]
        secs = time.perf_counter() - t0
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait()
    sent = sum(o["submitted"] for o in outs)
    receipts = sum(o["receipts"] for o in outs)
    backend = sa.engine.make_url(url).get_backend_name()
    waits = sum(o["seconds"] for o in outs) / len(outs)
    print(f"{backend}, {procs} serve process(es), window 50: {n:,} messages in {secs:.1f}s wall "
          f"(serve --once {waits:.1f}s each) -> {n / secs:,.0f} messages/s with receipts")  # fmt: skip
    print(f"submitted {sent:,}, receipts {receipts:,}, per process {[o['submitted'] for o in outs]}")
    edrs = count(url, "SELECT count(*) FROM edr")
    final = count(url, "SELECT count(*) FROM edr WHERE status IN ('delivered','undelivered','failed')")
    charges = count(url, "SELECT count(*) FROM charge WHERE kind = 'edr'")
    dup_charges = count(url, "SELECT count(*) FROM (SELECT edr_id FROM charge GROUP BY edr_id HAVING count(*) > 1) d")
    no_receipt = count(url, "SELECT count(*) FROM edr WHERE vendor_error = 'no_receipt'")
    seen = Counter(line.split()[1] for line in rec.read_text().splitlines())
    if vendor:
        costed = count(url, "SELECT count(*) FROM edr WHERE vendor_cost IS NOT NULL")
        print(f"EDRs with a vendor cost: {costed:,}")
    print(f"EDRs {edrs:,} (final {final:,}), charges {charges:,} (EDRs charged twice: {dup_charges}), "
          f"numbers sent twice at the SMSC: {sum(v - 1 for v in seen.values())} (window 50), "
          f"receipts lost (no_receipt): {no_receipt}, recovery: {[o['recovery'] for o in outs]}")  # fmt: skip


if __name__ == "__main__":
    main()
