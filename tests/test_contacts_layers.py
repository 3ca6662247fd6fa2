"""Layering of contacts and campaigns: one stop-list rule, one bulk writer, public names across packages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cpaas_cli"
MODULES = sorted(
    [
        *(PACKAGE / "campaigns").glob("*.py"),
        *(PACKAGE / "contacts").glob("*.py"),
        *(PACKAGE / "cli").glob("contact*.py"),
    ]
    + [PACKAGE / "cli" / "campaign.py"]
)


def _ids(p: Path) -> str:
    return str(p.relative_to(PACKAGE))


def _private_imports(path: Path) -> list[str]:
    """``from cpaas_cli.<other package>… import _name`` and ``alias._name`` of a module imported from another package."""
    own = path.relative_to(PACKAGE).parts[0]
    tree = ast.parse(path.read_text())
    found: list[str] = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cpaas_cli."):
            pkg = node.module.split(".")[1]
            for a in node.names:
                if pkg != own and a.name.startswith("_"):
                    found.append(f"from {node.module} import {a.name}")
                aliases[a.asname or a.name] = pkg
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases.get(node.value.id, own) != own
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_no_private_name_of_another_package(path):
    assert _private_imports(path) == []


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_bulk_writes_go_through_db_bulk(path):
    """No COPY, no executemany of hand-written INSERTs: `db.bulk` writes many rows."""
    text = path.read_text()
    assert "FROM STDIN" not in text and ".copy(" not in text
    assert "VALUES (" not in text  # a hand-built INSERT … VALUES for executemany


def test_the_stop_list_rule_is_written_once():
    """'Blocked for this sender or for ALL' lives in contacts/stoplist.py (`blocked_phones`) only."""
    rule = re.compile(r"in_\(\s*\[\s*\w+\s*,\s*ALL_SENDERS\s*\]")
    written = [
        _ids(p) for p in sorted(PACKAGE.rglob("*.py")) if rule.search(p.read_text()) or "is_blocked" in p.read_text()
    ]
    assert written == ["contacts/stoplist.py"]
