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
    id_upper: Annotated[bool, typer.Option("--id-upper/--id-lower", help="Hex ids in upper or lower case.")] = True,
    first_id: Annotated[int, typer.Option("--first-id", help="The first message id (a number).")] = 1,
    receipt_id_format: Annotated[
        str | None,
        typer.Option("--receipt-id-format", help="Write receipt ids in this base (hex or dec) whatever --id-format."),
    ] = None,
    receipt_tlv: Annotated[
        bool,
        typer.Option(
            "--receipt-tlv/--receipt-text-only", help="Receipts with the receipted_message_id TLV or text only."
        ),
    ] = True,
    receipt_pdu: Annotated[
        str, typer.Option("--receipt-pdu", help="Send receipts as deliver_sm or data_sm.")
    ] = "deliver_sm",
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
    receipt_parts: Annotated[
        str,
        typer.Option(
            "--receipt-parts",
            help="Long messages: a receipt for every part (all), or one per message, for its first or last part.",
        ),
    ] = "all",
    refuse_part: Annotated[
        int | None,
        typer.Option("--refuse-part", help="Refuse part N (from 1) of every long message (ESME_RSUBMITFAIL)."),
    ] = None,
    lifetime: Annotated[float, typer.Option("--lifetime", help="Stop after this many seconds.")] = 3600.0,
    record: Annotated[
        str | None, typer.Option("--record", help="Append 'message_id destination' per accepted submit to this file.")
    ] = None,
    record_text: Annotated[
        bool, typer.Option("--record-text", help="--record: add the message text to each line (benchmarks).")
    ] = False,
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
        from cpaas_cli.dispatch.smsc import RECEIPT_PARTS, SimSmsc, SmscOptions, parse_stat_mix
    except ImportError as exc:  # smpp34 is a dev extra
        raise InvalidInput(f"the simulated SMSC needs the dev extra (pip install 'cpaas-cli[dev]'): {exc}") from exc
    if id_format not in ("hex", "dec"):
        raise InvalidInput(f"--id-format: {id_format!r} is not hex or dec")
    if receipt_id_format not in (None, "hex", "dec"):
        raise InvalidInput(f"--receipt-id-format: {receipt_id_format!r} is not hex or dec")
    if receipt_pdu not in ("deliver_sm", "data_sm"):
        raise InvalidInput(f"--receipt-pdu: {receipt_pdu!r} is not deliver_sm or data_sm")
    if first_id < 0:
        raise InvalidInput("--first-id: must not be negative")
    if receipt_parts not in RECEIPT_PARTS:
        raise InvalidInput(f"--receipt-parts: {receipt_parts!r} is not one of {', '.join(RECEIPT_PARTS)}")
    if refuse_part is not None and refuse_part < 1:
        raise InvalidInput(f"--refuse-part: {refuse_part} is not a part number (1 or more)")
    try:
        mix = parse_stat_mix(stat_mix)
    except ValueError as exc:
        raise InvalidInput(f"--stat-mix: {exc}") from exc
    if record_text and not record:
        raise InvalidInput("--record-text adds the text to the lines of --record FILE: give --record too")
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
        id_upper=id_upper,
        first_id=first_id,
        receipt_id_format=receipt_id_format,
        receipt_tlv=receipt_tlv,
        receipt_pdu=receipt_pdu,
        receipts=receipts,
        receipt_delay=receipt_delay,
        stat_mix=mix,
        hold_after=hold_after,
        lifetime=lifetime,
        record_path=record,
        record_text=record_text,
        receipt_parts=receipt_parts,
        refuse_part=refuse_part,
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


@app.command("callback-sink")
def callback_sink(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 8099,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    secret_env: Annotated[
        str | None,
        typer.Option(
            "--secret-env",
            metavar="NAME",
            help="Environment variable holding the key's signing secret: signatures are checked.",
        ),
    ] = None,
    lifetime: Annotated[float, typer.Option("--lifetime", min=0.1, help="Stop after this many seconds.")] = 3600.0,
) -> None:
    """Receive callbacks and print each one as a JSON line (with its signature check) until Ctrl-C.

    Example: CB_SECRET=whsec_… cpaas dev callback-sink --port 8099 --secret-env CB_SECRET
    """
    import json
    import os
    import threading

    from cpaas_cli.callbacks import sink

    secret = None
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            raise InvalidInput(f"--secret-env: the environment variable {secret_env[:60]!r} is not set")
    lock = threading.Lock()

    def show(record: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    sink.serve(
        host=host,
        port=port,
        secret=secret,
        on_callback=show,
        lifetime=lifetime,
        on_listening=lambda url: say(ctx, f"callback sink listening on {url} (Ctrl-C to stop)"),
    )
