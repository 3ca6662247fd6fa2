"""HTTP API throughput: accepted ``POST /v1/messages`` per second from one
``cpaas serve --http --no-workers`` process (every message committed to the
outbound queue before its 202), p50/p99 latency, and the same framework's bare
"hello" endpoint on the same machine for the ratio (the framework's limit).

    .venv/bin/python benchmarks/http_api.py [REQUESTS] [--concurrency N] [--rate R] [--db URL]

Defaults: 2,000 requests, 32 concurrent, a fresh SQLite file. ``--rate R`` paces
the requests at R per second (latency at a given load, e.g. 500). Loopback only;
bounded in count and in time (120 s per phase). The load generator is httpx
with asyncio.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cpaas_cli.cli.app import app  # noqa: E402
from cpaas_cli.dispatch.smsc import free_port  # noqa: E402

TREE = Path(__file__).resolve().parent.parent / "tests" / "data" / "example1.yaml"
PHASE_LIMIT = 120.0
HELLO = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/hello")
def hello():
    return {"hello": "world"}
"""


def cli(url: str, *args: str, input: str | None = None) -> str:
    got = CliRunner().invoke(app, ["--db", url, "--actor", "bench", *args], input=input, catch_exceptions=False)
    if got.exit_code != 0:
        raise SystemExit(f"cpaas {' '.join(args)}: exit {got.exit_code}: {got.stderr}")
    return got.stdout


def prepare(url: str) -> str:
    """A client with a priced SMS agreement (no credit limit), sender ACME, an API key; returns the key."""
    import json

    cli(url, "init", "--owner", "Hub")
    cli(url, "tenant", "legal-entity", "add", "Hub SL", "--company", "1", "--legal-name", "Hub S.L.", "--country", "ES",
        "--legal-id", "B00000001")  # fmt: skip
    cli(url, "tenant", "create", "Client A")
    cli(url, "tenant", "legal-entity", "add", "Client A LE", "--company", "Client A", "--legal-name", "Client A Legal",
        "--country", "FR")  # fmt: skip
    cli(url, "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli(url, "service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli(url, "service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli(url, "service", "tree", "apply", "SMS service", str(TREE))
    cli(url, "agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    cli(url, "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", "2775", "--system-id", "x",
        "--password-env", "SIM_PW")  # fmt: skip
    cli(url, "sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active", "--connection", "sim")
    cli(url, "user", "create", "bench", "--company", "Client A", "--first-name", "B", "--last-name", "U",
        "--department", "Admin", "--role", "Admin", "--password-stdin", input="Start-pass1\n")  # fmt: skip
    return json.loads(cli(url, "apikey", "create", "--user", "bench", "--name", "bench", "-o", "json"))["key"]


def wait_up(base: str, path: str, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.get(base + path, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise SystemExit("server did not come up")


async def load(base: str, n: int, concurrency: int, rate: float | None, request) -> tuple[list[float], int, float]:
    """n requests, at most ``concurrency`` in flight (paced at ``rate``/s when given): latencies, accepted, seconds."""
    lat: list[float] = []
    ok = 0
    todo = iter(range(n))
    start = time.perf_counter()
    deadline = start + PHASE_LIMIT

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        for i in todo:
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            r = await request(client, i)
            lat.append(time.perf_counter() - t0)
            ok += r.status_code in (200, 202)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return lat, ok, time.perf_counter() - start


def report(name: str, lat: list[float], ok: int, secs: float) -> float:
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0]] * 99
    rps = ok / secs
    print(
        f"{name}: {ok}/{len(lat)} accepted in {secs:.2f} s: {rps:,.0f}/s; p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"
    )
    return rps


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args and args[0].isdigit() else 2000
    opt = {sys.argv[i]: sys.argv[i + 1] for i in range(1, len(sys.argv) - 1) if sys.argv[i].startswith("--")}
    concurrency = int(opt.get("--concurrency", 32))
    rate = float(opt["--rate"]) if "--rate" in opt else None
    tmp = tempfile.mkdtemp(prefix="cpaas-http-")
    url = opt.get("--db") or f"sqlite:///{Path(tmp) / 'http.db'}"
    from cryptography.fernet import Fernet

    os.environ.setdefault("CPAAS_SECRET_KEY", Fernet.generate_key().decode())
    os.environ.setdefault("CPAAS_PASSWORD_PROFILE", "fast")
    key = prepare(url)
    headers = {"Authorization": f"Bearer {key}"}

    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "cpaas_cli", "--db", url, "-q", "serve", "--http", f"127.0.0.1:{port}", "--no-workers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, "/healthz", serve)

        async def send(client: httpx.AsyncClient, i: int) -> httpx.Response:
            body = {"from": "ACME", "to": f"3462{i % 10_000_000:07d}", "text": "Your code is 1234", "label": "bench"}
            return await client.post("/v1/messages", json=body, headers=headers)

        lat, ok, secs = asyncio.run(load(base, n, concurrency, rate, send))
        api_rps = report(
            f"POST /v1/messages ({'paced ' + str(rate) + '/s' if rate else f'{concurrency} in flight'})", lat, ok, secs
        )
    finally:
        serve.terminate()
        serve.wait(30)

    hello_port = free_port()
    hello = subprocess.Popen(
        [sys.executable, "-c", HELLO + f"\nimport uvicorn\nuvicorn.run(app, host='127.0.0.1', port={hello_port}, log_level='warning', access_log=False)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    hbase = f"http://127.0.0.1:{hello_port}"
    try:
        wait_up(hbase, "/hello", hello)

        async def get(client: httpx.AsyncClient, _i: int) -> httpx.Response:
            return await client.get("/hello")

        lat, ok, secs = asyncio.run(load(hbase, n, concurrency, rate, get))
        hello_rps = report("GET /hello (bare FastAPI, same uvicorn)", lat, ok, secs)
    finally:
        hello.terminate()
        hello.wait(30)
    print(f"ratio: the API accepts {api_rps / hello_rps:.0%} of the bare framework's rate ({url.split(':')[0]})")


if __name__ == "__main__":
    main()
