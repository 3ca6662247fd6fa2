"""`cpaas serve` (dispatch workers + scheduler) and `cpaas inbound` (MO messages)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, one_more, session, state
from cpaas_cli.cli.options import CompanyFilterOpt

inbound_app = typer.Typer(no_args_is_help=True)


def _words(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not text:
        return default
    return tuple(w.strip().upper() for w in text.split(",") if w.strip())


def serve(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Do what is due, send the queue, wait for receipts, then exit (cron, CI).")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker threads (binds) per connection.")
    ] = 1,
    receipt_timeout: Annotated[
        float, typer.Option("--receipt-timeout", help="--once: seconds of silence to wait for receipts.")
    ] = 30.0,
    receipt_expiry: Annotated[
        float,
        typer.Option(
            "--receipt-expiry",
            help="Messages submitted this many seconds ago without a receipt are closed as undelivered (no_receipt).",
        ),
    ] = 48 * 3600.0,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Stop (cleanly) after this many seconds.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=5000, help="Queue rows claimed per transaction.")] = 200,
    stop_words: Annotated[
        str | None,
        typer.Option("--stop-words", help="Opt-out keywords, comma-separated (default STOP,UNSUBSCRIBE,...)."),
    ] = None,
    start_words: Annotated[
        str | None, typer.Option("--start-words", help="Opt-in keywords, comma-separated (default START,...).")
    ] = None,
    http: Annotated[
        str | None,
        typer.Option("--http", metavar="HOST:PORT", help="Also serve the HTTP API (cpaas api openapi) on HOST:PORT."),
    ] = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="With --http: only the HTTP API (no dispatch workers, no scheduler).")
    ] = False,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="With --http: TLS certificate file (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="With --http: TLS private key file (PEM).")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="With --http behind a proxy: comma-separated proxy addresses whose X-Forwarded-* headers are trusted.",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Run the dispatch workers and the scheduler until SIGTERM/SIGINT (or with --once, until done).

    Logs go to stderr; the summary (counts) goes to stdout when the run ends.
    With --http, the HTTP API runs in the same process (alone with --no-workers).
    """
    from cpaas_cli.callbacks.retention import Retention
    from cpaas_cli.callbacks.sender import SenderOptions
    from cpaas_cli.dispatch import worker as wk
    from cpaas_cli.scheduler import serve as runner
    from cpaas_cli.secretbox import load_keyring

    st = state(ctx)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if st.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    wopts = wk.WorkerOptions(
        batch=batch,
        stop_words=_words(stop_words, wk.DEFAULT_STOP_WORDS),
        start_words=_words(start_words, wk.DEFAULT_START_WORDS),
    )
    from cpaas_cli.errors import UsageError

    services = []
    if http is None and (no_workers or tls_cert or tls_key or forwarded_allow_ips):
        raise UsageError("--no-workers, --tls-cert, --tls-key and --forwarded-allow-ips need --http")
    if http is not None:
        if once:
            raise UsageError("--http and --once do not go together")
        from cpaas_cli.api.server import HttpServer

        services.append(
            HttpServer(st.settings, http, tls_cert=tls_cert, tls_key=tls_key, forwarded_allow_ips=forwarded_allow_ips)
        )
    options = runner.ServeOptions(
        services=services,
        no_workers=no_workers,
        once=once,
        workers=workers,
        receipt_timeout=receipt_timeout,
        receipt_expiry=receipt_expiry,
        max_seconds=max_seconds,
        worker=wopts,
        keys=load_keyring(st.settings),
        callbacks=SenderOptions.from_config(st.settings.section("callbacks")),
        callback_retention=Retention.from_config(st.settings.section("callbacks")),
    )
    _pool_profiles(st.settings, workers=0 if no_workers else workers, http=http is not None)
    summary = runner.run(st.settings.database_url, options)
    emit(ctx, summary, output=output)


def _pool_profiles(settings, *, workers: int, http: bool) -> None:
    """PostgreSQL: serve's pools (``db/pool.py``), sized from its worker threads
    (enabled SMPP connections × ``--workers``), counted through this command's own small pool."""
    from cpaas_cli.db import pool
    from cpaas_cli.db.engine import get_engine
    from cpaas_cli.scheduler import serve as runner

    probe = get_engine(settings.database_url)
    if probe.dialect.name != "postgresql":
        return
    threads = runner.enabled_binds(probe) * workers if workers else 0
    probe.dispose()
    pool.set_profile(pool.serve_profile(settings, threads=threads))
    pool.set_profile(pool.scheduler_profile(settings), part="scheduler")
    if http:
        pool.set_profile(pool.http_profile(settings), part="http")


@inbound_app.command("list")
def inbound_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="mo or receipt (unmatched receipts).")] = None,
    company: CompanyFilterOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Inbound messages: MO (with the opt-out/opt-in they caused) and receipts no message matched."""
    from cpaas_cli.dispatch import inbound
    from cpaas_cli.models.tenancy import Company
    from cpaas_cli.refs import by_ref

    with session(ctx) as s:
        cid = by_ref(s, Company, company, what="company").id if company else None
        rows = inbound.list_inbound(s, kind=kind, company_id=cid, limit=one_more(limit))
    emit(
        ctx,
        rows,
        output=output,
        columns=["id", "kind", "received_at", "source", "destination", "text", "action", "message_id", "status"],
        limit=limit,
    )
