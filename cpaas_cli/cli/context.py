"""Per-invocation state and helpers shared by every command group."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cpaas_cli import files
from cpaas_cli.cli.output import Fmt, cut_notice, render, select, terminal_safe
from cpaas_cli.config import Settings, load_settings
from cpaas_cli.errors import InvalidInput, Problem, UsageError
from cpaas_cli.timeutil import TimeError, parse_time, zone

if TYPE_CHECKING:
    from sqlmodel import Session


@dataclass
class AppState:
    config: str | None = None
    db: str | None = None
    output: Fmt | None = None
    quiet: bool = False
    actor: str | None = None
    secret_key_file: str | None = None
    columns: list[str] | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(
                config=self.config, db=self.db, actor=self.actor, secret_key_file=self.secret_key_file
            )
        return self._settings


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def command_path(ctx: typer.Context) -> str:
    parts = ctx.command_path.split()
    return " ".join(parts[1:]) if parts else ""


@contextmanager
def session(ctx: typer.Context) -> Iterator[Session]:
    """A session whose transaction commits when the command succeeds.

    Imported here, not at the top, so that `cpaas --help` loads no database
    code; the session registers the audit module's flush hooks (audit rows,
    ``updated_at``) before it can flush, whichever group the command is in.
    """
    from cpaas_cli.db.engine import get_engine, session_scope

    st = state(ctx)
    engine = get_engine(st.settings.database_url)
    with session_scope(engine, actor=st.settings.actor, command=command_path(ctx)) as s:
        yield s


def one_more(limit: int | None) -> int | None:
    """What a list command asks its service for: one row past ``--limit``, so that
    ``emit(limit=…)`` knows whether the limit cut the list without counting anything."""
    return None if limit is None else limit + 1


def emit(
    ctx: typer.Context,
    data: dict[str, Any] | list[dict[str, Any]],
    *,
    output: Fmt | None = None,
    columns: list[str] | None = None,
    limit: int | None = None,
    keep_last: bool = False,
    limit_hint: str | None = None,
    row_style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """Render ``data`` on stdout in the chosen format (``row_style``: see ``output.render``).

    ``--columns`` (every command with ``-o``) keeps only the named fields, in
    every format; ``-o wide`` shows every field at full width.

    ``limit``: the list's ``--limit``, with ``data`` fetched as ``one_more(limit)``
    rows. A longer list is cut to ``limit`` rows (the first ones, or the last
    ones with ``keep_last``) and stderr says so ("showing 150 of more than 150;
    use --limit N to see more", or ``limit_hint`` after the semicolon); a list
    the limit did not cut says nothing. stdout only ever carries the rows.
    """
    notice = None
    if isinstance(data, list) and limit is not None and len(data) > limit:
        data = data[-limit:] if keep_last else data[:limit]
        notice = cut_notice(limit, limit_hint)
    st = state(ctx)
    fmt = output or st.output or Fmt.table
    if st.columns:
        data = select(data, st.columns)
        columns = st.columns
    elif fmt is Fmt.wide:
        columns = None  # every field, not only the table's usual columns
    render(data, fmt, columns=columns if fmt in (Fmt.table, Fmt.wide, Fmt.csv, Fmt.tsv) else None, row_style=row_style)
    if notice:
        say(ctx, notice)


def _set_columns(ctx: Any, _param: Any, value: str | None) -> None:
    if value:
        state(ctx).columns = [c.strip() for c in value.split(",") if c.strip()]


_COLUMNS_OPTION: list[Any] = []


def _columns_option() -> Any:
    """The ``--columns`` option, built once the way Typer builds any option."""
    if not _COLUMNS_OPTION:

        def proto(
            columns: Annotated[
                str | None,
                typer.Option(
                    "--columns",
                    metavar="A,B,C",
                    expose_value=False,
                    callback=_set_columns,
                    help="Only these columns (fields), in this order, in every output format.",
                ),
            ] = None,
        ) -> None:
            """(prototype)"""

        holder = typer.Typer(add_completion=False)
        holder.command()(proto)
        _COLUMNS_OPTION.append(typer.main.get_command(holder).params[0])
    return _COLUMNS_OPTION[0]


def add_columns_option(command: Any) -> None:
    """Give every command with ``-o/--output FORMAT`` under ``command`` a ``--columns a,b,c`` option."""
    subs = getattr(command, "commands", None)
    if subs is not None:
        for sub in subs.values():
            add_columns_option(sub)
        return
    names = {n for p in command.params for n in p.opts}
    if "--columns" in names:
        return
    if any(_takes_formats(p) for p in command.params):
        command.params.append(_columns_option())


def _takes_formats(param: Any) -> bool:
    """``-o/--output`` with the usual formats (not e.g. `service tree export`'s yaml|json document)."""
    descriptor = getattr(param, "type_descriptor", None)
    return "--output" in param.opts and descriptor is not None and descriptor.annotation is Fmt


def say(ctx: typer.Context, message: str) -> None:
    """A message for the operator (stderr), silenced by --quiet."""
    if not state(ctx).quiet:
        lines = message.rstrip("\n").split("\n")  # a message may have lines; the values in them are escaped
        sys.stderr.write("\n".join(terminal_safe(line) for line in lines) + "\n")


def when(text: str | None, field: str, tz: str = "UTC", tz_field: str = "--tz") -> datetime | None:
    """Parse a time option; a bad value is InvalidInput naming the option (a bad
    zone names ``tz_field``, the option that gave it)."""
    if text is None:
        return None
    try:
        zone(tz)
    except TimeError as exc:
        raise InvalidInput(str(Problem(tz_field, str(exc))), problems=[Problem(tz_field, str(exc))]) from exc
    try:
        return parse_time(text, tz)
    except TimeError as exc:
        raise InvalidInput(str(Problem(field, str(exc))), problems=[Problem(field, str(exc))]) from exc


def confirm(ctx: typer.Context, question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Refusing without --yes when not on a terminal")
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)


def out_target(
    ctx: typer.Context, path: str | Path, *, force: bool, inputs: tuple[str | Path, ...] = (), option: str = "--out"
) -> Path:
    """Check a file the command will write (see ``files.safe_target``): never the
    database file(s), the config file or an input file; an existing file only with --force."""
    st = state(ctx)
    protect: list[tuple[str | Path, str]] = [
        (f, "the database file") for f in files.database_files(st.settings.database_url)
    ]
    if st.settings.config_path is not None:
        protect.append((st.settings.config_path, "the config file"))
    protect += [(f, "the input file") for f in inputs]
    return files.safe_target(path, force=force, protect=protect, option=option)


ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")]

OutputOpt = Annotated[
    Fmt | None,
    typer.Option(
        "--output", "-o", help="Output format: table (fitted to the terminal), wide, json, jsonl, csv or tsv."
    ),
]


def progress_bar(ctx: typer.Context) -> Any:
    """A rich progress bar (description, bar, done/total, time) on stderr, dropped when
    done; None when quiet or stderr is not a terminal (pipes and cron get no bar)."""
    if state(ctx).quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
