"""Layers that the import graph must respect, checked on the source (AST):
the pure rating engine (``cpaas_cli/rating/``) reaches no database code, no
SQL library and nothing with I/O, however many modules it goes through."""

from __future__ import annotations

import ast
from pathlib import Path

import cpaas_cli

PACKAGE = Path(cpaas_cli.__file__).parent
ROOT = PACKAGE.parent

FORBIDDEN_LIBRARIES = {"sqlalchemy", "sqlmodel", "alembic", "psycopg", "httpx", "smpplib"}
FORBIDDEN_MODULES = ("cpaas_cli.db", "cpaas_cli.models")

# Imports of today that break the rule (issue 24 item 1 moves the pure lookup
# beside the engine); "importing module → imported module". Only shrinks.
ALLOWED_EDGES: set[tuple[str, str]] = {("cpaas_cli.rating.engine", "cpaas_cli.catalog.lookup")}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (anywhere in it, also inside functions),
    cpaas_cli modules by full name, other libraries by their top-level name."""
    tree = ast.parse(MODULES[module].read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("cpaas_cli"):
                if name in MODULES:
                    out.add(name)
            elif name != "__future__":
                out.add(name.split(".")[0])
    return out


def reached(start: set[str], skip: set[tuple[str, str]]) -> dict[str, str]:
    """What the ``start`` modules reach through their imports: name → the module importing it."""
    seen: dict[str, str] = {}
    todo = sorted(start)
    while todo:
        mod = todo.pop()
        for dep in sorted(imports_of(mod)):
            if (mod, dep) in skip or dep in seen or dep in start:
                continue
            seen[dep] = mod
            if dep in MODULES:
                todo.append(dep)
    return seen


def test_the_rating_engine_reaches_no_database_code():
    rating = {m for m in MODULES if m == "cpaas_cli.rating" or m.startswith("cpaas_cli.rating.")}
    got = reached(rating, ALLOWED_EDGES)
    bad = {dep: via for dep, via in got.items() if dep in FORBIDDEN_LIBRARIES or dep.startswith(FORBIDDEN_MODULES)}
    assert not bad, f"the pure rating engine reaches (module: imported by): {bad}"
    for mod, dep in ALLOWED_EDGES:
        assert dep in imports_of(mod), f"{mod} no longer imports {dep}: take it off ALLOWED_EDGES"


def test_the_check_follows_imports_through_other_modules():
    """The walk is transitive: without the allowance, the engine's lookup import reaches SQLModel."""
    got = reached({"cpaas_cli.rating.engine"}, set())
    if ("cpaas_cli.rating.engine", "cpaas_cli.catalog.lookup") in ALLOWED_EDGES:
        assert "sqlmodel" in got or "sqlalchemy" in got
    assert got.get("cpaas_cli.money") == "cpaas_cli.rating.engine"
    assert "cpaas_cli.db.engine" in reached({"cpaas_cli.cli.context"}, set())
