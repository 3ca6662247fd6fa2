"""A guard for `service tree apply`: a file that parses to nothing or looks cut
short is not taken as "delete the tree".

`tree apply` makes a scope's tree equal to the file, so a truncated file (cut
after its first lines, or after a ``children:`` line) would remove every node
it no longer names and exit 0. Such a file is refused unless the operator says
``--allow-empty``; ``--dry-run`` still shows what it would do.
"""

from __future__ import annotations

from typing import Any


def looks_empty(doc: Any) -> str | None:
    """Why ``doc`` looks empty or cut short, or None when it does not.

    Empty: the file parses to nothing, has no top-level ``tree`` key, or its
    ``tree`` is empty. Cut short: a ``children:`` key with nothing after it
    (how a YAML file cut at the end of a line ends).
    """
    if doc is None or (isinstance(doc, str) and not doc.strip()):
        return "the file is empty"
    if not isinstance(doc, dict):
        return None  # not a tree file at all: parse_document says so
    if "tree" not in doc:
        return "the file has no top-level 'tree' key"
    if not doc["tree"]:
        return "the file's tree is empty"
    if isinstance(doc["tree"], dict):
        where = _bare_children(doc["tree"], "")
        if where:
            return f"{where}: 'children' has nothing after it (a file cut short?)"
    return None


def _bare_children(nodes: dict, prefix: str) -> str | None:
    """The path of the first node whose ``children`` key has no value."""
    for key, raw in nodes.items():
        if not isinstance(raw, dict):
            continue
        path = f"{prefix}/{key}" if prefix else str(key)
        if "children" in raw and raw["children"] is None:
            return path
        if isinstance(raw.get("children"), dict):
            found = _bare_children(raw["children"], path)
            if found:
                return found
    return None


def as_document(doc: Any) -> Any:
    """The document to parse once an empty file is allowed: nothing means no tree."""
    if doc is None or (isinstance(doc, str) and not doc.strip()):
        return {"tree": {}}
    if isinstance(doc, dict) and "tree" not in doc:
        return {**doc, "tree": {}}
    return doc
