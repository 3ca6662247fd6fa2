"""`--help` the way operators read it, applied to every command as its group loads.

* Metavars are names in capitals (``CODE``, ``--company COMPANY``), never
  Typer's ``{code}`` / ``<str>``; an explicit ``metavar=`` is kept, and choices
  keep their list (``<daily|weekly>``).
* Every command that takes a file or a time gets an example line (its epilog),
  unless its own help already has one: the command with its required
  arguments and options and its file/time parameters filled in with sample
  values. ``tests/test_help.py`` parses each example back against its command.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument

# parameter names (Python side) that are points in time or dates
TIME_NAMES = frozenset(
    {"from_", "till", "at", "since", "until", "date", "effective", "when", "start", "end", "expires", "on", "as_of"}
)
FILE_NAMES = frozenset({"file", "path", "out", "files", "input", "rejects", "chart_out", "key_file"})
TIME_WORDS = ("ISO 8601", "YYYY-MM-DD", "local time")


class NamedArgument(TyperArgument):
    """An argument shown as ``CODE`` in the usage line (``[CODE]`` when optional)."""

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        if not self.required:
            name = f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name says it: ``CODE``, not ``CODE <str>``


def kind(param: Any, ctx: Any) -> str | None:
    """``file``, ``time`` or None: what a parameter takes, by its type, name and help."""
    name = (param.name or "").lower()
    shown = param.display_type(ctx) if hasattr(param, "display_type") else ""
    if shown == "<path>" or name in FILE_NAMES or name.endswith(("_file", "_out")):
        return "file"
    help_ = getattr(param, "help", None) or ""
    if name in TIME_NAMES or name.endswith(("_at", "_from", "_till")) or any(w in help_ for w in TIME_WORDS):
        if getattr(param, "is_flag", False):
            return None
        return "time"
    return None


def _metavar(param: Any, ctx: Any) -> None:
    if param.metavar is not None:
        return
    if isinstance(param, TyperArgument):
        param.metavar = (param.name or "value").strip("_").upper()
        return
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return
    shown = param.display_type(ctx) if hasattr(param, "display_type") else ""
    if shown.startswith("<") and "|" in shown:  # a choice: the list says more than a name
        return
    longest = max(param.opts, key=len).lstrip("-")
    param.metavar = longest.replace("-", "_").upper() or (param.name or "value").strip("_").upper()


def _sample(param: Any, ctx: Any, what: str | None) -> str:
    name = (param.name or "").lower()
    if what == "file":
        stem = "out" if name in ("out", "chart_out") or name.endswith("_out") else "data"
        suffix = re.search(r"\.(csv|xlsx|jsonl|json|yaml|png|txt|key)\b", getattr(param, "help", None) or "")
        return f"{stem}.{suffix.group(1) if suffix else 'csv'}"  # the first suffix its help names
    if what == "time":
        if name in ("till", "until", "end") or name.endswith("_till"):
            return "2026-02-01"
        if name == "at" or name.endswith("_at"):
            return "2026-01-15T09:00"
        return "2026-01-01"
    shown = param.display_type(ctx) if hasattr(param, "display_type") else ""
    if shown.startswith("<") and "|" in shown:
        return shown[1:-1].split("|")[0]
    if "int" in shown:
        return "1"
    if "float" in shown:
        return "1.5"
    samples = {"company": "Acme", "agreement": "AC-1", "service": "SMS", "currency": "EUR", "tz": "Europe/Madrid"}
    return samples.get(name, name.strip("_").upper() or "VALUE")


def example(path: str, cmd: Any, ctx: Any) -> list[str] | None:
    """The example's words (without ``cpaas``), or None when the command takes no file or time."""
    params = [p for p in cmd.params if p.name != "help" and not getattr(p, "hidden", False)]
    kinds = {id(p): kind(p, ctx) for p in params}
    if not any(kinds.values()):
        return None
    words = path.split()
    for p in params:
        what = kinds[id(p)]
        if not (p.required or what or (p.name == "tz" and any(k == "time" for k in kinds.values()))):
            continue
        if isinstance(p, TyperArgument):
            words.append(_sample(p, ctx, what))
        elif getattr(p, "is_flag", False):
            continue
        else:
            words += [max(p.opts, key=len), _sample(p, ctx, what)]
    if "--format" in words[:-1]:  # a file written in the format the example names: out.pdf, not out.csv
        fmt = words[words.index("--format") + 1]
        words = [f"out.{fmt}" if w.startswith("out.") else w for w in words]
    return words


def _has_example(cmd: Any) -> bool:
    text = f"{cmd.help or ''}\n{cmd.epilog or ''}"
    return "Example" in text or "example:" in text


def polish(cmd: Any, path: str) -> None:
    """Metavars and examples for ``cmd`` and every command under it."""
    from typer import _click as click

    ctx = click.core.Context(cmd, info_name=path.split()[-1])
    for p in cmd.params:
        if isinstance(p, TyperArgument) and type(p) is TyperArgument:
            p.__class__ = NamedArgument
        _metavar(p, ctx)
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in subs.items():
            polish(sub, f"{path} {name}")
        return
    if not _has_example(cmd):
        words = example(path, cmd, ctx)
        if words:
            line = "cpaas " + " ".join(w if " " not in w else f"'{w}'" for w in words)
            cmd.epilog = f"\b\nExample:\n  {line}"  # \b: click keeps the line as it is
