"""`cpaas db …` and `cpaas init`."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, confirm, emit, say, session, state
from cpaas_cli.db import migrate
from cpaas_cli.tenancy import service as tenancy

app = typer.Typer(no_args_is_help=True)


def _upgrade(ctx: typer.Context, revision: str, owner: str | None) -> dict:
    url = state(ctx).settings.database_url
    before = migrate.current(url)
    migrate.upgrade(url, revision, secret_keys=_keys(ctx))
    after = migrate.current(url)
    result = {"database": _safe_url(url), "from": before, "to": after, "owner_created": False, "owner": None}
    if set(after) == set(migrate.heads(url)):
        with session(ctx) as s:
            row, created = tenancy.ensure_owner(s, owner)
            result["owner_created"] = created
            result["owner"] = {"id": row.id, "name": row.name}
    return result


def _keys(ctx: typer.Context):
    """Loads the secret keyring when a migration needs it (0024 encrypts stored passwords)."""
    from cpaas_cli.secretbox import load_keyring

    return lambda: load_keyring(state(ctx).settings)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable>"


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision (default: head).")] = "head",
    output: OutputOpt = None,
) -> None:
    """Apply migrations up to REVISION. The first upgrade also creates the system owner."""
    result = _upgrade(ctx, revision, None)
    say(ctx, f"database at {', '.join(result['to']) or 'base'}")
    emit(ctx, result, output=output)


def init(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option("--owner", help="Name of the system owner company.")],
    output: OutputOpt = None,
) -> None:
    """Create or upgrade the database and name the system owner."""
    result = _upgrade(ctx, "head", owner)
    emit(ctx, result, output=output)


@app.command("current")
def current(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show the revision the database is at."""
    url = state(ctx).settings.database_url
    revs = migrate.current(url)
    heads = migrate.heads(url)
    emit(
        ctx,
        {"database": _safe_url(url), "current": revs, "heads": heads, "up_to_date": set(revs) == set(heads)},
        output=output,
    )


@app.command("history")
def history(ctx: typer.Context, output: OutputOpt = None) -> None:
    """List every migration, newest first, marking the applied one."""
    emit(ctx, migrate.history(state(ctx).settings.database_url), output=output)


@app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; data in dropped tables is lost.")] = False,
    output: OutputOpt = None,
) -> None:
    """Revert migrations down to REVISION (drops tables and their data).

    Runs in one transaction: it reaches REVISION or changes nothing."""
    url = state(ctx).settings.database_url
    confirm(ctx, f"Downgrade {_safe_url(url)} to {revision}? Data in dropped tables is lost.", yes)
    before = migrate.current(url)
    migrate.downgrade(url, revision, secret_keys=_keys(ctx))
    emit(ctx, {"database": _safe_url(url), "from": before, "to": migrate.current(url)}, output=output)


@app.command("report-role")
def report_role_cmd(
    ctx: typer.Context,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Set the role's password from this environment variable (sent as a SCRAM verifier, never shown).",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Create or refresh the read-only PostgreSQL role saved reports run as (PostgreSQL only).

    The role (default cpaas_report, the user of [report] url) logs in on its own,
    is no superuser and member of no role, is read-only by default, and may
    SELECT only the report-visible columns of this database: never a secret
    column. Run it again after `db upgrade` so new tables become visible.
    """
    import os

    from cpaas_cli.db.engine import get_engine
    from cpaas_cli.errors import InvalidInput
    from cpaas_cli.reports import report_role, sandbox

    settings = state(ctx).settings
    engine = get_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        raise InvalidInput(report_role.SQLITE_REFUSAL)
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise InvalidInput(f"--password-env: the environment variable {password_env} is not set")
    role = sandbox.report_role_name(settings)
    result = report_role.ensure(engine, role, timeout=sandbox.limits(settings).timeout, password=password)
    say(ctx, f"report role {role!r} {'created' if result['created'] else 'refreshed'} in {result['database']}")
    emit(ctx, result, output=output)
