"""Callback delivery throughput: outbox rows posted (signed, on keep-alive
HTTP/1.1 connections: ``httpclient.AsyncPoster``) per second to a local
receiver, by the sender as ``cpaas serve`` runs it (claim a batch with a
lease, post it concurrently, store the answers), in a process of its own.

The receiver is a bare Starlette app on uvicorn in another process on
127.0.0.1 (answers 204). Bounded: N rows (default 20,000), at most 120 s.
Generates its own data in a temporary SQLite database (or the database given).

    .venv/bin/python benchmarks/callbacks.py [N] [--db URL] [--concurrency C] [--batch B] [--senders P]

``--senders P`` runs P sender processes on the one outbox (each claims its
batches under a lease, as several ``cpaas serve`` processes do).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

DEADLINE_S = 120.0


def _receiver(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def cb(request):
        await request.body()
        return Response(status_code=204)

    app = Starlette(routes=[Route("/cb", cb, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=2048)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sender(url: str, key_text: str, batch: int, concurrency: int, n: int, results) -> None:
    """One sender process (as one `serve`): steps until nothing is due; puts its CPU seconds."""
    from datetime import timedelta

    from cpaas_cli import clock
    from cpaas_cli.callbacks.sender import Sender, SenderOptions
    from cpaas_cli.db.engine import get_engine
    from cpaas_cli.secretbox import Keyring

    sender = Sender(
        get_engine(url),
        Keyring([key_text], "CPAAS_SECRET_KEY"),
        options=SenderOptions(batch=batch, concurrency=concurrency),
    )
    sender.claim(clock.now() - timedelta(days=1))  # connect and warm up (claims nothing: no row is due then)
    cpu0 = time.process_time()
    started = time.time()
    try:
        while time.time() - started < DEADLINE_S and sender.step():
            pass
    finally:
        sender.close()
        results.put((time.process_time() - cpu0, started, time.time()))


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _opt(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def main() -> None:
    args = [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and not sys.argv[i - 1].startswith("--")]
    n = min(int(args[0]) if args else 20_000, 500_000)
    url = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else None
    url = url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='cpaas-cb-')) / 'cb.db'}"
    from cryptography.fernet import Fernet

    os.environ.setdefault("CPAAS_SECRET_KEY", Fernet.generate_key().decode())
    os.environ["CPAAS_PASSWORD_PROFILE"] = "fast"

    import sqlalchemy as sa

    from cpaas_cli import clock
    from cpaas_cli.callbacks import service as callbacks
    from cpaas_cli.callbacks.sender import SenderOptions
    from cpaas_cli.callbacks.signing import RETRY_FOR
    from cpaas_cli.db import bulk, migrate
    from cpaas_cli.db.engine import get_engine, session_scope
    from cpaas_cli.identity import apikeys, keys, users
    from cpaas_cli.models.callbacks import CallbackOutbox
    from cpaas_cli.secretbox import Keyring
    from cpaas_cli.tenancy import service as tenancy

    port = _free_port()
    rx = multiprocessing.Process(target=_receiver, args=(port,), daemon=True)
    rx.start()
    migrate.upgrade(url)
    engine = get_engine(url)
    key_text = os.environ["CPAAS_SECRET_KEY"].split(",")[0]
    ring = Keyring([key_text], "CPAAS_SECRET_KEY")
    with session_scope(engine, actor="bench") as s:
        owner, _ = tenancy.ensure_owner(s)
        u = users.create(
            s,
            company=owner.id,
            data=users.UserInput(login="cbbench", first_name="B", last_name="U"),
            roles=["Admin"],
        )
        key, _text = apikeys.create(s, keys.from_texts([key_text]), user=u, name="bench")
        callbacks.set_callback(s, ring, key, url=f"http://127.0.0.1:{port}/cb")
        key_id = key.id
        now = clock.now()
        t = CallbackOutbox.__table__
        bulk.writer(s).insert(
            t,
            {
                "api_key_id": [key_id] * n,
                "transaction_id": [str(i) for i in range(n)],
                "dnis": ["447900000001"] * n,
                "status": ["DELIVERED"] * n,
                "event_at": [now] * n,
                "channel": ["SMS"] * n,
                "state": ["pending"] * n,
                "attempts": [0] * n,
                "next_at": [now] * n,
                "give_up_at": [now + RETRY_FOR] * n,
                "created_at": [now] * n,
            },
        )
    for _ in range(200):  # the receiver is up
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    opts = SenderOptions(batch=_opt("--batch", 1000), concurrency=_opt("--concurrency", 100))
    senders = max(1, min(_opt("--senders", 1), 8))
    engine.dispose()  # the sender processes open their own connections
    rx_cpu0 = _cpu_of(rx.pid)
    try:
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_sender, args=(url, key_text, opts.batch, opts.concurrency, n, results))
            for _ in range(senders)
        ]
        for p in procs:
            p.start()
        got = [results.get(timeout=DEADLINE_S + 60) for _ in procs]
        for p in procs:
            p.join()
    finally:
        rx_cpu = _cpu_of(rx.pid) - rx_cpu0
        rx.terminate()
    cpu = sum(g[0] for g in got)
    seconds = max(g[2] for g in got) - min(g[1] for g in got)  # from the first step to the last answer stored
    with engine.connect() as conn:
        done = conn.execute(sa.select(sa.func.count()).where(t.c.state == "delivered")).scalar_one()
    print(f"database: {engine.dialect.name}")
    print(f"callbacks delivered: {done} of {n} in {seconds:.2f} s: {done / seconds:,.0f}/s")
    print(
        f"(batch {opts.batch}, {opts.concurrency} in flight, {senders} sender process(es) sharing the outbox "
        "as several `serve` processes do, signed HMAC-SHA256, lease + settle per batch)"
    )
    if done:
        # CPU per callback: what the figure costs on a machine shared with other work
        print(
            f"CPU per 1,000 callbacks: sender {cpu / done * 1000:.2f} s, receiver {rx_cpu / done * 1000:.2f} s "
            f"(a sender could do {done / cpu:,.0f}/s on a core of its own; load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
