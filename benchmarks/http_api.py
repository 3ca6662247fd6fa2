"""HTTP API throughput: accepted ``POST /v1/messages`` per second from one
``cpaas serve --http --no-workers`` process (every message committed to the
outbound queue before its 202: group commit), p50/p99 latency, the latency at a
paced 500 requests/s, and the same framework's bare "hello" endpoint on the
same machine, loaded the same way, for the ratio (the framework's limit).

    .venv/bin/python benchmarks/http_api.py [--seconds S] [--concurrency N] [--rate R] [--db URL] [--tool wrk|httpx]

Load generator: ``wrk`` (C, one thread; a Lua script varies the number, and
for the paced phase waits a random time after each answer so that requests do
not come in bursts), a Debian package (``apt-get install wrk``); without it,
httpx with asyncio, which
itself spends more CPU per request than the server on this 2-core machine, so
its figures are the client's limit, not the server's (the script says which
it used). Defaults: 10 s per phase, 64 connections, a paced phase at 500/s
over 50 connections, a fresh SQLite file. Loopback only; bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
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
async def hello():
    return {"hello": "world"}
"""


def cli(url: str, *args: str, input: str | None = None) -> str:
    got = CliRunner().invoke(app, ["--db", url, "--actor", "bench", *args], input=input, catch_exceptions=False)
    if got.exit_code != 0:
        raise SystemExit(f"cpaas {' '.join(args)}: exit {got.exit_code}: {got.stderr}")
    return got.stdout


def prepare(url: str, smsc_port: int = 2775) -> str:
    """A client with a priced SMS agreement (no credit limit), sender ACME (its connection on
    ``smsc_port``), an API key; returns the key."""
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
    cli(url, "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", str(smsc_port), "--system-id", "x",
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


def _wrk(base: str, secs: int, concurrency: int, script: str | None, path: str) -> dict[str, float]:
    """wrk's figures: requests/s, p50/p99 ms, answers not 2xx plus socket errors; wrk's own output
    too when CPAAS_BENCH_DEBUG is set."""
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{secs}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, base + path], capture_output=True, text=True, timeout=secs + 60).stdout
    if os.environ.get("CPAAS_BENCH_DEBUG"):
        print(out)
    got: dict[str, float] = {"non2xx": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            got["rps"] = float(parts[1])
        elif parts[:1] in (["50%"], ["99%"]):
            got["p" + parts[0].rstrip("%")] = _ms(parts[1])
        elif line.strip().startswith("Non-2xx"):
            got["non2xx"] += float(parts[-1])
        elif line.strip().startswith("Socket errors"):
            got["non2xx"] += sum(int(x.strip(",")) for x in parts[3::2])
    return got


def _ms(text: str) -> float:
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    return float(text)


def _print(name: str, got: dict[str, float]) -> None:
    print(
        f"{name}: {got.get('rps', 0):,.0f}/s; p50 {got.get('p50', 0):.1f} ms, p99 {got.get('p99', 0):.1f} ms"
        f"{'; NOT 2xx: ' + str(int(got['non2xx'])) if got.get('non2xx') else ''}"
    )


PACED = """
local i = 0
math.randomseed(os.time())
request = function()
  i = i + 1
  local body = string.format('{"from":"ACME","to":"3463%07d","text":"Your code is 1234","label":"bench"}', i % 10000000)
  return wrk.format("POST", "/v1/messages", {["Authorization"]="Bearer KEY", ["Content-Type"]="application/json"}, body)
end
delay = function()
  return math.random(0, 2 * PERIOD)
end
"""

LUA = """
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"from":"ACME","to":"3462%07d","text":"Your code is 1234","label":"bench"}', i % 10000000)
  return wrk.format("POST", "/v1/messages", {["Authorization"]="Bearer KEY", ["Content-Type"]="application/json"}, body)
end
"""


def main() -> None:
    opt = {sys.argv[i]: sys.argv[i + 1] for i in range(1, len(sys.argv) - 1) if sys.argv[i].startswith("--")}
    secs = int(opt.get("--seconds", 10))
    concurrency = int(opt.get("--concurrency", 64))
    rate = float(opt.get("--rate", 500))
    tool = opt.get("--tool") or ("wrk" if shutil.which("wrk") else "httpx")
    tmp = tempfile.mkdtemp(prefix="cpaas-http-")
    url = opt.get("--db") or f"sqlite:///{Path(tmp) / 'http.db'}"
    from cryptography.fernet import Fernet

    os.environ.setdefault("CPAAS_SECRET_KEY", Fernet.generate_key().decode())
    os.environ.setdefault("CPAAS_PASSWORD_PROFILE", "fast")
    key = prepare(url)
    headers = {"Authorization": f"Bearer {key}"}
    print(f"load generator: {tool}; {url.split(':')[0]}")

    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "cpaas_cli", "--db", url, "-q", "serve", "--http", f"127.0.0.1:{port}", "--no-workers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, "/healthz", serve)
        if tool == "wrk":
            script = Path(tmp) / "post.lua"
            script.write_text(LUA.replace("KEY", key))
            _wrk(base, 2, concurrency, str(script), "/v1/messages")  # warm-up
            api = _wrk(base, secs, concurrency, str(script), "/v1/messages")
            _print(f"POST /v1/messages ({concurrency} connections, wrk)", api)
            # paced: each connection waits a random 0..2×PERIOD ms after an answer (no bursts)
            conns = 50
            period = max(1, int(conns * 1000 / rate) - 20)
            script = Path(tmp) / "paced.lua"
            script.write_text(PACED.replace("KEY", key).replace("PERIOD", str(period)))
            # steady state: let the saturated phase drain, then a short paced run that is not counted
            time.sleep(2)
            _wrk(base, 3, conns, str(script), "/v1/messages")
            paced = _wrk(base, secs, conns, str(script), "/v1/messages")
            _print(f"POST /v1/messages paced at about {rate:g}/s (wrk, {conns} connections)", paced)
            api_rps = api.get("rps", 0.0)
        else:

            async def send(client: httpx.AsyncClient, i: int) -> httpx.Response:
                body = {
                    "from": "ACME",
                    "to": f"3462{i % 10_000_000:07d}",
                    "text": "Your code is 1234",
                    "label": "bench",
                }
                return await client.post("/v1/messages", json=body, headers=headers)

            n = int(opt.get("--requests", 2000))
            lat, ok, took = asyncio.run(load(base, n, concurrency, None, send))
            api_rps = report(f"POST /v1/messages ({concurrency} in flight, httpx)", lat, ok, took)
            lat, ok, took = asyncio.run(load(base, min(n, int(rate * secs)), concurrency, rate, send))
            report(f"POST /v1/messages paced at {rate:g}/s (httpx)", lat, ok, took)
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
        if tool == "wrk":
            got = _wrk(hbase, secs, concurrency, None, "/hello")
            _print("GET /hello (bare FastAPI, async, same uvicorn, wrk)", got)
            hello_rps = got.get("rps", 0.0)
        else:

            async def get(client: httpx.AsyncClient, _i: int) -> httpx.Response:
                return await client.get("/hello")

            lat, ok, took = asyncio.run(load(hbase, int(opt.get("--requests", 2000)), concurrency, None, get))
            hello_rps = report("GET /hello (bare FastAPI, async, same uvicorn, httpx)", lat, ok, took)
    finally:
        hello.terminate()
        hello.wait(30)
    print(f"ratio: the API accepts {api_rps / hello_rps:.0%} of the bare framework's rate ({url.split(':')[0]})")


if __name__ == "__main__":
    main()
