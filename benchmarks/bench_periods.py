"""Throughput of the billing-period calculator.

Builds agreements with a few version changes in many zones and times
`periods()` over ten years, cold (empty midnight cache) and warm.

    .venv/bin/python benchmarks/bench_periods.py [AGREEMENTS]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

from cpaas_cli.billing import periods as calc


def build(n: int, rng: random.Random) -> list[list[calc.VersionTerms]]:
    zones = sorted(z for z in available_timezones() if "/" in z)
    out = []
    for _ in range(n):
        t = datetime(2016, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(24 * 365))
        versions = []
        for k in range(3):
            kind = rng.choice(["daily", "weekly", "monthly", "quarterly"])
            day = None if kind == "daily" else rng.randint(1, 7 if kind == "weekly" else 31)
            split = kind in ("daily", "weekly") and rng.random() < 0.5
            till = None if k == 2 else t + timedelta(days=rng.randrange(200, 1200))
            versions.append(calc.VersionTerms(t, till, kind, day, split, rng.choice(zones)))
            t = till or t
        out.append(versions)
    return out


def run(agreements: list[list[calc.VersionTerms]]) -> tuple[int, float]:
    start, end = datetime(2016, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    count = sum(len(calc.periods(vs, start, end)) for vs in agreements)
    return count, time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    agreements = build(n, random.Random(7))
    calc.local_midnight.cache_clear()
    for label in ("cold", "warm"):
        count, secs = run(agreements)
        print(
            f"{label}: {n} agreements x 10 years: {count} periods in {secs:.2f} s "
            f"({count / secs:,.0f} periods/s, {secs / n * 1000:.2f} ms/agreement)"
        )


if __name__ == "__main__":
    main()
