"""Layering of the charging path: the pure engine stays pure, one bulk writer,
and no module reaches into another package's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cpaas_cli"


def test_the_rating_engine_imports_no_database_code_in_a_fresh_process():
    code = (
        "import sys; import cpaas_cli.rating.engine, cpaas_cli.rating.lookup\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg', 'sqlite3')"
        " or m.startswith(('cpaas_cli.db', 'cpaas_cli.catalog'))))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (PACKAGE / pkg).rglob("*.py"))


def _private_uses(path: Path, *, with_package: bool = False) -> list[Any]:
    """``from cpaas_cli.<other package>… import _x`` and ``alias._x`` where alias is
    a module of another package, in one file."""
    own = path.relative_to(PACKAGE).parts[0]
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cpaas_cli."):
            pkg = node.module.split(".")[1]
            for a in node.names:
                if pkg != own and a.name.startswith("_"):
                    found.append((f"{path.name}: from {node.module} import {a.name}", pkg))
                aliases[a.asname or a.name] = pkg
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("cpaas_cli.") and a.asname:
                    aliases[a.asname] = a.name.split(".")[1]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases.get(node.value.id, own) != own
        ):
            found.append((f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}", aliases[node.value.id]))
    return found if with_package else [u for u, _pkg in found]


@pytest.mark.parametrize("path", _modules("charging", "edr", "rating", "db"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_of_another_package(path):
    assert _private_uses(path) == []


def test_no_module_uses_a_private_name_of_the_charging_path():
    """Ingest, dispatch, rerate, refunds and the CLI reach charging/, db/, edr/ and
    rating/ through public names only."""
    uses = [
        u
        for path in sorted(PACKAGE.rglob("*.py"))
        for u, pkg in _private_uses(path, with_package=True)
        if pkg in ("charging", "db", "edr", "rating")
    ]
    assert uses == []


def test_no_domain_module_outside_db_renders_copy_or_values_statements():
    """COPY and multi-row VALUES are written in db/bulk*.py only (rerate moves onto it next)."""
    for path in _modules("charging", "edr", "dispatch", "billing"):
        text = path.read_text()
        assert "FROM STDIN" not in text and "cur.copy(" not in text, path
