"""`cpaas serve`: dispatch workers (one thread and one bind each) plus the
APScheduler jobs (start due campaigns, complete finished ones, close messages
whose receipt never came, and every job of :func:`jobs.all_jobs`).

Long-running mode runs until SIGTERM/SIGINT, then stops claiming, lets the
in-flight windows finish (their submit_sm_resp are stored), commits and exits.
``once`` mode does what is due, sends every queued message of running
campaigns, waits for the receipts (up to ``receipt_timeout`` seconds of
silence) and returns a summary (``awaiting_receipts``: submitted messages
whose receipt has still not come; ``held``: queued messages of disabled
companies).

Several processes may share one PostgreSQL database: the queue is claimed with
``FOR UPDATE SKIP LOCKED`` and each job run takes a transaction-level advisory
lock, so a job runs in one process at a time.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from cpaas_cli import clock
from cpaas_cli.callbacks import retention as callback_retention
from cpaas_cli.callbacks.sender import Sender, SenderOptions
from cpaas_cli.campaigns import holds
from cpaas_cli.campaigns import lifecycle as campaigns
from cpaas_cli.db import checkpoint
from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.dispatch import aftercrash, connections, receipt_match
from cpaas_cli.dispatch import worker as wk
from cpaas_cli.errors import CpaasError, Upstream
from cpaas_cli.models.campaigns import OutboundMessage as QueueRow
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.scheduler.jobs import Job, all_jobs
from cpaas_cli.secretbox import Keyring

log = logging.getLogger("cpaas.serve")


@dataclass
class ServeOptions:
    once: bool = False
    workers: int = 1  # per connection
    receipt_timeout: float = 30.0
    receipt_expiry: float = 48 * 3600.0  # submitted this long without a receipt → undelivered (no_receipt)
    max_seconds: float | None = None
    stale_after: float = 600.0  # claims older than this are taken back from other hosts' workers
    worker: wk.WorkerOptions = field(default_factory=wk.WorkerOptions)
    # For tests and benchmarks: (connection) -> gateway; default builds an SmppGateway from the row.
    gateway_factory: Callable[[VendorConnection], Any] | None = None
    # Decrypt the passwords stored encrypted (cpaas_cli/secretbox.py); None: no key configured.
    keys: Keyring | None = None
    # The callback sender (cpaas_cli/callbacks/sender.py); None: no callbacks posted by this process.
    callbacks: SenderOptions | None = field(default_factory=SenderOptions)
    # How long delivered and dead-lettered callbacks are kept (the hourly callback-purge job).
    callback_retention: callback_retention.Retention = field(default_factory=callback_retention.Retention)
    # Run beside the workers (the HTTP API of --http): objects with start() and stop().
    services: list[Any] = field(default_factory=list)
    no_workers: bool = False  # only the services (serve --http --no-workers): no workers, no scheduler


# ---------------------------------------------------------------- jobs


def _locked(session, name: str) -> bool:
    """PostgreSQL: one process runs a job at a time (advisory lock until commit)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"cpaas-job:{name}".encode()) & 0x7FFFFFFF
    return bool(session.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def start_due_job(engine: Engine) -> dict[str, Any]:
    s = make_session(engine, actor="serve", command="serve job start_due")
    try:
        if not _locked(s, "start_due"):
            return {"skipped": 1}
        out = campaigns.start_due(s)
        s.commit()
        return {"started": sum(o.started for o in out), "not_started": sum(not o.started for o in out)}
    finally:
        s.close()


def complete_job(engine: Engine) -> dict[str, Any]:
    s = make_session(engine, actor="serve", command="serve job complete_finished")
    try:
        if not _locked(s, "complete_finished"):
            return {"skipped": 1}
        done = campaigns.complete_finished(s)
        s.commit()
        if done:
            log.info("campaigns completed: %s", done)
        return {"completed": len(done)}
    finally:
        s.close()


def expire_job(engine: Engine, older_than: float) -> dict[str, Any]:
    s = make_session(engine, actor="serve", command="serve job expire_receipts")
    try:
        if not _locked(s, "expire_receipts"):
            return {"skipped": 1}
        n = receipt_match.expire_receipts(s, older_than=older_than)
        s.commit()
        return {"closed": n}
    finally:
        s.close()


def serve_jobs(options: ServeOptions) -> list[Job]:
    expiry = options.receipt_expiry
    keep = options.callback_retention
    return [
        Job("start_due_campaigns", start_due_job, 10),
        Job("complete_finished_campaigns", complete_job, 5),
        Job("expire_receipts", lambda engine: expire_job(engine, expiry), 300),
        Job("callback-purge", lambda engine: callback_retention.purge_job(engine, keep), 3600),
        *all_jobs(),
    ]


_JOB_REGISTRY: dict[str, Callable[[Engine], Any]] = {}


_ENGINES: dict[str, Engine] = {}  # url → the engine of the `serve` running on it (its pool and profile)


def run_job(url: str, name: str) -> None:
    """What the APScheduler job store references (a plain module-level function with text args)."""
    func = _JOB_REGISTRY.get(name)
    if func is None:
        return
    try:
        got = func(_ENGINES.get(url) or get_engine(url))
        if got and any(got.values()):
            log.info("job %s: %s", name, got)
    except Exception:
        log.exception("job %s failed", name)


def make_scheduler(url: str, jobs: list[Job]):
    """A BackgroundScheduler whose job store is a table of the same database."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from cpaas_cli.db.engine import normalise_url

    if normalise_url(url).startswith("postgresql"):  # its own small pool, named cpaas-serve:scheduler
        store = SQLAlchemyJobStore(engine=get_engine(url, part="scheduler"), tablename="apscheduler_jobs")
    else:
        store = SQLAlchemyJobStore(url=normalise_url(url), tablename="apscheduler_jobs")
    sched = BackgroundScheduler(
        jobstores={"default": store},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone="UTC",
    )
    for job in jobs:
        _JOB_REGISTRY[job.name] = job.func
        sched.add_job(
            "cpaas_cli.scheduler.serve:run_job",
            "interval",
            seconds=job.every_seconds,
            args=[url, job.name],
            id=job.name,
            name=job.name,
            replace_existing=True,
        )
    return sched


# ---------------------------------------------------------------- workers


def held_now(engine: Engine, *, quiet: bool = False) -> list[dict[str, Any]]:
    """Queued messages held because their company is disabled (logged at the start, in the summary at the end)."""
    s = make_session(engine, actor="serve")
    try:
        held = holds.held_summary(s)
    finally:
        s.close()
    for h in [] if quiet else held:
        log.warning("holding %s queued message(s) of %s campaign(s): %s", h["messages"], h["campaigns"], h["reason"])
    return held


def enabled_binds(engine: Engine) -> int:
    """Enabled SMPP connections: serve runs ``--workers`` threads (binds) for each."""
    t = VendorConnection.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c.enabled.is_(True), t.c.kind == "smpp")).scalar_one()


def awaiting_receipts(engine: Engine) -> int:
    """Messages submitted whose receipt has not come yet (any run's)."""
    q = QueueRow.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(q.c.state == "submitted")).scalar_one()


def _connections(engine: Engine, once: bool) -> tuple[list[VendorConnection], int | None]:
    """Enabled SMPP connections (with --once: only those with messages that may
    go, not held ones), and the default route (the only enabled connection, for senders with none)."""
    s = make_session(engine, actor="serve")
    try:
        rows = list(
            s.exec(
                select(VendorConnection)
                .where(VendorConnection.enabled.is_(True), VendorConnection.kind == "smpp")
                .order_by(VendorConnection.id)
            )
        )
        default = rows[0].id if len(rows) == 1 else None
        if once:
            q = QueueRow.__table__
            wanted = set(
                s.execute(
                    sa.select(q.c.connection_id)
                    .where(
                        q.c.state.in_(["queued", "claimed"]),
                        q.c.campaign_id.in_(holds.sendable_campaigns()),
                    )
                    .distinct()
                ).scalars()
            )
            if None in wanted and default is not None:
                wanted.add(default)
            rows = [r for r in rows if r.id in wanted]
        for r in rows:
            s.expunge(r)
        return rows, default
    finally:
        s.close()


def _gateway_factory(options: ServeOptions, row: VendorConnection) -> Callable[[], Any]:
    if options.gateway_factory is not None:
        return lambda: options.gateway_factory(row)
    # Resolves the password now (fail early). Receipts and MO are answered only
    # after the worker has committed them (the worker calls gateway.ack).
    settings = connections.smpp_settings(row, keys=options.keys, defer_acks=True)

    def make():
        from cpaas_cli.dispatch.txrx import make_gateway

        return make_gateway(settings)

    return make


def run(url: str, options: ServeOptions) -> dict[str, Any]:
    """Run `serve` (see the module docstring); returns the summary."""
    engine = get_engine(url)
    _ENGINES[url] = engine
    started = time.monotonic()
    stop = threading.Event()
    summary: dict[str, Any] = {"mode": "once" if options.once else "serve", "started_at": clock.now().isoformat()}

    # Recover dead workers' claims, then run what is due once.
    s = make_session(engine, actor="serve", command="serve recover")
    try:
        summary["recovery"] = aftercrash.recover(s, stale_after=options.stale_after)
        s.commit()
    finally:
        s.close()
    summary["started_campaigns"] = start_due_job(engine).get("started", 0)
    held_now(engine)

    scheduler = None
    if not options.once and not options.no_workers:
        scheduler = make_scheduler(url, serve_jobs(options))
        scheduler.start()
    started_services = []

    previous = {}
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum, _frame):
            log.warning("signal %s: finishing in-flight windows, then exiting", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)

    workers: list[wk.Worker] = []
    threads: list[threading.Thread] = []
    sender, cb_thread = None, None
    # SQLite: the WAL checkpoint in a thread of its own, not in whichever commit fills it (db/checkpoint.py)
    ckpt = None if options.once else checkpoint.for_engine(engine)
    try:
        for service in ([ckpt] if ckpt is not None else []) + list(options.services):
            service.start()
            started_services.append(service)
        rows, default = ([], None) if options.no_workers else _connections(engine, options.once)
        for row in rows:
            make = _gateway_factory(options, row)
            for _n in range(max(1, options.workers)):
                wopts = wk.WorkerOptions(
                    **{
                        **options.worker.__dict__,
                        "once": options.once,
                        "receipt_timeout": options.receipt_timeout,
                        "default_route": row.id == default,
                    }
                )
                w = wk.Worker(engine, row, make, name=wk.worker_name(len(workers)), options=wopts, stop=stop)
                workers.append(w)
        for w in workers:
            t = threading.Thread(target=w.run, name=w.name, daemon=True)
            t.start()
            threads.append(t)
        if options.callbacks is not None and not options.once and not options.no_workers:
            sender = Sender(engine, options.keys, options=options.callbacks)
            cb_thread = threading.Thread(target=sender.run, args=(stop,), name="callbacks", daemon=True)
            cb_thread.start()
        while any(t.is_alive() for t in threads) or (not options.once and not stop.is_set()):
            if options.max_seconds is not None and time.monotonic() - started >= options.max_seconds:
                if not stop.is_set():
                    log.warning("--max-seconds reached: stopping")
                stop.set()
            for t in threads:
                t.join(0.1)
            if not threads:
                stop.wait(0.2)
    finally:
        stop.set()
        for service in reversed(started_services):
            service.stop()
        for t in threads:
            t.join()
        if cb_thread is not None:
            cb_thread.join()
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if options.once:
        summary["expired_without_receipt"] = expire_job(engine, options.receipt_expiry).get("closed", 0)
    summary["completed_campaigns"] = complete_job(engine).get("completed", 0)
    if options.callbacks is not None and options.once:
        sender = Sender(engine, options.keys, options=options.callbacks)
        sender.drain(max_seconds=max(options.receipt_timeout, 1.0))
    summary["callbacks"] = sender.stats.as_dict() if sender is not None else {"delivered": 0, "retried": 0, "dead": 0}
    summary["held"] = held_now(engine, quiet=True)
    summary["awaiting_receipts"] = awaiting_receipts(engine)
    if summary["awaiting_receipts"]:
        log.info(
            "%d submitted message(s) still wait for their receipt (closed as undelivered after %gs)",
            summary["awaiting_receipts"],
            options.receipt_expiry,
        )
    totals: dict[str, Any] = wk.WorkerStats().as_dict()
    for w in workers:
        for k, v in w.stats.as_dict().items():
            if isinstance(v, dict):
                agg = totals.setdefault(k, {})
                for kk, vv in v.items():
                    agg[kk] = agg.get(kk, 0) + vv
            else:
                totals[k] = totals.get(k, 0) + v
    summary["workers"] = len(workers)
    summary["connections"] = [r.name for r in rows] if workers else []
    summary.update(totals)
    # Sent again without a stored submit_sm_resp (after_crash=resend): at most a window per dead worker.
    summary["possible_duplicates"] = summary["recovery"].get("unacknowledged", 0)
    summary["seconds"] = round(time.monotonic() - started, 3)
    errors = [w.error for w in workers if w.error is not None]
    summary["errors"] = [str(getattr(e, "message", e)) for e in errors]
    if errors and all(isinstance(e, Upstream) for e in errors):
        raise Upstream("; ".join(summary["errors"]))
    if errors:
        raise CpaasError("dispatch worker failed: " + "; ".join(summary["errors"]))
    return summary
