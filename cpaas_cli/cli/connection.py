"""`cpaas connection …`: vendor connections (SMPP binds now, HTTP later)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from cpaas_cli import secretbox
from cpaas_cli.cli.context import OutputOpt, emit, say, session, state
from cpaas_cli.dispatch import connections
from cpaas_cli.dispatch.receipts import StatusMap
from cpaas_cli.errors import UsageError

app = typer.Typer(no_args_is_help=True)

LIST_COLUMNS = ["id", "name", "kind", "host", "port", "system_id", "bind", "tls", "rps", "window", "enabled"]


class Bind(str, Enum):
    trx = "trx"
    tx = "tx"
    txrx = "tx+rx"


class MultipartFinal(str, Enum):
    all = "all"
    any = "any"
    last = "last"


class AfterCrash(str, Enum):
    resend = "resend"
    hold = "hold"


NameArg = Annotated[str, typer.Argument(help="Connection name (or id).")]
HostOpt = Annotated[str | None, typer.Option("--host", help="SMSC host name or address.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="SMSC TCP port.")]
SystemIdOpt = Annotated[str | None, typer.Option("--system-id", help="SMPP system_id (login).")]
PasswordEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--password-env",
        help="Name of the environment variable holding the password, read when binding. "
        "Without it the password is asked at a prompt (never on the command line), or read from stdin "
        "with --password-stdin, and stored encrypted with the secret key (CPAAS_SECRET_KEY or [secrets] key_file).",
        metavar="VAR",
    ),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of stdin (for scripts: no prompt), stored encrypted. "
        "Example: printf '%s\\n' \"$PW\" | cpaas connection add-smpp NAME ... --password-stdin",
    ),
]
SystemTypeOpt = Annotated[str | None, typer.Option("--system-type", help="SMPP system_type, if the vendor wants one.")]
TlsOpt = Annotated[bool | None, typer.Option("--tls/--no-tls", help="Wrap the bind in TLS.")]
BindOpt = Annotated[
    Bind | None,
    typer.Option(
        "--bind",
        help="trx (transceiver), tx (transmitter: no receipts or MO), or tx+rx "
        "(a transmitter bind for submits and a receiver bind for receipts and MO).",
    ),
]
RpsOpt = Annotated[
    int | None,
    typer.Option(
        "--rps",
        help="Submits per second at most for each sender ID (DSP-02), shared by the workers of one serve "
        "process (default: no limit).",
    ),
]
WindowOpt = Annotated[int | None, typer.Option("--window", help="Unacknowledged submits at most (default 10).")]
StatusMapOpt = Annotated[
    str | None,
    typer.Option(
        "--status-map",
        help="JSON or YAML file: {stat: {VENDOR_STAT: status}, err: {CODE: status}}; "
        "statuses: delivered, undelivered, expired, rejected, unknown, enroute.",
    ),
]
IdFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--message-id-format",
        help="How the vendor writes message ids: auto (as written; whether receipt texts write them in the "
        "other base is learned per connection), dec, hex, text, or SUBMIT:RECEIPT such as hex:dec.",
    ),
]
DefaultCountryOpt = Annotated[
    str | None,
    typer.Option(
        "--default-country",
        help="Country (ES, FR, ...) of MO numbers in national format (TON 2, or no country code): "
        "they are stored and opted out as E.164. '' clears it.",
    ),
]
MultipartFinalOpt = Annotated[
    MultipartFinal | None,
    typer.Option(
        "--multipart-final",
        help="When a long (multi-part) message is final: all = every part asks for a receipt and all must "
        "come (default); any = every part asks, the first receipt decides; last = only the last part asks, "
        "and its receipt decides (vendors that send one receipt per message).",
    ),
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Free text.")]
VendorPlanOpt = Annotated[
    str | None,
    typer.Option(
        "--vendor-plan",
        help="Vendor price plan (a service of type vendor): what a message costs us here (EDR vendor cost).",
    ),
]
SourceTonOpt = Annotated[
    str | None,
    typer.Option(
        "--source-ton",
        help="Source address TON, or auto (by the sender ID: alphanumeric 5, short code 3, long number 1).",
    ),
]
SourceNpiOpt = Annotated[
    str | None,
    typer.Option("--source-npi", help="Source address NPI, or auto (alphanumeric 0, short code 0, long number 1)."),
]
DestTonOpt = Annotated[int | None, typer.Option("--dest-ton", help="Destination address TON (default 1).")]
DestNpiOpt = Annotated[int | None, typer.Option("--dest-npi", help="Destination address NPI (default 1).")]


class Gsm7Coding(str, Enum):
    gsm7 = "gsm7"
    gsm7_packed = "gsm7-packed"
    latin1 = "latin1"
    ia5 = "ia5"


class ConcatChoice(str, Enum):
    udh8 = "udh8"
    udh16 = "udh16"
    sar = "sar"


Gsm7CodingOpt = Annotated[
    Gsm7Coding | None,
    typer.Option(
        "--gsm7-coding",
        help="How GSM-7 texts are written: gsm7 (data_coding 0, one septet a byte; default), gsm7-packed, "
        "latin1 (data_coding 3) or ia5 (data_coding 1). A text the charset cannot hold goes as UCS-2.",
    ),
]
ConcatOpt = Annotated[
    ConcatChoice | None,
    typer.Option("--concat", help="Long messages: udh8 (default), udh16 or sar (sar_* TLVs, no UDH)."),
]
EnquireOpt = Annotated[
    float | None, typer.Option("--enquire-link", help="Seconds of silence before an enquire_link (default 30).")
]
ResponseTimeoutOpt = Annotated[
    float | None,
    typer.Option("--response-timeout", help="Seconds an unanswered request may wait before the link counts as dead."),
]
BindRetryOpt = Annotated[
    float | None,
    typer.Option(
        "--bind-retry-after",
        help="Seconds between binds after the SMSC refused the credentials (default 300; vendors lock accounts).",
    ),
]
AfterCrashOpt = Annotated[
    AfterCrash | None,
    typer.Option(
        "--after-crash",
        help="Messages that may have been sent when serve died without storing their submit_sm_resp: "
        "resend (at least once, the default) or hold (state unknown until `campaign release-unknown` or "
        "`campaign fail-unknown`).",
    ),
]


def _ask_password(from_stdin: bool) -> str:
    """The typed password: from stdin's first line with --password-stdin, else at a
    prompt on a terminal; off a terminal without either, a usage error at once."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("--password-stdin: stdin has no password (an empty first line)")
        return line
    if not sys.stdin.isatty():
        raise UsageError(
            "stdin is not a terminal, so the password cannot be asked: give --password-env VAR "
            "or pipe it in with --password-stdin"
        )
    return typer.prompt("SMPP password", hide_input=True, err=True)


def _keys_to_store(ctx: typer.Context, name: str) -> secretbox.Keyring:
    """The keyring a typed password is encrypted with: checked before the prompt asks for it."""
    return connections.require_keyring(secretbox.load_keyring(state(ctx).settings), name)


def _status_map(path: str | None) -> dict | None:
    return None if path is None else StatusMap.load(path).as_dict()


def _settings(source_ton, source_npi, dest_ton, dest_npi, gsm7_coding, concat) -> dict:
    out: dict = {"dest_ton": dest_ton, "dest_npi": dest_npi}
    if source_ton is not None:
        out["source_ton"] = connections.parse_address_code(source_ton, "--source-ton")
    if source_npi is not None:
        out["source_npi"] = connections.parse_address_code(source_npi, "--source-npi")
    out["gsm7_coding"] = gsm7_coding.value if gsm7_coding else None
    out["concat"] = concat.value if concat else None
    return out


@app.command("add-smpp")
def add_smpp(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection name, unique.")],
    host: HostOpt = None,
    port: PortOpt = None,
    system_id: SystemIdOpt = None,
    password_env: PasswordEnvOpt = None,
    password_stdin: PasswordStdinOpt = False,
    system_type: SystemTypeOpt = None,
    tls: TlsOpt = None,
    bind: BindOpt = None,
    rps: RpsOpt = None,
    window: WindowOpt = None,
    status_map: StatusMapOpt = None,
    message_id_format: IdFormatOpt = None,
    default_country: DefaultCountryOpt = None,
    multipart_final: MultipartFinalOpt = None,
    after_crash: AfterCrashOpt = None,
    description: DescriptionOpt = None,
    source_ton: SourceTonOpt = None,
    source_npi: SourceNpiOpt = None,
    dest_ton: DestTonOpt = None,
    dest_npi: DestNpiOpt = None,
    gsm7_coding: Gsm7CodingOpt = None,
    concat: ConcatOpt = None,
    enquire_link: EnquireOpt = None,
    response_timeout: ResponseTimeoutOpt = None,
    bind_retry_after: BindRetryOpt = None,
    vendor_plan: VendorPlanOpt = None,
    output: OutputOpt = None,
) -> None:
    """Add an SMPP vendor connection."""
    data = connections.SmppInput(
        host=host,
        port=port,
        system_id=system_id,
        password_env=password_env,
        system_type=system_type,
        tls=tls,
        bind_mode=bind.value if bind else None,
        rps=rps,
        window=window,
        message_id_format=message_id_format,
        status_map=_status_map(status_map),
        default_country=default_country,
        multipart_final=multipart_final.value if multipart_final else None,
        description=description,
        **_settings(source_ton, source_npi, dest_ton, dest_npi, gsm7_coding, concat),
        enquire_link=enquire_link,
        response_timeout=response_timeout,
        bind_retry_after=bind_retry_after,
        after_crash=after_crash.value if after_crash else None,
    )
    keys = None
    if password_env is not None and password_stdin:
        raise UsageError("--password-env and --password-stdin do not go together")
    if password_env is None:
        if not password_stdin and not sys.stdin.isatty():
            _ask_password(False)  # off a terminal: fails at once, before the key is even looked for
        keys = _keys_to_store(ctx, name)
        data.password = _ask_password(password_stdin)
    with session(ctx) as s:
        row = connections.add_smpp(s, name=name, data=data, keys=keys)
        if vendor_plan is not None:
            connections.set_vendor_plan(s, row, vendor_plan)
        out = _dict(s, row)
    say(ctx, f"added SMPP connection {out['name']!r} (#{out['id']}) to {out['host']}:{out['port']}")
    emit(ctx, out, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="Only smpp or only http connections.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Only enabled or only disabled ones.")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """List vendor connections (passwords are never shown)."""
    with session(ctx) as s:
        data = [connections.connection_dict(r) for r in connections.list_connections(s, kind=kind, enabled=enabled)]
    emit(ctx, data, output=output, columns=LIST_COLUMNS)


@app.command("show")
def show(ctx: typer.Context, name: NameArg, output: OutputOpt = None) -> None:
    """Show one connection; the password shows as "***" or as its variable name."""
    with session(ctx) as s:
        data = _dict(s, connections.connection(s, name))
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    new_name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    host: HostOpt = None,
    port: PortOpt = None,
    system_id: SystemIdOpt = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Read the password from this environment variable from now on."),
    ] = None,
    new_password: Annotated[
        bool,
        typer.Option(
            "--new-password",
            help="Type a new password at a prompt (or pipe it with --password-stdin), stored encrypted "
            "(clears --password-env).",
        ),
    ] = False,
    password_stdin: PasswordStdinOpt = False,
    system_type: SystemTypeOpt = None,
    tls: TlsOpt = None,
    bind: BindOpt = None,
    rps: RpsOpt = None,
    no_rps_limit: Annotated[bool, typer.Option("--no-rps-limit", help="Remove the RPS limit.")] = False,
    window: WindowOpt = None,
    status_map: StatusMapOpt = None,
    message_id_format: IdFormatOpt = None,
    default_country: DefaultCountryOpt = None,
    multipart_final: MultipartFinalOpt = None,
    after_crash: AfterCrashOpt = None,
    description: DescriptionOpt = None,
    source_ton: SourceTonOpt = None,
    source_npi: SourceNpiOpt = None,
    dest_ton: DestTonOpt = None,
    dest_npi: DestNpiOpt = None,
    gsm7_coding: Gsm7CodingOpt = None,
    concat: ConcatOpt = None,
    enquire_link: EnquireOpt = None,
    response_timeout: ResponseTimeoutOpt = None,
    bind_retry_after: BindRetryOpt = None,
    vendor_plan: VendorPlanOpt = None,
    no_vendor_plan: Annotated[
        bool, typer.Option("--no-vendor-plan", help="Detach the vendor plan (vendor cost unknown from now on).")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Change a connection; options not given stay as they are.

    Example: cpaas connection update sim --vendor-plan "Sim costs"
    """
    if vendor_plan is not None and no_vendor_plan:
        raise UsageError("--vendor-plan and --no-vendor-plan do not go together")
    data = connections.SmppInput(
        host=host,
        port=port,
        system_id=system_id,
        password_env=password_env,
        system_type=system_type,
        tls=tls,
        bind_mode=bind.value if bind else None,
        window=window,
        message_id_format=message_id_format,
        status_map=_status_map(status_map),
        default_country=default_country,
        multipart_final=multipart_final.value if multipart_final else None,
        description=description,
        **_settings(source_ton, source_npi, dest_ton, dest_npi, gsm7_coding, concat),
        enquire_link=enquire_link,
        response_timeout=response_timeout,
        bind_retry_after=bind_retry_after,
        after_crash=after_crash.value if after_crash else None,
    )
    if no_rps_limit:
        data.rps = None
    elif rps is not None:
        data.rps = rps
    keys = None
    new_password = new_password or password_stdin
    if password_env is not None and password_stdin:
        raise UsageError("--password-env and --password-stdin do not go together")
    if new_password and password_env is None:
        if not password_stdin and not sys.stdin.isatty():
            _ask_password(False)  # off a terminal: fails at once
        keys = _keys_to_store(ctx, name)
        data.password = _ask_password(password_stdin)
    with session(ctx) as s:
        row = connections.update_smpp(s, connections.connection(s, name), name=new_name, data=data, keys=keys)
        if vendor_plan is not None or no_vendor_plan:
            connections.set_vendor_plan(s, row, None if no_vendor_plan else vendor_plan)
        out = _dict(s, row)
    say(ctx, f"updated connection {out['name']!r}")
    emit(ctx, out, output=output)


def _dict(s, row) -> dict:
    """The connection as shown, with its vendor plan's name."""
    out = connections.connection_dict(row)
    out["vendor_plan"] = connections.vendor_plan_name(s, row)
    return out


def _set_enabled(ctx: typer.Context, name: str, enabled: bool, output) -> None:
    with session(ctx) as s:
        out = connections.connection_dict(connections.set_enabled(s, connections.connection(s, name), enabled))
    say(ctx, f"{'enabled' if enabled else 'disabled'} connection {out['name']!r}")
    emit(ctx, out, output=output)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg, output: OutputOpt = None) -> None:
    """Stop using a connection for dispatch (it stays listed)."""
    _set_enabled(ctx, name, False, output)


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg, output: OutputOpt = None) -> None:
    """Use a disabled connection again."""
    _set_enabled(ctx, name, True, output)


@app.command("test")
def test(
    ctx: typer.Context,
    name: NameArg,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for connect and each answer.")] = 5.0,
    output: OutputOpt = None,
) -> None:
    """Bind, send one enquire_link and unbind: prints the round-trip times or the
    reason it failed (exit 6)."""
    with session(ctx) as s:
        row = connections.connection(s, name)
        s.expunge(row)
    keys = secretbox.load_keyring(state(ctx).settings) if row.password and not row.password_env else None
    result = connections.test_connection(row, timeout=timeout, keys=keys)
    say(ctx, f"connection {row.name!r}: bound in {result['bind_ms']} ms, enquire_link {result['enquire_link_ms']} ms")
    emit(ctx, result, output=output)
