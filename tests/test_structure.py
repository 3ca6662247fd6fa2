"""The shape of the code base, checked: no module over 600 lines, and no
module using another module's private (underscore) names.

Both rules have an allowlist of the offenders of the day (issue 24); the work
that splits those modules and makes those names public empties it. A name on
an allowlist that no longer offends fails the test too, so the lists only
shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cpaas_cli

PACKAGE = Path(cpaas_cli.__file__).parent
ROOT = PACKAGE.parent
MAX_LINES = 600

# module (path from the repository root) → its line count today
TOO_LONG: dict[str, int] = {}

# "module path: the private name it reaches in another module"
PRIVATE_USES: set[str] = set()


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


KNOWN = {_module_name(p) for p in _modules()}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path, source: str | None = None) -> set[str]:
    """The private names of other cpaas_cli modules that ``path`` uses:
    ``from cpaas_cli.x import _y``, and ``m._y`` where ``m`` is a cpaas_cli
    module bound by an import (``self._y``, dunder names and third-party
    modules are not looked at)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    here = _module_name(path)
    found: set[str] = set()
    modules: dict[str, str] = {}  # local name → cpaas_cli module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in KNOWN:
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in KNOWN:
                    modules[alias.asname or alias.name] = full
                elif _private(alias.name) and node.module != here:
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in KNOWN:
                    if alias.asname:
                        modules[alias.asname] = alias.name
                    else:
                        modules.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        dotted = _dotted(node.value)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        if head not in modules:
            continue
        target = modules[head] + (f".{rest}" if rest else "")
        if target in KNOWN and target != here:
            found.add(f"{target}.{node.attr}")
    return found


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def test_no_module_is_over_600_lines():
    long = {_rel(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    new = {p: n for p, n in long.items() if p not in TOO_LONG}
    assert not new, f"modules over {MAX_LINES} lines (split them): {new}"
    gone = sorted(set(TOO_LONG) - set(long))
    assert not gone, f"no longer over {MAX_LINES} lines, take them off TOO_LONG: {gone}"


def test_no_module_uses_another_modules_private_names():
    uses = {f"{_rel(p)}: {name}" for p in _modules() for name in private_uses(p)}
    new = sorted(uses - PRIVATE_USES)
    assert not new, f"private names used across modules (make them public or move the code): {new}"
    gone = sorted(PRIVATE_USES - uses)
    assert not gone, f"no longer used, take them off PRIVATE_USES: {gone}"


def test_the_private_name_check_sees_each_form():
    """The checker itself: each form of use is found, the allowed ones are not."""
    code = (
        "import cpaas_cli.money\n"
        "import cpaas_cli.db.engine as eng\n"
        "from cpaas_cli.catalog import dictionary\n"
        "from cpaas_cli.edr.export import _hidden, public\n"
        "from cpaas_cli import clock as c\n"
        "import sqlalchemy as sa\n"
        "class X:\n"
        "    def f(self):\n"
        "        return (self._x, eng._ENGINES, dictionary._table, c.__name__, sa._private,\n"
        "                cpaas_cli.money._micro, dictionary.public, _own)\n"
    )
    assert private_uses(PACKAGE / "rating" / "engine.py", code) == {
        "cpaas_cli.edr.export._hidden",
        "cpaas_cli.db.engine._ENGINES",
        "cpaas_cli.catalog.dictionary._table",
        "cpaas_cli.money._micro",
    }
    # a module's own private names are its own business
    assert private_uses(PACKAGE / "db" / "engine.py", "import cpaas_cli.db.engine as e\ne._ENGINES\n") == set()
