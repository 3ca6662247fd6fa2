"""The `cpaas` command: global options, error handling and the command groups."""

from __future__ import annotations

import sys
from typing import Annotated

import sqlalchemy.exc
import typer
from typer.core import TyperGroup

from cpaas_cli import __version__
from cpaas_cli.cli.context import AppState, state
from cpaas_cli.cli.output import Fmt
from cpaas_cli.errors import CpaasError, ExitCode


def _fail(ctx_quiet: bool, message: str, problems=None, code: int = ExitCode.ERROR) -> None:
    sys.stderr.write(f"error: {message}\n")
    for p in problems or []:
        sys.stderr.write(f"  {p}\n")
    raise typer.Exit(int(code))


class CpaasGroup(TyperGroup):
    """Root group: turns domain errors into one line on stderr and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CpaasError as exc:
            shown = exc.problems if len(exc.problems) > 1 else []
            _fail(False, exc.message, shown, exc.exit_code)
        except sqlalchemy.exc.OperationalError as exc:
            text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            hint = " (run `cpaas db upgrade`)" if "no such table" in text or "does not exist" in text else ""
            _fail(False, f"database error: {text}{hint}")
        except sqlalchemy.exc.ProgrammingError as exc:
            text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            hint = " (run `cpaas db upgrade`)" if "does not exist" in text else ""
            _fail(False, f"database error: {text}{hint}")
        except sqlalchemy.exc.IntegrityError as exc:
            text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            _fail(False, f"conflict: {text}", code=ExitCode.CONFLICT)


app = typer.Typer(
    cls=CpaasGroup,
    name="cpaas",
    help="Operations toolkit for an A2P messaging platform (CPaaS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"cpaas {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None, typer.Option("--config", help="Config file (env CPAAS_CONFIG; default ./cpaas.toml).")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL (env CPAAS_DATABASE_URL).")] = None,
    output: Annotated[Fmt | None, typer.Option("--output", "-o", help="Output format for every command.")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no messages on stderr, only data and errors.")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who is acting, for the audit trail (env CPAAS_ACTOR).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = AppState(config=config, db=db, output=output, quiet=quiet, actor=actor)


def _register() -> None:
    from cpaas_cli.cli import agreement, audit, connection, db, dev, message, tenant
    from cpaas_cli.cli import campaign as campaign_cli
    from cpaas_cli.cli import contacts as contacts_cli
    from cpaas_cli.cli import rates as rates_cli
    from cpaas_cli.cli import sender as sender_cli
    from cpaas_cli.cli import service as service_cli

    app.add_typer(db.app, name="db", help="Database schema: upgrade, current, history, downgrade.")
    app.command("init")(db.init)
    app.add_typer(tenant.app, name="tenant", help="Companies (owner, resellers, clients), legal entities, banks.")
    app.add_typer(agreement.app, name="agreement", help="Agreements (one balance each) and their versions.")
    import cpaas_cli.cli.periods  # noqa: F401  (adds `agreement periods`)

    app.add_typer(audit.app, name="audit", help="The audit trail of every change.")
    app.add_typer(message.app, name="message", help="Check a text: encoding, characters, segments.")
    app.add_typer(service_cli.app, name="service", help="Services (rate plans, packs), scopes and rate trees.")
    app.add_typer(rates_cli.app, name="rates", help="Rate import, price lookup and coverage export.")
    app.add_typer(contacts_cli.app, name="contacts", help="Contacts, groups, custom fields, stop list, imports.")
    app.add_typer(
        connection.app, name="connection", help="Vendor connections (SMPP binds) that dispatch sends through."
    )
    app.add_typer(sender_cli.app, name="sender", help="Sender IDs per company, channel and agreement.")
    app.add_typer(campaign_cli.app, name="campaign", help="Campaigns: templates, create, estimate, send, lifecycle.")
    app.add_typer(dev.app, name="dev", help="Development and demo tools: a simulated SMSC.")
    from cpaas_cli.cli import balance, edr, fee, payment

    app.add_typer(edr.app, name="edr", help="EDRs: ingest, rate, list, show, export, export tasks.")
    import cpaas_cli.cli.edr_export  # noqa: F401  (adds `edr export` and `edr export-task`)
    from cpaas_cli.cli import report

    app.add_typer(report.app, name="report", help="Traffic summaries, charts, campaign reports, saved SQL reports.")
    app.add_typer(balance.app, name="balance", help="Agreement balances and their history.")
    app.add_typer(payment.app, name="payment", help="Payments: add, confirm, unconfirm, delete.")
    app.add_typer(fee.app, name="fee", help="Additional fees charged to agreements.")
    from cpaas_cli.cli import fees as fees_cli
    from cpaas_cli.cli import invoice as invoice_cli

    app.add_typer(
        invoice_cli.app, name="invoice", help="Invoices: run, list, show, recalculate, confirm, void, export."
    )
    app.add_typer(fees_cli.app, name="fees", help="Recurring and one-time fee rules (sender ID fees) and their runs.")
    from cpaas_cli.cli import rerate as rerate_cli

    app.add_typer(rerate_cli.app, name="rerate", help="Rerate tasks: create, preview, run, list, show, cancel.")
    from cpaas_cli.cli import serve as serve_cli

    app.command("serve")(serve_cli.serve)
    app.add_typer(serve_cli.inbound_app, name="inbound", help="Inbound messages: MO and unmatched receipts.")


_register()


def main() -> None:
    app()


__all__ = ["app", "main", "state"]
