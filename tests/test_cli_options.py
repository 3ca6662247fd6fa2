"""Options many commands share are defined once (cli/options.py): the same
flags, the same help, wherever they appear."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cpaas_cli.cli import options
from cpaas_cli.cli.app import ENTRIES, load

CLI = Path(options.__file__).parent


def _commands(cmd, path: str):
    yield path, cmd
    if getattr(cmd, "commands", None):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}")


def _every_option(flag: str) -> list[tuple[str, object]]:
    found = []
    for name in ENTRIES:
        for path, cmd in _commands(load(name), name):
            found += [(path, p) for p in cmd.params if p.param_type_name == "option" and flag in p.opts]
    return found


@pytest.mark.parametrize(("flag", "at_least"), [("--tz", 15), ("--company", 15)])
def test_a_shared_option_is_the_same_everywhere(flag, at_least):
    found = _every_option(flag)
    assert len(found) >= at_least, [p for p, _ in found]
    shapes = {(tuple(o.opts), o.help) for _, o in found}
    assert len(shapes) == 1, sorted(shapes)


@pytest.mark.parametrize("flag", ["--tz", "--company"])
def test_no_module_but_options_declares_a_shared_flag(flag):
    """A literal "--tz" / "--company" in a typer.Option call is declared only in cli/options.py."""
    offenders = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            is_option = isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Option"
            if is_option and any(isinstance(a, ast.Constant) and a.value == flag for a in node.args):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
