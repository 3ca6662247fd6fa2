"""`cpaas user …`: BackOffice and client-portal users, passwords, sign-in.

A password is read from standard input (``--password-stdin``, one line) or a
hidden prompt; never from the command line. Secrets the command makes
(activation tokens, generated passwords, session tokens) are shown once on
stdout and never stored in clear, logged or audited.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, state
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt
from cpaas_cli.errors import InvalidInput
from cpaas_cli.identity import passwords
from cpaas_cli.identity import users as svc

app = typer.Typer(no_args_is_help=True, help="Users (BackOffice and client portal), passwords, two-factor, sign-in.")

COLUMNS = ["id", "login", "kind", "company_id", "first_name", "last_name", "department", "roles", "enabled"]

UserArg = Annotated[str, typer.Argument(help="User login or id.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def read_secret(from_stdin: bool, prompt: str = "Password", *, confirm: bool = True) -> str:
    """A secret from stdin (one line) or a hidden prompt, never from argv."""
    if from_stdin:
        line = sys.stdin.readline()
        value = line.rstrip("\r\n")
    elif sys.stdin.isatty():
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    else:
        raise InvalidInput("password: give --password-stdin (standard input is not a terminal)")
    if not value:
        raise InvalidInput("password: empty")
    return value


def _data(**kw) -> svc.UserInput:
    return svc.UserInput(**kw)


@app.command("create")
def create(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="Unique login.")],
    company: CompanyOpt,
    first_name: Annotated[str, typer.Option("--first-name", help="First name (≤ 60).")],
    last_name: Annotated[str, typer.Option("--last-name", help="Last name (≤ 60).")],
    middle_name: Annotated[str | None, typer.Option("--middle-name")] = None,
    job_title: Annotated[str | None, typer.Option("--job-title")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone in international form (≤ 15 digits).")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO country code.")] = None,
    language: Annotated[str, typer.Option(help="Language code.")] = "en",
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone.")] = "UTC",
    department: Annotated[
        str | None, typer.Option(help="Portal users: Admin, First line support, or a new name.")
    ] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="A role of the user's side (repeat).")] = None,
    password_stdin: PasswordStdin = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password yet (set it later, or use `user invite`).")
    ] = False,
    sms_2fa: Annotated[bool, typer.Option("--sms-2fa", help="Second factor by SMS to --phone.")] = False,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    output: OutputOpt = None,
) -> None:
    """Create a user (the password must be changed at its first sign-in). A user of
    an owner or reseller --company is a BackOffice user, of a client a portal user."""
    password = None if no_password else read_secret(password_stdin)
    with session(ctx) as s:
        user = svc.create(
            s,
            company=company,
            data=_data(
                login=login,
                first_name=first_name,
                last_name=last_name,
                middle_name=middle_name,
                job_title=job_title,
                phone=phone,
                email=email,
                country=country,
                language=language,
                timezone=timezone,
            ),
            department_name=department,
            roles=role or [],
            password=password,
            enabled=not disabled,
            two_factor="sms" if sms_2fa else "none",
        )
        data = svc.user_dict(s, user)
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="Only enabled or disabled.")] = None,
    output: OutputOpt = None,
) -> None:
    """List users."""
    with session(ctx) as s:
        data = [svc.user_dict(s, u) for u in svc.list_users(s, company=company, enabled=enabled)]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """Show one user."""
    with session(ctx) as s:
        data = svc.user_dict(s, svc.get(s, user))
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    user: UserArg,
    first_name: Annotated[str | None, typer.Option("--first-name")] = None,
    last_name: Annotated[str | None, typer.Option("--last-name")] = None,
    middle_name: Annotated[str | None, typer.Option("--middle-name")] = None,
    job_title: Annotated[str | None, typer.Option("--job-title")] = None,
    phone: Annotated[str | None, typer.Option(help="New phone (ends the user's sessions); '' removes it.")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option("--timezone")] = None,
    department: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = None,
) -> None:
    """Change a user's details."""
    with session(ctx) as s:
        row, ended = svc.update(
            s,
            svc.get(s, user),
            data=_data(
                first_name=first_name,
                last_name=last_name,
                middle_name=middle_name,
                job_title=job_title,
                phone=phone,
                email=email,
                country=country,
                language=language,
                timezone=timezone,
            ),
            department_name=department,
        )
        data = svc.user_dict(s, row)
    if ended:
        say(ctx, f"the phone number changed: every session of {row.login} has ended")
    emit(ctx, data, output=output)


def _acting(ctx: typer.Context) -> str:
    return state(ctx).settings.actor


@app.command("disable")
def disable(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """Disable a user (no sign-in, no API key works; sessions end). Not oneself."""
    with session(ctx) as s:
        data = svc.user_dict(s, svc.set_enabled(s, svc.get(s, user), False, acting=_acting(ctx)))
    emit(ctx, data, output=output)


@app.command("enable")
def enable(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """Enable a user (and lift a lock-out)."""
    with session(ctx) as s:
        data = svc.user_dict(s, svc.set_enabled(s, svc.get(s, user), True, acting=_acting(ctx)))
    emit(ctx, data, output=output)


@app.command("delete")
def delete(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """Delete a user with its roles, keys and tokens. Not oneself."""
    with session(ctx) as s:
        row = svc.get(s, user)
        login = row.login
        counts = svc.delete(s, row, acting=_acting(ctx))
    emit(ctx, {"deleted": login, **counts}, output=output)


@app.command("invite")
def invite(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="Unique login.")],
    company: CompanyOpt,
    first_name: Annotated[str, typer.Option("--first-name")],
    last_name: Annotated[str, typer.Option("--last-name")],
    email: Annotated[str | None, typer.Option(help="Send the activation token here ([smtp]).")] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    department: Annotated[str | None, typer.Option()] = None,
    role: Annotated[list[str] | None, typer.Option("--role")] = None,
    output: OutputOpt = None,
) -> None:
    """Create a disabled user with a one-time activation token (valid 72 h).

    With --email the token is e-mailed and not shown; without, it is shown once."""
    smtp = None
    if email:
        from cpaas_cli.mail import SmtpSettings

        smtp = SmtpSettings.from_config(state(ctx).settings.section("smtp"))
    with session(ctx) as s:
        user, token, emailed = svc.invite(
            s,
            company=company,
            data=_data(login=login, first_name=first_name, last_name=last_name, email=email, phone=phone),
            department_name=department,
            roles=role or [],
            smtp=smtp,
        )
        data = svc.user_dict(s, user)
    data["activation_emailed"] = emailed
    if not emailed:
        data["activation_token"] = token
        say(ctx, "the activation token is shown once; it is not stored in clear")
    emit(ctx, data, output=output)


@app.command("activate")
def activate(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The activation token from the invite.")],
    password_stdin: PasswordStdin = False,
    output: OutputOpt = None,
) -> None:
    """Activate an invited user with its first password."""
    password = read_secret(password_stdin)
    with session(ctx) as s:
        data = svc.user_dict(s, svc.activate(s, token, password))
    emit(ctx, data, output=output)


@app.command("set-password")
def set_password(
    ctx: typer.Context,
    user: UserArg,
    password_stdin: PasswordStdin = False,
    current_stdin: Annotated[
        bool,
        typer.Option(
            "--own",
            help="The user changes its own password: stdin has the current password, then the new one "
            "(the 24 h interval applies).",
        ),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Set a user's password (an operator's: the user must change it at the next sign-in)."""
    from cpaas_cli.identity import sessions

    current = read_secret(password_stdin, "Current password", confirm=False) if current_stdin else None
    password = read_secret(password_stdin, "New password")
    with session(ctx) as s:
        row = svc.get(s, user)
        if current is not None:
            sessions.check_password(s, row, current)
            passwords.set_password(s, row, password, own=True)
        else:
            passwords.set_password(s, row, password, own=False, force_change=True)
        data = svc.user_dict(s, row)
    emit(ctx, data, output=output)


@app.command("generate-password")
def generate_password(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="Also set it as this user's password.")] = None,
    length: Annotated[int, typer.Option(min=12, max=128)] = 16,
    output: OutputOpt = None,
) -> None:
    """Make a strong password (shown once); with a user, set it (to be changed at the next sign-in)."""
    value = passwords.generate(length)
    data: dict = {"password": value}
    if user:
        with session(ctx) as s:
            row = svc.get(s, user)
            passwords.set_password(s, row, value, own=False, force_change=True)
            data["login"] = row.login
    emit(ctx, data, output=output)


# ---------------------------------------------------------------- sign-in and second factors


@app.command("login")
def login(
    ctx: typer.Context,
    user: UserArg,
    password_stdin: PasswordStdin = False,
    code: Annotated[
        str | None, typer.Option("--code", help="The second-factor code (TOTP, recovery or SMS code).")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Sign in: prints a session token and a refresh token (exit 8 when refused).

    With SMS two-factor and no --code, a code is sent and no token is given yet."""
    from cpaas_cli.identity import keys, sessions

    password = read_secret(password_stdin, confirm=False)
    settings = state(ctx).settings
    ident = keys.load(settings)
    with session(ctx) as s:
        result = sessions.login(
            s,
            ident,
            login_name=user,
            password=password,
            code=code,
            ring=keys.keyring(settings),
            settings=settings,
        )
    if result.second_factor:
        say(ctx, f"a {result.second_factor} code is needed: run again with --code")
    emit(ctx, result.as_dict(), output=output)


@app.command("refresh")
def refresh(ctx: typer.Context, output: OutputOpt = None) -> None:
    """A new token pair for a refresh token read from standard input (the old one is spent)."""
    from cpaas_cli.identity import keys, sessions

    token = sys.stdin.readline().strip()
    with session(ctx) as s:
        result = sessions.refresh(s, keys.load(state(ctx).settings), token)
    emit(ctx, result.as_dict(), output=output)


@app.command("whoami")
def whoami(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Check a session token read from standard input (exit 8 when it is not valid)."""
    from cpaas_cli.identity import keys, sessions

    token = sys.stdin.readline().strip()
    with session(ctx) as s:
        p = sessions.authenticate(s, keys.load(state(ctx).settings), token)
    emit(ctx, {"user": p.login, "user_id": p.user_id, "company_id": p.company_id, "kind": p.kind}, output=output)


@app.command("logout")
def logout(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """End every session of a user."""
    from cpaas_cli.identity import sessions

    with session(ctx) as s:
        row = svc.get(s, user)
        sessions.logout(s, row)
        data = {"login": row.login, "sessions_ended": True}
    emit(ctx, data, output=output)


@app.command("totp-enrol")
def totp_enrol(ctx: typer.Context, user: UserArg, output: OutputOpt = None) -> None:
    """Start TOTP enrolment: the provisioning URI (and a QR code on stderr); confirm with `totp-confirm`."""
    from cpaas_cli.identity import keys, totp

    ring = keys.keyring(state(ctx).settings)
    with session(ctx) as s:
        row = svc.get(s, user)
        secret, uri = totp.enrol(s, ring, row)
    if not state(ctx).quiet:
        sys.stderr.write(totp.qr_text(uri))
    emit(ctx, {"login": row.login, "secret": secret, "provisioning_uri": uri}, output=output)


@app.command("totp-confirm")
def totp_confirm(
    ctx: typer.Context,
    user: UserArg,
    code: Annotated[str, typer.Option("--code", help="The authenticator's current code.")],
    output: OutputOpt = None,
) -> None:
    """Confirm TOTP with a first code; prints the recovery codes (once)."""
    from cpaas_cli.identity import keys, totp

    settings = state(ctx).settings
    with session(ctx) as s:
        row = svc.get(s, user)
        codes = totp.confirm(s, keys.keyring(settings), keys.load(settings), row, code)
    say(ctx, "the recovery codes are shown once; each works once")
    emit(ctx, {"login": row.login, "two_factor": "totp", "recovery_codes": codes}, output=output)


@app.command("two-factor")
def two_factor(
    ctx: typer.Context,
    user: UserArg,
    method: Annotated[str, typer.Argument(help="sms, or none (turns TOTP or SMS off).")],
    output: OutputOpt = None,
) -> None:
    """Turn SMS two-factor on (needs a phone) or the second factor off."""
    from cpaas_cli.identity import totp

    with session(ctx) as s:
        row = svc.get(s, user)
        if method == "sms":
            if not row.phone:
                raise InvalidInput("SMS two-factor needs a valid phone number (`user update --phone`)")
            row.two_factor = "sms"
        elif method == "none":
            totp.disable(s, row)
            row.two_factor = "none"
        else:
            raise InvalidInput(f"method: {method!r} is sms or none (TOTP starts with `user totp-enrol`)")
        s.flush()
        data = svc.user_dict(s, row)
    emit(ctx, data, output=output)


@app.command("require-2fa")
def require_2fa(
    ctx: typer.Context,
    company: Annotated[str, typer.Argument(help="Company id or name.")],
    off: Annotated[bool, typer.Option("--off", help="No longer require it.")] = False,
    output: OutputOpt = None,
) -> None:
    """Require two-factor for every user of a company (users without a phone cannot sign in)."""
    from cpaas_cli.identity import access
    from cpaas_cli.models.identity import CompanySecurity
    from cpaas_cli.tenancy.service import company as find_company

    with session(ctx) as s:
        comp = find_company(s, company)
        row = s.get(CompanySecurity, comp.id) or CompanySecurity(company_id=comp.id)
        row.two_factor_required = not off
        s.add(row)
        s.flush()
        access.bump(s)
        data = {"company_id": comp.id, "two_factor_required": row.two_factor_required}
    emit(ctx, data, output=output)
