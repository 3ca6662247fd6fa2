"""Reading a user's text file (a SQL report, a YAML or JSON document) and
parsing nested documents, with every failure as one InvalidInput line.

A file that is not UTF-8 is refused naming the file and the byte offset of the
first bad byte; a document nested past the parser's depth is refused naming
the line (never a RecursionError traceback).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpaas_cli.errors import InvalidInput

MAX_DEPTH = 100
"""Deepest nesting of a YAML document (a rate tree is a few levels deep)."""


def read_utf8(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file (a BOM is dropped); ``what`` names the option or
    file in the message (``--sql``)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what}: file {str(p)!r} does not exist") from exc
    except OSError as exc:
        raise InvalidInput(f"{what}: cannot read {str(p)!r}: {exc.strerror}") from exc
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise InvalidInput(
            f"{what}: {p.name} is not UTF-8 text (byte 0x{data[at]:02x} at offset {at}); save it as UTF-8"
        ) from exc


def too_deep(where: str) -> InvalidInput:
    return InvalidInput(f"{where}: nested too deeply")


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` that refuses a document nested deeper than ``MAX_DEPTH``
    naming the line (checked on the parser's events, which need no recursion,
    before the recursive composer sees the document). YAMLError passes through."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise InvalidInput(f"{where}: line {line}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.safe_load(text)


def guarded(parse: Callable[[str], Any], text: str, where: str) -> Any:
    """``parse(text)`` with a RecursionError (a document nested past the
    interpreter's limit) turned into InvalidInput naming ``where``."""
    try:
        return parse(text)
    except RecursionError:
        raise too_deep(where) from None
