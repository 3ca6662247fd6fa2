"""`cpaas doctor`: is this installation ready to work? One row per check."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, state
from cpaas_cli.errors import ExitCode


def doctor(
    ctx: typer.Context,
    bind: Annotated[
        bool,
        typer.Option("--bind", help="Also bind each enabled vendor connection and unbind (talks to the vendors)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds to wait for the SMTP server and each bind.")
    ] = 5.0,
    min_free_mb: Annotated[
        int, typer.Option("--min-free-mb", metavar="MB", help="Less free space than this in the export folder fails.")
    ] = 500,
    output: OutputOpt = None,
) -> None:
    """Check the installation: database, migrations, owner, connections, scheduler, SMTP, disk.

    The database is reachable and migrated to head; the system owner exists; each
    enabled vendor connection can resolve its password (shown with its last submit
    and last inbound message; with --bind, a bind now); no scheduled campaign or
    export task is overdue (else `cpaas serve` is not running); the SMTP server
    answers, if one is configured; the export folder has free space.

    Status per check: ok, warn, fail or skip. Exit 1 when any check fails, else 0.

    Example: cpaas doctor -o json | jq '.[] | select(.status != "ok")'
    """
    from cpaas_cli import health
    from cpaas_cli.secretbox import load_keyring

    st = state(ctx)
    settings = st.settings
    rows = health.run(
        settings,
        environ=os.environ,
        keys=lambda: load_keyring(settings),
        options=health.Options(bind=bind, timeout=timeout, min_free_mb=min_free_mb),
    )
    emit(ctx, rows, output=output, columns=["check", "status", "detail"])
    failed = [r["check"] for r in rows if r["status"] == health.FAIL]
    if failed:
        say(ctx, f"{len(failed)} check(s) failed: {', '.join(failed)}")
        raise typer.Exit(int(ExitCode.ERROR))
    say(ctx, "all checks passed" + (" (with warnings)" if any(r["status"] == health.WARN for r in rows) else ""))
