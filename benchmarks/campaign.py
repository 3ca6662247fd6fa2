"""Campaign throughput: segment counting, and creating + starting a personalised campaign.

    .venv/bin/python benchmarks/campaign.py [RECIPIENTS] [--db URL]

Defaults: 1,000,000 recipients on a fresh SQLite file in a temporary
directory. Generates a CSV (phone, first name, code), sets up a client,
agreement, priced SMS service and sender ID through the CLI, then times:

* count_segments over 1,000,000 generated mixed texts (and analyse, for scale);
* `campaign create` from the file (read, normalise, de-duplicate, insert);
* `campaign send`, i.e. materialising one rendered outbound message per
  recipient (render, count, bulk insert, price, credit check).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segments import make  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cpaas_cli.campaigns import drafts, lifecycle, recipients  # noqa: E402
from cpaas_cli.cli.app import app  # noqa: E402
from cpaas_cli.db.engine import get_engine, make_session  # noqa: E402
from cpaas_cli.messaging.segments import analyse, count_segments  # noqa: E402

TREE = Path(__file__).resolve().parent.parent / "tests" / "data" / "example1.yaml"


def cli(url: str, *args: str) -> None:
    r = CliRunner().invoke(app, ["--db", url, "-q", *args], catch_exceptions=False)
    if r.exit_code != 0:
        raise SystemExit(f"cpaas {' '.join(args)}: exit {r.exit_code}\n{r.stderr}")


def bench_segments(n: int = 1_000_000) -> None:
    texts = make(n)
    t0 = time.perf_counter()
    total = sum(count_segments(t) for t in texts)
    dt = time.perf_counter() - t0
    print(f"count_segments   {n / dt:>12,.0f} msgs/s   ({dt:.2f} s, {n:,} texts, {total:,} segments)")
    sample = texts[:100_000]
    t0 = time.perf_counter()
    sum(analyse(t).segments for t in sample)
    dt = time.perf_counter() - t0
    print(f"analyse          {len(sample) / dt:>12,.0f} msgs/s   (for comparison)")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--db")]
    n = int(args[0]) if args else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="cpaas-bench-"))
    url = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--db=")), f"sqlite:///{tmp / 'bench.db'}")
    bench_segments()

    rnd = random.Random(6)
    names = ["Ana", "Luis", "Marta", "Jean", "Søren", "Zoë", "Олег", "Chloé"]
    f = tmp / "recipients.csv"
    with f.open("w", encoding="utf-8") as fh:
        fh.write("phone,first_name,code\n")
        for i in range(n):
            prefix = rnd.choice(("+346", "+336", "+447"))
            fh.write(f"{prefix}{i:08d},{rnd.choice(names)},{rnd.randint(1000, 999999)}\n")

    cli(url, "db", "upgrade")
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
    cli(url, "tenant", "legal-entity", "add", "A LE", "--company", "Client A", "--legal-name", "A", "--country", "ES")
    cli(url, "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli(url, "service", "create", "SMS", "--type", "payg", "--currency", "EUR")
    cli(url, "service", "scope", "add", "SMS", "--from", "2026-01-01")
    cli(url, "service", "tree", "apply", "SMS", str(TREE))
    cli(url, "agreement", "enable", "SMS", "--agreement", "AG-1", "--from", "2026-01-01")
    cli(url, "sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active")

    engine = get_engine(url)
    text = "Hola {{ first_name }}, tu código es {{ code }}. Responde STOP para no recibir más."
    s = make_session(engine, actor="bench", command="benchmark")
    t0, p0 = time.perf_counter(), time.process_time()
    c = drafts.create(s, company="Client A", sender="ACME", text=text, files=[recipients.FileSource(str(f))])
    s.commit()
    dt_create, cpu_create = time.perf_counter() - t0, time.process_time() - p0
    print(
        f"campaign create  {n / dt_create:>12,.0f} recipients/s ({dt_create:.1f} s, CPU {cpu_create:.1f} s, "
        f"{c.recipients:,} recipients)"
    )
    t0, p0 = time.perf_counter(), time.process_time()
    out = lifecycle.send(s, c)
    s.commit()
    dt, cpu = time.perf_counter() - t0, time.process_time() - p0
    e = out.estimate
    print(
        f"campaign send    {n / dt:>12,.0f} messages/s   ({dt:.1f} s, CPU {cpu:.1f} s, to materialise {c.messages:,} personalised "
        f"messages, {c.segments:,} segments, estimate {e.cost / 1e6 if e else 0:,.2f} {c.currency})"
    )
    s.close()
    print(f"database: {url}")


if __name__ == "__main__":
    main()
