"""The `cpaas` command: global options, error handling and the command groups.

The command groups load lazily: `cpaas report summary` imports the modules of
the `report` group only, not those of the twenty other groups (campaigns,
Alembic, jinja2, matplotlib…), so every command starts in a fraction of the time.
``ENTRIES`` names each group's module and keeps its one-line help, which is
what `cpaas --help` lists without importing anything (a test checks that the
two agree).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from cpaas_cli import __version__, timeutil
from cpaas_cli.cli import aliases, helptext
from cpaas_cli.cli.context import AppState, add_columns_option, state
from cpaas_cli.cli.output import Fmt, terminal_safe
from cpaas_cli.config import date_range, xlsx_limits
from cpaas_cli.errors import CpaasError, ExitCode
from cpaas_cli.imports import limits as import_limits

# name → (kind, modules under cpaas_cli.cli to import, attribute of the first one, help)
# Listed in the order `cpaas --help` shows them: the two top-level commands, then the groups.
ENTRIES: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "init": ("command", ("db",), "init", "Create or upgrade the database and name the system owner."),
    "serve": (
        "command",
        ("serve",),
        "serve",
        "Run the dispatch workers and the scheduler until SIGTERM/SIGINT (or with --once, until done).",
    ),
    "doctor": (
        "command",
        ("doctor",),
        "doctor",
        "Check the installation: database, migrations, owner, connections, scheduler, SMTP, disk.",
    ),
    "db": ("group", ("db",), "app", "Database schema: upgrade, current, history, downgrade; the report role."),
    "tenant": ("group", ("tenant",), "app", "Companies (owner, resellers, clients), legal entities, banks."),
    "agreement": ("group", ("agreement",), "app", "Agreements (one balance each) and their versions."),
    "audit": ("group", ("audit",), "app", "The audit trail of every change."),
    "message": ("group", ("message",), "app", "Check a text: encoding, characters, segments."),
    "service": ("group", ("service",), "app", "Services (rate plans, packs), scopes and rate trees."),
    "rates": ("group", ("rates",), "app", "Rate import, price lookup and coverage export."),
    "contacts": ("group", ("contacts",), "app", "Contacts, groups, custom fields, stop list, imports."),
    "connection": ("group", ("connection",), "app", "Vendor connections (SMPP binds) that dispatch sends through."),
    "sender": ("group", ("sender",), "app", "Sender IDs per company, channel and agreement."),
    "campaign": ("group", ("campaign",), "app", "Campaigns: templates, create, estimate, send, lifecycle."),
    "dev": ("group", ("dev",), "app", "Development and demo tools: a simulated SMSC."),
    "edr": ("group", ("edr",), "app", "EDRs: ingest, rate, list, show, export, export tasks."),
    "report": (
        "group",
        ("report",),
        "app",
        "Traffic summaries, charts, campaign reports, saved SQL reports.",
    ),
    "balance": ("group", ("balance",), "app", "Agreement balances and their history."),
    "payment": ("group", ("payment",), "app", "Payments: add, confirm, unconfirm, delete."),
    "fee": ("group", ("fee",), "app", "Additional fees charged to agreements."),
    "invoice": ("group", ("invoice",), "app", "Invoices: run, list, show, recalculate, confirm, void, export."),
    "fee-rules": (
        "group",
        ("fee_rules",),
        "app",
        "Recurring and one-time fee rules (sender ID fees) and their runs.",
    ),
    "rerate": (
        "group",
        ("rerate",),
        "app",
        "Rerate tasks: create, preview, run, list, show, cancel. Counters in two groups: EDRs (estimated, "
        "processed, updated, unchanged, failed) and reseller CDRs (cdr_processed, cdr_created, cdr_updated, "
        "cdr_unchanged, cdr_failed).",
    ),
    "inbound": ("group", ("serve",), "inbound_app", "Inbound messages: MO and unmatched receipts."),
    "secrets": (
        "group",
        ("secrets",),
        "app",
        "Secrets at rest: make a key, check it, rotate stored secrets to a new one.",
    ),
    "user": ("group", ("user",), "app", "Users (BackOffice and client portal), passwords, two-factor, sign-in."),
    "role": ("group", ("role",), "app", "Roles: system roles, custom roles, granting them to users."),
    "apikey": ("group", ("apikey",), "app", "API keys: create, list, regenerate, expire, revoke, verify."),
    "callback": ("group", ("callback",), "app", "Callbacks of API messages: the outbox, dead letters, retry."),
    "api": ("group", ("api",), "app", "The HTTP API of `serve --http`: its OpenAPI document."),
    "otp": ("group", ("otp",), "app", "OTP / 2FA: integrations, test sends, requests."),
}

# Old spellings kept for a release: name → (module under cpaas_cli.cli, attribute, help).
# Hidden from `cpaas --help`; the group itself warns on stderr that it is deprecated.
ALIASES: dict[str, tuple[str, str, str]] = {
    "fees": ("fee_rules", "legacy_app", "Deprecated: use `cpaas fee-rules`."),
}

_LOADED: dict[str, Any] = {}


def load(name: str) -> Any:
    """The click command of one entry, importing its modules on first use."""
    if name in ALIASES:
        return _alias(name)
    if name not in _LOADED:
        kind, modules, attr, help_ = ENTRIES[name]
        loaded = [importlib.import_module(f"cpaas_cli.cli.{m}") for m in modules]
        target = getattr(loaded[0], attr)
        # built exactly as `app.add_typer` / `app.command` would build it under the root
        holder = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
        if kind == "group":
            holder.add_typer(target, name=name, help=help_)
        else:
            holder.command(name)(target)
        cmd = typer.main.get_group(holder).commands[name]
        add_columns_option(cmd)
        helptext.polish(cmd, name)
        aliases.install(cmd, name)
        _LOADED[name] = cmd
    return _LOADED[name]


def _alias(name: str) -> Any:
    """The hidden click group of an old spelling (see ``ALIASES``)."""
    if name not in _LOADED:
        module, attr, help_ = ALIASES[name]
        target = getattr(importlib.import_module(f"cpaas_cli.cli.{module}"), attr)
        holder = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
        holder.add_typer(target, name=name, help=help_, hidden=True)
        _LOADED[name] = typer.main.get_group(holder).commands[name]
    return _LOADED[name]


class _Commands(MutableMapping):
    """The root group's commands: ``ENTRIES`` (loaded on lookup) plus any added eagerly."""

    def __init__(self, eager: MutableMapping[str, Any]):
        self._eager = dict(eager)

    def __getitem__(self, name: str) -> Any:
        if name in self._eager:
            return self._eager[name]
        if name in ENTRIES or name in ALIASES:
            return load(name)
        raise KeyError(name)

    def __setitem__(self, name: str, cmd: Any) -> None:
        self._eager[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self._eager[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._eager
        yield from (n for n in ENTRIES if n not in self._eager)

    def __len__(self) -> int:
        return len(set(self._eager) | set(ENTRIES))


def _fail(message: str, problems=None, code: int = ExitCode.ERROR) -> None:
    sys.stderr.write(f"error: {terminal_safe(message)}\n")  # one line, whatever the values in it
    for p in problems or []:
        sys.stderr.write(f"  {terminal_safe(str(p))}\n")
    raise typer.Exit(int(code))


def _timed_out(text: str) -> None:
    """A statement PostgreSQL cancelled at the statement timeout of an interactive command (exit 1)."""
    if "statement timeout" not in text.lower():
        return
    from cpaas_cli.db.engine import current_profile

    limit = current_profile().statement_timeout
    _fail(
        f"the database stopped a statement after {limit:g} s (the statement timeout of interactive commands: "
        "[database] statement_timeout or CPAAS_DB_STATEMENT_TIMEOUT, 0 turns it off); "
        "this command's open transaction was rolled back"
    )


def _busy(text: str) -> None:
    """A lock wait that ran out, or a deadlock between two commands: a
    conflict with a concurrent command (exit 5), in words, not the driver's."""
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low:
        _fail(
            "the database is busy: another command held its write lock longer than the 30 s wait; "
            "this command's open transaction was rolled back, try again",
            code=ExitCode.CONFLICT,
        )
    if "deadlock detected" in low or "could not serialize" in low or "lock timeout" in low:
        _fail(
            "a concurrent command changed the same rows; this command's open transaction was rolled back, try again",
            code=ExitCode.CONFLICT,
        )


def _cannot_connect(text: str) -> None:
    """One line for a connection the server refused (no role, no database, bad
    password, nothing listening): never the "run db upgrade" hint."""
    if not text.startswith(("connection failed:", "connection is bad:")):
        return
    reason = text.split(":", 1)[1].strip()
    if "FATAL:" in reason:
        reason = reason.rsplit("FATAL:", 1)[1].strip()
    _fail(f"cannot connect: {reason}")


def _driver_error(exc: Exception) -> None:
    """One line for an error raised by the driver itself: bulk paths (COPY, raw
    cursors) talk to psycopg or sqlite3 without SQLAlchemy's wrapping."""
    for name in ("psycopg", "sqlite3"):
        mod = sys.modules.get(name)
        if mod is None or not isinstance(exc, mod.Error):
            continue
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, mod.IntegrityError):
            _fail(f"conflict: {text}", code=ExitCode.CONFLICT)
        if isinstance(exc, mod.DataError):  # a value the column cannot hold (too long, out of range)
            _fail(f"invalid data: {text}", code=ExitCode.INVALID_INPUT)
        if isinstance(exc, mod.OperationalError | mod.ProgrammingError):
            _timed_out(text)
            _busy(text)
            _cannot_connect(text)
            _fail(f"database error: {text}")


def _db_error(exc: Exception) -> None:
    """One line for a database error (SQLAlchemy is imported only by the commands that use it)."""
    _driver_error(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(
        exc, sa_exc.OperationalError | sa_exc.ProgrammingError | sa_exc.IntegrityError | sa_exc.DataError
    ):
        return
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if isinstance(exc, sa_exc.DataError):
        _fail(f"invalid data: {text}", code=ExitCode.INVALID_INPUT)
    if isinstance(exc, sa_exc.OperationalError):
        _timed_out(text)
        _busy(text)
        _cannot_connect(text)
        hint = " (run `cpaas db upgrade`)" if "no such table" in text or "does not exist" in text else ""
        _fail(f"database error: {text}{hint}")
    if isinstance(exc, sa_exc.ProgrammingError):
        hint = " (run `cpaas db upgrade`)" if "does not exist" in text else ""
        _fail(f"database error: {text}{hint}")
    if isinstance(exc, sa_exc.IntegrityError):
        _fail(f"conflict: {text}", code=ExitCode.CONFLICT)


class CpaasGroup(TyperGroup):
    """Root group: lazy command groups; domain errors become one line on stderr and an exit code."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # names only: TyperGroup's version would load every entry

    def format_commands(self, ctx, formatter) -> None:
        # the stored one-line help of each entry: listing the groups imports none of them
        shown = {n: TyperCommand(name=n, help=ENTRIES[n][3]) for n in ENTRIES}
        cmds = [(n, shown.get(n) or self.commands[n]) for n in self.list_commands(ctx)]
        cmds = [(n, c) for n, c in cmds if not c.hidden]
        if not cmds:
            return
        limit = formatter.width - 6 - max(len(n) for n, _ in cmds)
        with formatter.section("Commands"):
            formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in cmds])

    def resolve_command(self, ctx, args):
        ctx.meta["cpaas.args"] = list(args)  # for the command's name in pg_stat_activity (_command_words)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CpaasError as exc:
            shown = exc.problems if len(exc.problems) > 1 else []
            _fail(exc.message, shown, exc.exit_code)
        except UnicodeEncodeError as exc:  # bytes that are not UTF-8 (in an argument) reached a driver
            _fail(f"invalid input: text that is not valid UTF-8 ({exc.reason})", code=ExitCode.INVALID_INPUT)
        except Exception as exc:
            _db_error(exc)
            raise
        finally:
            if "cpaas_cli.db.engine" in sys.modules:  # in-process runs (tests): this command's pool is closed
                sys.modules["cpaas_cli.db.engine"].release_profile()


app = typer.Typer(
    cls=CpaasGroup,
    name="cpaas",
    help="Operations toolkit for an A2P messaging platform (CPaaS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion [bash|zsh|fish|powershell]
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
        str | None,
        typer.Option("--config", metavar="PATH", help="Config file (env CPAAS_CONFIG; default ./cpaas.toml)."),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", metavar="URL", help="Database URL (env CPAAS_DATABASE_URL).")
    ] = None,
    output: Annotated[Fmt | None, typer.Option("--output", "-o", help="Output format for every command.")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no messages on stderr, only data and errors.")
    ] = False,
    actor: Annotated[
        str | None,
        typer.Option("--actor", metavar="NAME", help="Who is acting, for the audit trail (env CPAAS_ACTOR)."),
    ] = None,
    secret_key_file: Annotated[
        str | None,
        typer.Option(
            "--secret-key-file",
            metavar="PATH",
            help="File with the key that encrypts stored passwords (env CPAAS_SECRET_KEY, config [secrets] key_file).",
        ),
    ] = None,
    raw_cells: Annotated[
        bool,
        typer.Option(
            "--raw-cells",
            envvar="CPAAS_RAW_CELLS",
            help="Write CSV/TSV cells as they are (no quote before = + - @: for programs, not spreadsheets).",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    from cpaas_cli import files

    files.set_formula_guard(not raw_cells)
    ctx.obj = st = AppState(
        config=config, db=db, output=output, quiet=quiet, actor=actor, secret_key_file=secret_key_file
    )
    timeutil.set_date_range(lambda: date_range(st.settings))  # read when a date is first checked
    _set_db_profile(ctx, st)
    import_limits.set_provider(lambda: xlsx_limits(st.settings))  # read when a workbook is opened


def _set_db_profile(root: typer.Context, st: AppState) -> None:
    """This command's PostgreSQL profile (``db/pool.py``), named after its command
    path (`tenant list`, from the words ``CpaasGroup.resolve_command`` saw) and
    worked out when the command first opens the database."""

    def profile():
        from cpaas_cli.db import pool

        return pool.cli_profile(st.settings, _command_words(root))

    from cpaas_cli.db import pool  # no SQLAlchemy: a command that never opens the database loads none

    pool.set_profile(profile)


def _command_words(root: typer.Context) -> str:
    """`tenant list` for `cpaas … tenant list -o json`: the command names, canonical (an alias
    gives its command's name), up to the first option."""
    words: list[str] = []
    cmd: Any = root.command
    for arg in root.meta.get("cpaas.args", []):
        if arg.startswith("-") or not hasattr(cmd, "get_command"):
            break
        sub = cmd.get_command(root, arg)
        if sub is None:
            break
        words.append(sub.name or arg)
        cmd = sub
    return " ".join(words)


def _no_color() -> None:
    """NO_COLOR (https://no-color.org), set to anything: no colour and no other escape
    codes either, even where FORCE_COLOR or a terminal would turn them on. rich (tables,
    help, progress) writes plain text for a "dumb" terminal."""
    if os.environ.get("NO_COLOR"):
        for name in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE"):
            os.environ.pop(name, None)
        os.environ["TERM"] = "dumb"


def main() -> None:
    _no_color()
    app(prog_name="cpaas")  # also under `python -m cpaas_cli`: completion scripts name `cpaas`


__all__ = ["ENTRIES", "app", "load", "main", "state"]
