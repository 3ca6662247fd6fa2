"""Dispatch throughput through one SMPP bind against the local simulated SMSC.

    .venv/bin/python benchmarks/dispatch.py [--messages 5000] [--window 50] [--rps 500] [--rps-messages 3000]

1. messages/s with receipts: submit N messages through one bind (window W, no
   RPS limit) and wait for every submit_sm_resp and every delivery receipt.
2. the RPS limit: the same with --rps R, printing the achieved submit rate
   against the configured one.

The SMSC (`cpaas dev smsc`) runs in its own process, as a vendor would.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from cpaas_cli.dispatch.gateway import DeliveryReceipt, OutboundMessage, SubmitAccepted, SubmitRejected
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
    end = time.monotonic() + timeout
    while (accepted + rejected < n or receipts < accepted) and time.monotonic() < end:
        while fed < n and gw.backlog() < 2 * window:
            gw.submit(OutboundMessage.single("BENCH", f"3361{fed:07d}", b"benchmark message %d" % fed))
            fed += 1
        for e in gw.poll(0.01):
            if isinstance(e, SubmitAccepted):
                accepted += 1
            elif isinstance(e, DeliveryReceipt):
                receipts += 1
            elif isinstance(e, SubmitRejected):
                rejected += 1
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
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--rps", type=int, default=500)
    ap.add_argument("--rps-messages", type=int, default=3000)
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
        r = run(port, args.rps_messages, args.window, args.rps)
        # The first submit goes at t0 and the bucket starts full (burst), so count intervals, not submits.
        achieved = r["submitted"] / r["submit_elapsed"]
        dev = (achieved - args.rps) / args.rps * 100
        print(
            f"rps limit: configured {args.rps}/s, achieved {achieved:,.1f}/s over {r['submitted']} submits "
            f"({dev:+.2f}%); {r['accepted']} accepted, {r['receipts']} receipts"
        )
    finally:
        smsc.kill()
        smsc.wait(10)


if __name__ == "__main__":
    main()
