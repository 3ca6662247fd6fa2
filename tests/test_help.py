"""`--help` of every command: NAME-style metavars, and an example for every command
that takes a file or a time (issue 25 item 7); the example parses as that command."""

from __future__ import annotations

import re
import shlex

import pytest
import typer
from typer import _click as click
from typer.testing import CliRunner

from cpaas_cli.cli.app import ENTRIES, app, load


def _walk(cmd, path, ctx):
    if getattr(cmd, "commands", None):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            yield from _walk(sub, [*path, name], click.core.Context(sub, info_name=name, parent=ctx))
    else:
        yield path, cmd, ctx


def _commands():
    root = typer.main.get_command(app)
    rctx = click.core.Context(root, info_name="cpaas")
    out = []
    for name in ENTRIES:
        cmd = load(name)
        out += list(_walk(cmd, [name], click.core.Context(cmd, info_name=name, parent=rctx)))
    return out


COMMANDS = _commands()


def _takes_file_or_time(cmd) -> bool:
    for p in cmd.params:
        help_ = (getattr(p, "help", None) or "").lower()
        name = (p.name or "").lower()
        if name in ("file", "files", "out", "path") or "iso 8601" in help_ or "yyyy-mm-dd" in help_:
            return True
        if name in ("from_", "till", "at", "since", "until") and not getattr(p, "is_flag", False):
            return True
    return False


def test_the_walk_sees_every_command():
    paths = {" ".join(p) for p, _, _ in COMMANDS}
    assert {"agreement create", "rates import", "edr export", "doctor", "tenant list"} <= paths
    assert len(COMMANDS) > 150


@pytest.mark.parametrize(("path", "cmd", "ctx"), COMMANDS, ids=[" ".join(p) for p, _, _ in COMMANDS])
def test_help_uses_name_style_metavars(path, cmd, ctx):
    text = cmd.get_help(ctx)
    usage = text.splitlines()[0]
    assert "{" not in usage, usage
    assert not re.search(r"<(str|int|float|path|list\[str\]|int range|float range)>", text), text


def test_root_help_metavars():
    text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout
    assert "--config PATH" in text and "--db URL" in text and "--actor NAME" in text
    assert "<str>" not in text


FILE_OR_TIME = [(p, c, x) for p, c, x in COMMANDS if _takes_file_or_time(c)]


def test_there_are_commands_with_files_and_times():
    assert len(FILE_OR_TIME) > 25


@pytest.mark.parametrize(("path", "cmd", "ctx"), FILE_OR_TIME, ids=[" ".join(p) for p, _, _ in FILE_OR_TIME])
def test_commands_taking_a_file_or_a_time_show_an_example_that_parses(path, cmd, ctx):
    text = cmd.get_help(ctx)
    assert "Example" in text, " ".join(path)
    paragraph = text.split("Example", 1)[1].split(":", 1)[1].strip().split("\n\n")[0]
    line = " ".join(part.strip() for part in paragraph.splitlines())  # a hand-written one may be wrapped
    words = shlex.split(line)
    assert words[0] == "cpaas" and words[1 : 1 + len(path)] == path, line
    args = [w for w in words[1 + len(path) :] if w != "|"]
    if "|" in words:  # a hand-written pipeline: only the cpaas part is parsed
        args = shlex.split(line.split("|")[0])[1 + len(path) :]
    cmd.make_context(path[-1], args, parent=ctx.parent)  # raises on an unknown option or a missing argument


def test_help_through_the_cli_shows_the_example_unwrapped():
    run = CliRunner().invoke(app, ["edr", "export", "--help"], env={"COLUMNS": "80"})
    assert run.exit_code == 0
    example = run.stdout.split("Example:")[1].strip().splitlines()[0]
    assert example.startswith("cpaas edr export --from 2026-01-01 --till 2026-02-01")
