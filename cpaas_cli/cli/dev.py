"""`cpaas dev …`: tools for demos and development (need the dev extra)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cpaas_cli.cli.context import say
from cpaas_cli.errors import InvalidInput

app = typer.Typer(no_args_is_help=True)


@app.command("smsc")
def smsc(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 2775,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    id_format: Annotated[str, typer.Option("--id-format", help="Message ids in hex or dec.")] = "hex",
    id_width: Annotated[int, typer.Option("--id-width", help="Zero-pad message ids to this width.")] = 0,
    receipts: Annotated[bool, typer.Option("--receipts/--no-receipts", help="Send delivery receipts.")] = True,
    receipt_delay: Annotated[
        float, typer.Option("--receipt-delay", help="Seconds between accepting and the receipt.")
    ] = 0.0,
    stat_mix: Annotated[
        str, typer.Option("--stat-mix", help="Receipt states and weights, e.g. DELIVRD=8,UNDELIV=1,EXPIRED=1.")
    ] = "DELIVRD=1",
    hold_after: Annotated[
        int | None, typer.Option("--hold-after", help="Leave every submit after this many unanswered.")
    ] = None,
    lifetime: Annotated[float, typer.Option("--lifetime", help="Stop after this many seconds.")] = 3600.0,
    record: Annotated[
        str | None, typer.Option("--record", help="Append 'message_id destination' per accepted submit to this file.")
    ] = None,
    record_acks: Annotated[
        str | None,
        typer.Option(
            "--record-acks",
            help="Append 'receipt MESSAGE_ID' or 'mo SOURCE' per deliver_sm the client answered to this file.",
        ),
    ] = None,
    kill_on_ack: Annotated[
        str | None,
        typer.Option(
            "--kill-on-ack",
            help="Crash point for tests: SIGKILL the process whose pid is in this file when it answers "
            "its first deliver_sm.",
        ),
    ] = None,
    mo: Annotated[
        list[str] | None,
        typer.Option("--mo", help="SOURCE:DEST:TEXT, an MO sent after the first bind (repeatable, in order)."),
    ] = None,
) -> None:
    """Run the simulated SMSC (the smpp34 server) in the foreground until Ctrl-C or --lifetime."""
    try:
        from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, parse_stat_mix
    except ImportError as exc:  # smpp34 is a dev extra
        raise InvalidInput(f"the simulated SMSC needs the dev extra (pip install 'cpaas-cli[dev]'): {exc}") from exc
    if id_format not in ("hex", "dec"):
        raise InvalidInput(f"--id-format: {id_format!r} is not hex or dec")
    try:
        mix = parse_stat_mix(stat_mix)
    except ValueError as exc:
        raise InvalidInput(f"--stat-mix: {exc}") from exc
    mos = []
    for item in mo or []:
        source, _, rest = item.partition(":")
        dest, sep, text = rest.partition(":")
        if not sep or not source or not dest:
            raise InvalidInput(f"--mo: {item[:60]!r} is not SOURCE:DEST:TEXT")
        mos.append((source, dest, text))
    options = SmscOptions(
        host=host,
        port=port,
        id_format=id_format,
        id_width=id_width,
        receipts=receipts,
        receipt_delay=receipt_delay,
        stat_mix=mix,
        hold_after=hold_after,
        lifetime=lifetime,
        record_path=record,
        record_acks=record_acks,
        kill_on_ack=kill_on_ack,
        mo=mos,
    )
    sim = SimSmsc(options)
    try:
        sim.start()
    except RuntimeError as exc:
        raise InvalidInput(str(exc)) from exc
    say(ctx, f"SMSC listening on {host}:{port} (lifetime {lifetime:g}s; Ctrl-C to stop)")
    sys.stderr.flush()
    try:
        sim.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        c = sim.counters
        say(
            ctx,
            f"SMSC stopped: {c.binds} binds, {c.accepted} accepted, {c.rejected} rejected, {c.receipts} receipts, "
            f"{c.mo} MO, {c.unanswered} deliver_sm unanswered ({c.redelivered} sent again)",
        )
