"""`cpaas otp …`: 2FA integrations (SPEC OTP-01/02) and their requests.

An integration's API key (``<key id>:<secret>``) and callback signing secret
are printed once, when made; only the key id is shown again.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli import otp_guard, otp_stats
from cpaas_cli.cli.context import OutputOpt, confirm, emit, one_more, say, session, state
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.otp import INTEGRATION_STATES

app = typer.Typer(no_args_is_help=True, help="OTP / 2FA: integrations, test sends, requests.")
integration_app = typer.Typer(
    no_args_is_help=True, help="2FA integrations: create, list, show, update, enable, disable, delete, test."
)
app.add_typer(integration_app, name="integration")
app.add_typer(otp_guard.app, name="guard")  # issue 28 item 4: cli/otp_guard.py
app.command("stats")(otp_stats.stats)  # issue 28 item 6: cli/otp_stats.py

COLUMNS = ["id", "name", "company", "mode", "sender", "state", "digits", "type", "validity_s", "created_at"]
IntegrationArg = Annotated[str, typer.Argument(help="Integration id or name.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Shown in statistics (≤ 110 characters).")]
ModeOpt = Annotated[
    str | None,
    typer.Option("--mode", help="platform (we make and check the code) or client (the client sends its own code)."),
]
SenderOpt = Annotated[
    str | None,
    typer.Option("--sender", "-s", help="An active SMS sender ID of the company (its agreement is charged)."),
]
TextOpt = Annotated[str | None, typer.Option("--text", help="The message; {{code}} marks where the code goes.")]
DigitsOpt = Annotated[int | None, typer.Option("--digits", help="Code length: 4, 6 (default) or 8.")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="numeric (default) or alphanumeric.")]
ValidityOpt = Annotated[
    int | None, typer.Option("--validity", metavar="SECONDS", help="How long a code is valid: 1 to 600 (300).")
]
ChannelOpt = Annotated[
    str | None,
    typer.Option(
        "--channel",
        help="sms (default: a text from --sender) or email (through [smtp]; --text is the body, --subject the "
        "subject; --sender still names the agreement charged, by its email price, and the From name).",
    ),
]
SubjectOpt = Annotated[
    str | None,
    typer.Option("--subject", help="E-mail channel: the subject ({{code}} allowed; default 'Your verification code')."),
]
CallbackOpt = Annotated[
    str | None, typer.Option("--callback-url", help="Where results are POSTed (signed); '' removes it.")
]
ChecksOpt = Annotated[int | None, typer.Option("--max-checks", help="Checks of one code (5).")]
SendsOpt = Annotated[int | None, typer.Option("--max-sends", help="Codes to one number per --send-window (5).")]
WindowOpt = Annotated[
    int | None, typer.Option("--send-window", metavar="SECONDS", help="The window of --max-sends (600).")
]


def _services():
    from cpaas_cli.otp import integrations

    return integrations


def _keys(ctx: typer.Context):
    from cpaas_cli.identity import keys

    return keys.load(state(ctx).settings)


def _keyring(ctx: typer.Context):
    from cpaas_cli.secretbox import load_keyring

    return load_keyring(state(ctx).settings)


def _base_url(ctx: typer.Context) -> str | None:
    value = state(ctx).settings.section("otp").get("public_url")
    return value if isinstance(value, str) and value.strip() else None


def _say_segments(ctx: typer.Context, saved) -> None:
    if saved.row.channel == "email":
        say(ctx, "e-mail channel: each code is one e-mail, priced by the rate tree's email domain")
        return
    n = saved.segments
    length = saved.row.digits
    if n > 1:
        say(ctx, f"the text with a {length}-character code is {n} segments: each code is billed as {n} messages")
    else:
        say(ctx, f"the text with a {length}-character code is 1 segment")


def _settings(**values):
    from cpaas_cli.otp.integrations import Settings

    if values.get("channel") is not None:
        values["channel"] = values["channel"].strip().lower()
    for name in ("mode", "code_type"):
        if values.get(name) is not None:
            values[name] = values[name].strip().lower()
    return Settings(**values)


@integration_app.command("create")
def create(
    ctx: typer.Context,
    company: CompanyOpt,
    name: NameOpt = None,
    sender: SenderOpt = None,
    text: TextOpt = None,
    mode: ModeOpt = None,
    digits: DigitsOpt = None,
    code_type: TypeOpt = None,
    validity: ValidityOpt = None,
    channel: ChannelOpt = None,
    subject: SubjectOpt = None,
    callback_url: CallbackOpt = None,
    max_checks: ChecksOpt = None,
    max_sends: SendsOpt = None,
    send_window: WindowOpt = None,
    draft: Annotated[bool, typer.Option("--draft", help="Save as Draft (not running); default: Active.")] = False,
    output: OutputOpt = None,
) -> None:
    """Create an integration; its API key (and callback signing secret) is printed once.

    Example: cpaas otp integration create -c "Client A" --name Login -s ACME --text "Your code is {{code}}"
    """
    svc = _services()
    settings = _settings(
        name=name, mode=mode, sender=sender, template=text, digits=digits, code_type=code_type,
        validity_s=validity, channel=channel, subject=subject, callback_url=callback_url, max_checks=max_checks,
        max_sends=max_sends, send_window_s=send_window,
    )  # fmt: skip
    keyring = _keyring(ctx) if callback_url else None
    with session(ctx) as s:
        saved = svc.create(s, _keys(ctx), keyring, company=company, settings=settings, draft=draft)
        data = svc.integration_dict(s, saved.row, base_url=_base_url(ctx))
    data["api_key"] = saved.key
    if saved.callback_secret:
        data["callback_secret"] = saved.callback_secret
    _say_segments(ctx, saved)
    say(ctx, "the API key is shown once; store it now")
    emit(ctx, data, output=output)


@integration_app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    state_: Annotated[str | None, typer.Option("--state", help="draft, active or blocked.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Integrations, newest first (never the keys)."""
    svc = _services()
    if state_ is not None and state_ not in INTEGRATION_STATES:
        raise InvalidInput(f"--state: one of {', '.join(INTEGRATION_STATES)}")
    with session(ctx) as s:
        company_id = None
        if company is not None:
            from cpaas_cli.tenancy.service import company as company_of

            company_id = company_of(s, company).id
        rows = svc.list_integrations(s, company_id=company_id, state=state_, limit=one_more(limit))
        data = [svc.integration_dict(s, r, base_url=_base_url(ctx)) for r in rows]
    emit(ctx, data, output=output, columns=COLUMNS, limit=limit)


@integration_app.command("show")
def show(ctx: typer.Context, integration: IntegrationArg, output: OutputOpt = None) -> None:
    """One integration: its settings, key id and integration URL."""
    svc = _services()
    with session(ctx) as s:
        data = svc.integration_dict(s, svc.get(s, integration), base_url=_base_url(ctx))
    emit(ctx, data, output=output)


@integration_app.command("update")
def update(
    ctx: typer.Context,
    integration: IntegrationArg,
    name: NameOpt = None,
    sender: SenderOpt = None,
    text: TextOpt = None,
    mode: ModeOpt = None,
    digits: DigitsOpt = None,
    code_type: TypeOpt = None,
    validity: ValidityOpt = None,
    channel: ChannelOpt = None,
    subject: SubjectOpt = None,
    callback_url: CallbackOpt = None,
    max_checks: ChecksOpt = None,
    max_sends: SendsOpt = None,
    send_window: WindowOpt = None,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="A new callback signing secret (printed once).")
    ] = False,
    new_key: Annotated[
        bool, typer.Option("--regenerate-key", help="A new API key (printed once); the old one stops at once.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Change an integration's settings (those given); a new key or secret is printed once."""
    svc = _services()
    settings = _settings(
        name=name, mode=mode, sender=sender, template=text, digits=digits, code_type=code_type,
        validity_s=validity, channel=channel, subject=subject, callback_url=callback_url, max_checks=max_checks,
        max_sends=max_sends, send_window_s=send_window,
    )  # fmt: skip
    keyring = _keyring(ctx) if (callback_url or rotate_secret) else None
    with session(ctx) as s:
        row = svc.get(s, integration)
        saved = svc.update(s, keyring, row, settings=settings, rotate_secret=rotate_secret)
        key = svc.regenerate_key(s, _keys(ctx), row) if new_key else None
        data = svc.integration_dict(s, row, base_url=_base_url(ctx))
    if key:
        data["api_key"] = key
        say(ctx, "the API key is shown once; store it now")
    if saved.callback_secret:
        data["callback_secret"] = saved.callback_secret
    if text is not None or digits is not None or channel is not None:
        _say_segments(ctx, saved)
    emit(ctx, data, output=output)


def _move(ctx: typer.Context, integration: str, action: str, output) -> None:
    svc = _services()
    with session(ctx) as s:
        row = svc.move(s, svc.get(s, integration), action)
        data = svc.integration_dict(s, row, base_url=_base_url(ctx))
    emit(ctx, data, output=output)


@integration_app.command("enable")
def enable(ctx: typer.Context, integration: IntegrationArg, output: OutputOpt = None) -> None:
    """Draft or Blocked → Active (exit 5 from any other state)."""
    _move(ctx, integration, "enable", output)


@integration_app.command("disable")
def disable(ctx: typer.Context, integration: IntegrationArg, output: OutputOpt = None) -> None:
    """Active → Blocked: its key is refused (403) until enabled again (exit 5 unless Active)."""
    _move(ctx, integration, "disable", output)


@integration_app.command("delete")
def delete(
    ctx: typer.Context,
    integration: IntegrationArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete an integration, its requests and its result callbacks in the outbox (messages and EDRs stay)."""
    svc = _services()
    with session(ctx) as s:
        row = svc.get(s, integration)
        confirm(ctx, f"Delete 2FA integration {row.name!r} and its requests?", yes)
        data = {"id": row.id, "name": row.name, "deleted": True}
        svc.delete(s, row)
    emit(ctx, data, output=output)


@integration_app.command("test")
def test(
    ctx: typer.Context,
    integration: IntegrationArg,
    number: Annotated[str | None, typer.Option("--number", help="SMS channel: E.164 digits of the test phone.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail channel: the test address.")] = None,
    status_url: Annotated[
        str | None,
        typer.Option(
            "--status-url",
            metavar="URL",
            help="Where this test's result callbacks (SENT/FAILED, VERIFIED) go instead of the integration's "
            "callback URL; signed with its secret (made now and printed once if it has none).",
        ),
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="Client side: the code to send (default: a random one).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", metavar="SECONDS", min=0, max=60, help="SMS: wait this long for a `serve` worker to send it."
        ),
    ] = 0.0,
    output: OutputOpt = None,
) -> None:
    """Send a code to a number (or an e-mail address), as the API would; the request id is printed
    (the code is not).

    SMS: the message is queued; a running `cpaas serve` sends it (--wait waits for the vendor's answer).
    E-mail: sent now through [smtp]; the status is SENT or FAILED.

    Example: cpaas otp integration test Login --number 34620000001 --status-url https://example.com/otp-status
    """
    from cpaas_cli.db.engine import get_engine
    from cpaas_cli.otp import codes
    from cpaas_cli.otp import requests as otp

    svc = _services()
    keys = _keys(ctx)
    shown = None
    with session(ctx) as s:
        row = svc.get(s, integration)
        channel = row.channel
        target, given = ("--email", email) if channel == "email" else ("--number", number)
        other = "--number" if target == "--email" else "--email"
        if given is None or (number if target == "--email" else email) is not None:
            raise InvalidInput(f"{target}: required for a {channel} integration ({other} is for the other channel)")
        url = None
        if status_url is not None:
            url, shown = svc.status_url(row, status_url, _keyring(ctx))
        if row.mode == "client" and code is None:
            code = codes.new_code(row.digits, row.code_type)
        sent_code = code if row.mode == "client" else None
        if channel == "email":
            from cpaas_cli.otp import email_channel

            smtp = email_channel.smtp_settings(state(ctx).settings.section("smtp"))
            prepared = email_channel.prepare(s, keys, row, address=given, code=sent_code, test=True, status_url=url)
        else:
            accepted = otp.send(s, keys, row, number=given, code=sent_code, test=True, status_url=url)
    engine = get_engine(state(ctx).settings.database_url)
    if channel == "email":
        status = email_channel.deliver(engine, prepared, smtp, actor="cli")
        data = {"requestId": prepared.request_id, "email": prepared.address, "message_id": None, "status": status}
    else:
        status = otp.settle(engine, accepted.request_id, accepted.queue_id, timeout=wait) if wait else None
        data = {
            "requestId": accepted.request_id,
            "number": accepted.number,
            "message_id": accepted.queue_id,
            "status": status or ("PENDING_MODERATION" if accepted.pending_moderation else "QUEUED"),
        }
    if url is not None:
        data["status_url"] = url
    if shown:
        data["callback_secret"] = shown
        say(ctx, "the integration had no signing secret: this one is shown once; store it now")
    emit(ctx, data, output=output)


@app.command("request")
def request(
    ctx: typer.Context,
    integration: IntegrationArg,
    request_id: Annotated[str, typer.Argument(help="The requestId the send answered.")],
    output: OutputOpt = None,
) -> None:
    """One request as `GET /api/v1/2fa/requests/ID` shows it: number, rate, billable, status."""
    from cpaas_cli.otp import requests as otp

    svc = _services()
    with session(ctx) as s:
        data = otp.lookup(s, svc.get(s, integration), request_id)
    emit(ctx, data, output=output)
