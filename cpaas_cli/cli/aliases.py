"""Old spellings of options, kept working for a release: hidden, with a warning.

One idea has one spelling in every group (the table "One spelling per idea" in
the README; ``tests/test_spelling.py`` walks the whole command tree against
it). When an option is renamed, its old spelling goes into ``OPTION_ALIASES``:
the command still accepts it (``--file x``, ``--file=x``,
``-f x``), `--help` and completion no longer show it, and each use prints one
line on stderr naming the new spelling ("warning: `audit list --since` is
deprecated …; use `--from`"), silenced by ``--quiet`` like any message. stdout
is untouched, so JSON stays parseable. Giving the old and the new spelling
together is a usage error (exit 2).

``cli/app.py`` calls ``install`` on each group as it loads, after ``helptext.polish``.
The old spelling is parsed by click as a hidden option of its own (so every
form of an option works) and its value goes through the new option's type,
checks and callback before the command runs: the command sees only the new name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer import _click as click
from typer.core import TyperCommand

from cpaas_cli.cli.context import say
from cpaas_cli.errors import UsageError


@dataclass(frozen=True)
class OldSpelling:
    """``opts``: the old option strings; ``new``: the option that replaces them.
    ``value``: for an old flag that stood for a value of the new option
    (``--json`` is ``-o json``; True: the old flag is the new flag)."""

    opts: tuple[str, ...]
    new: str
    value: str | bool | None = None

    def advice(self) -> str:
        if self.value is None or self.value is True:
            return self.new
        short = "-o" if self.new == "--output" else self.new
        return f"{short} {self.value}"


# command path (as typed after `cpaas`) → its old spellings
OPTION_ALIASES: dict[str, tuple[OldSpelling, ...]] = {
    "service tree export": (
        OldSpelling(("--file", "-f"), "--out"),
        OldSpelling(("--json",), "--output", value="json"),
    ),
    "rates export": (OldSpelling(("--file", "-f"), "--out"),),
    "rates import": (OldSpelling(("--start-row",), "--header-row"),),
    "audit list": (OldSpelling(("--since",), "--from"), OldSpelling(("--until",), "--till")),
    "invoice list": (OldSpelling(("--since",), "--from"),),
    "agreement list": (OldSpelling(("--active-at",), "--at"),),
    "report list": (OldSpelling(("--client",), "--client-visible", value=True),),
    "campaign create": (OldSpelling(("--country",), "--default-country"),),
    "tenant bank add": (OldSpelling(("--owner",), "--company"),),
    "tenant bank list": (OldSpelling(("--owner",), "--company"),),
    "service create": (OldSpelling(("--owner",), "--company"),),
}


class AliasedCommand(TyperCommand):
    """A command that also takes the old spellings of some of its options."""

    old_spellings: list[tuple[str, OldSpelling, Any]]  # (hidden parameter's name, spelling, new parameter)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoSuchOption as exc:  # "did you mean": the new spellings, never the old
            new = {o: old.new for _, old, _ in self.old_spellings for o in old.opts}
            exc.possibilities = sorted({new.get(p, p) for p in exc.possibilities or ()})
            raise

    def invoke(self, ctx: Any) -> Any:
        for name, old, target in self.old_spellings:
            raw = ctx.params.pop(name, None)
            if raw is None or raw is False or raw in ((), []):
                continue
            if ctx.get_parameter_source(target.name) is click.core.ParameterSource.COMMANDLINE:
                raise UsageError(f"{old.opts[0]} is the old spelling of {old.new}: give one of them")
            say(
                ctx,
                f"warning: `{_path(ctx)} {old.opts[0]}` is deprecated and will be removed; use `{old.advice()}`",
            )
            ctx.params[target.name] = target.process_value(ctx, old.value if old.value is not None else raw)
        return super().invoke(ctx)


def _path(ctx: Any) -> str:
    return " ".join(ctx.command_path.split()[1:])


def _hidden_option(old: OldSpelling, target: Any) -> Any:
    """A hidden option spelled ``old.opts``, built the way Typer builds any option;
    its raw text is handed to ``target`` (the new option) to convert."""
    decl = typer.Option(*old.opts, hidden=True)
    if old.value is not None:
        annotation, default = Annotated[bool, decl], False
    elif target.multiple:
        annotation, default = Annotated[list[str] | None, decl], None
    else:
        annotation, default = Annotated[str | None, decl], None

    def proto(alias=default) -> None:
        """(prototype)"""

    proto.__annotations__ = {"alias": annotation, "return": None}  # objects, not strings (module has __future__)
    holder = typer.Typer(add_completion=False)
    holder.command()(proto)
    return typer.main.get_command(holder).params[0]


def _attach(cmd: Any, path: str, spellings: tuple[OldSpelling, ...]) -> None:
    if type(cmd) is not TyperCommand:
        raise TypeError(f"{path}: old spellings need a plain Typer command, not {type(cmd).__name__}")
    by_opt = {o: p for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
    cmd.__class__ = AliasedCommand
    cmd.old_spellings = []
    for i, old in enumerate(spellings):
        target = by_opt.get(old.new)
        if target is None or getattr(target, "hidden", False):
            raise LookupError(f"{path}: {old.new} (the new spelling of {old.opts[0]}) is not a visible option")
        if target.required:
            raise ValueError(f"{path}: {old.new} is required, so {old.opts[0]} could never stand for it")
        clash = [o for o in old.opts if o in by_opt]
        if clash:
            raise ValueError(f"{path}: {', '.join(clash)} is still an option of its own")
        param = _hidden_option(old, target)
        param.name = f"old_spelling_{i}"
        cmd.params.append(param)
        cmd.old_spellings.append((param.name, old, target))


def install(cmd: Any, path: str) -> None:
    """Give ``cmd`` (a group or a command at ``path``) and the commands under it their old spellings."""
    subs = getattr(cmd, "commands", None)
    if subs is not None:
        for name, sub in subs.items():
            install(sub, f"{path} {name}")
        return
    if path in OPTION_ALIASES:
        _attach(cmd, path, OPTION_ALIASES[path])
