"""`cpaas apikey …`: API keys of users. A key is shown once, at creation or
regeneration; only its prefix is ever shown again."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, state, when
from cpaas_cli.cli.options import CompanyFilterOpt
from cpaas_cli.errors import InvalidInput
from cpaas_cli.identity import apikeys, keys
from cpaas_cli.identity import users as user_svc

app = typer.Typer(no_args_is_help=True, help="API keys: create, list, regenerate, expire, revoke, verify.")

COLUMNS = ["id", "name", "user", "prefix", "scopes", "status", "created_at", "expires_at", "last_used_at"]
KeyArg = Annotated[str, typer.Argument(help="Key id, prefix or name (names with --user).")]
UserOpt = Annotated[str | None, typer.Option("--user", help="The key's user (login or id).")]


def _row(s, ref: str, user: str | None):
    return apikeys.get(s, ref, user=user_svc.get(s, user) if user else None)


def _parse(text: str, field: str):
    return when(text, field)


@app.command("create")
def create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="User login or id.")],
    name: Annotated[str, typer.Option("--name", help="Unique per user (≤ 60).")] = "default",
    expires: Annotated[
        str | None, typer.Option("--expires", help="1d, 7d, 30d, 3m, 1y, never (default) or a time.")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Limit the key to area or area.action (repeat).")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Create a key; the key is printed once and cannot be shown again."""
    ident = keys.load(state(ctx).settings)
    with session(ctx) as s:
        row, text = apikeys.create(
            s,
            ident,
            user=user_svc.get(s, user),
            name=name,
            expires_at=apikeys.expiry_from(expires, _parse),
            scopes=scope or [],
        )
        data = apikeys.key_dict(s, row)
    data["key"] = text
    say(ctx, "the key is shown once; store it now")
    emit(ctx, data, output=output)


@app.command("list")
def list_(ctx: typer.Context, user: UserOpt = None, output: OutputOpt = None) -> None:
    """List keys, newest first (never the secrets)."""
    with session(ctx) as s:
        rows = apikeys.list_keys(s, user=user_svc.get(s, user) if user else None)
        data = [apikeys.key_dict(s, r) for r in rows]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("regenerate")
def regenerate(ctx: typer.Context, key: KeyArg, user: UserOpt = None, output: OutputOpt = None) -> None:
    """A new secret for the key; the old one stops working at once."""
    ident = keys.load(state(ctx).settings)
    with session(ctx) as s:
        row = _row(s, key, user)
        text = apikeys.regenerate(s, ident, row)
        data = apikeys.key_dict(s, row)
    data["key"] = text
    say(ctx, "the key is shown once; store it now")
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    key: KeyArg,
    user: UserOpt = None,
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", help="POST delivery and MO callbacks here (http/https).")
    ] = None,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="A new callback signing secret (shown once).")
    ] = False,
    no_callback: Annotated[bool, typer.Option("--no-callback", help="Stop making callbacks for this key.")] = False,
    output: OutputOpt = None,
) -> None:
    """Set the key's callback URL; its signing secret is shown once, when made or rotated."""
    from cpaas_cli.callbacks import service as callbacks

    if no_callback and (callback_url or rotate_secret):
        raise InvalidInput("--no-callback goes alone")
    if not (no_callback or callback_url or rotate_secret):
        raise InvalidInput("give --callback-url, --rotate-secret or --no-callback")
    ring = None if no_callback else keys.keyring(state(ctx).settings)
    shown = None
    with session(ctx) as s:
        row = _row(s, key, user)
        if no_callback:
            callbacks.clear_callback(s, row)
            cb = None
        else:
            cb, shown = callbacks.set_callback(s, ring, row, url=callback_url, rotate=rotate_secret)
        data = {**apikeys.key_dict(s, row), **callbacks.callback_dict(cb)}
    if shown is not None:
        data["callback_secret"] = shown
        say(ctx, "the callback signing secret is shown once; store it now")
    emit(ctx, data, output=output)


@app.command("expire")
def expire(
    ctx: typer.Context,
    key: KeyArg,
    user: UserOpt = None,
    at: Annotated[str | None, typer.Option("--at", help="Expire at this time (or extend); default now.")] = None,
    output: OutputOpt = None,
) -> None:
    """Expire a key now, or set its expiry time."""
    with session(ctx) as s:
        row = apikeys.set_expiry(s, _row(s, key, user), when(at, "--at"))
        data = apikeys.key_dict(s, row)
    emit(ctx, data, output=output)


@app.command("revoke")
def revoke(ctx: typer.Context, key: KeyArg, user: UserOpt = None, output: OutputOpt = None) -> None:
    """Revoke a key for good."""
    with session(ctx) as s:
        data = apikeys.key_dict(s, apikeys.revoke(s, _row(s, key, user)))
    emit(ctx, data, output=output)


@app.command("verify")
def verify(
    ctx: typer.Context,
    permission: Annotated[str | None, typer.Option(help="Also check this permission, e.g. campaign.send.")] = None,
    company: CompanyFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """Check a key read from standard input (exit 8 when it authenticates nothing)."""
    from cpaas_cli.db.engine import get_engine
    from cpaas_cli.tenancy.service import company as find_company

    text = sys.stdin.readline().strip()
    if not text:
        raise InvalidInput("give the key on standard input")
    st = state(ctx).settings
    engine = get_engine(st.database_url)
    company_id = None
    if company:
        with session(ctx) as s:
            company_id = find_company(s, company).id
    auth = apikeys.Authenticator(engine, keys.load(st))
    try:
        p = auth.authenticate(text, permission, company_id)
    finally:
        auth.close()
    emit(
        ctx,
        {"user": p.login, "user_id": p.user_id, "company_id": p.company_id, "kind": p.kind, "permission": permission},
        output=output,
    )
