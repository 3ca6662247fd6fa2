"""Dispatch throughput through one SMPP bind against the local simulated SMSC.

    .venv/bin/python benchmarks/dispatch.py [--messages 5000] [--window 50] [--rps 500] [--rps-seconds 30]

1. messages/s with receipts: submit N messages through one bind (window W, no
   RPS limit) and wait for every submit_sm_resp and every delivery receipt.
2. the RPS limit: the same with --rps R for --rps-seconds S (R x S messages),
   printing the achieved submit rate over the whole run against the configured
   one, and the lowest and highest rate seen in any whole 1-second and
   5-second window.

The SMSC (`cpaas dev smsc`) runs in its own process, as a vendor would.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from cpaas_cli.dispatch.gateway import DeliveryReceipt, SubmitAccepted, SubmitRejected, WireMessage
from cpaas_cli.dispatch.smpp import SmppGateway, SmppSettings
from cpaas_cli.dispatch.smsc import free_port


def start_smsc(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cpaas_cli", "dev", "smsc", "--port", str(port), "--lifetime", "300"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the simulated SMSC did not start")


def run(port: int, n: int, window: int, rps: int | None, timeout: float = 120.0) -> dict:
    gw = SmppGateway(
        SmppSettings(
            name="bench", host="127.0.0.1", port=port, system_id="bench", password="pw", window=window, rps=rps
        )
    )
    gw.open()
    accepted = receipts = rejected = fed = 0
    t0 = time.perf_counter()
    last_submit = None
    samples: list[tuple[float, int]] = []  # (seconds since t0, submits written so far)
    end = time.monotonic() + timeout
    while (accepted + rejected < n or receipts < accepted) and time.monotonic() < end:
        while fed < n and gw.backlog() < 2 * window:
            gw.submit(WireMessage.single("BENCH", f"3361{fed:07d}", b"benchmark message %d" % fed))
            fed += 1
        for e in gw.poll(0.01):
            if isinstance(e, SubmitAccepted):
                accepted += 1
            elif isinstance(e, DeliveryReceipt):
                receipts += 1
            elif isinstance(e, SubmitRejected):
                rejected += 1
        samples.append((time.perf_counter() - t0, gw.stats.submitted))
        if last_submit is None and gw.stats.submitted >= n:
            last_submit = time.perf_counter()
    elapsed = time.perf_counter() - t0
    gw.close()
    return {
        "accepted": accepted,
        "receipts": receipts,
        "rejected": rejected,
        "retried": gw.stats.retried,
        "elapsed": elapsed,
        "submit_elapsed": (last_submit or time.perf_counter()) - t0,
        "submitted": gw.stats.submitted,
        "samples": samples,
    }


def window_rates(samples: list[tuple[float, int]], span: float, width: float) -> list[float]:
    """Submit rates over consecutive whole windows of ``width`` seconds within
    [0, span): the count at an edge is the last sample taken at or before it
    (the loop samples every ~10 ms)."""
    edges = [k * width for k in range(int(span // width) + 1)]
    counts, i, last = [], 0, 0
    for edge in edges:
        while i < len(samples) and samples[i][0] <= edge:
            last = samples[i][1]
            i += 1
        counts.append(last)
    return [(b - a) / width for a, b in zip(counts, counts[1:], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--rps", type=int, default=500)
    ap.add_argument("--rps-seconds", type=int, default=30)
    args = ap.parse_args()
    port = free_port()
    smsc = start_smsc(port)
    try:
        r = run(port, args.messages, args.window, None)
        print(
            f"throughput: {r['accepted']} accepted, {r['receipts']} receipts, {r['rejected']} rejected, "
            f"{r['retried']} retried in {r['elapsed']:.2f}s -> {r['accepted'] / r['elapsed']:,.0f} msg/s with receipts "
            f"(window {args.window}, one bind)"
        )
        r = run(port, args.rps * args.rps_seconds, args.window, args.rps, timeout=args.rps_seconds * 3 + 60)
        # The first submit goes at t0 and the bucket starts full (burst), so count intervals, not submits.
        achieved = r["submitted"] / r["submit_elapsed"]
        dev = (achieved - args.rps) / args.rps * 100
        print(
            f"rps limit: configured {args.rps}/s, achieved {achieved:,.1f}/s over {r['submitted']} submits in "
            f"{r['submit_elapsed']:.2f}s ({dev:+.2f}%); {r['accepted']} accepted, {r['receipts']} receipts"
        )
        for width in (1.0, 5.0):
            rates = window_rates(r["samples"], r["submit_elapsed"], width)
            if rates:
                lo, hi = min(rates), max(rates)
                print(
                    f"  {len(rates)} whole {width:g}-second windows: lowest {lo:,.1f}/s "
                    f"({(lo - args.rps) / args.rps * 100:+.2f}%), highest {hi:,.1f}/s "
                    f"({(hi - args.rps) / args.rps * 100:+.2f}%)"
                )
    finally:
        smsc.kill()
        smsc.wait(10)


if __name__ == "__main__":
    main()
