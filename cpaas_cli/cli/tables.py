"""Tables that fit the terminal: column widths chosen here, drawn by rich.

How a list is fitted to the width (``COLUMNS``, else the terminal's, else 240
columns when stdout is not a terminal):

- A column of numbers (counts, money) is aligned right.
- A column whose every value is a number, a time, a phone number, an id or a
  code (digits with ``. , : - + / T Z`` and spaces) is *fixed*: always shown
  whole, never cut or wrapped (a cut number reads as another number).
- The other columns are *text*: when the table is too wide, the widest text
  column is narrowed first, then the next, down to a floor of 8 characters
  (or the header's width if less), and a narrowed cell ends in an ellipsis.
- If the table is still too wide, columns are hidden from the right (the
  leftmost are the most important: id, name, code come first in every list)
  and stderr names the hidden ones, pointing at ``-o wide`` and ``--columns``.

``-o wide`` draws every column at its full width, however wide the table gets.
A show command's nested rows (a list of objects) are drawn as sub-tables under
the fields, titled with the field's name and the number of rows.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# Characters of a value that must never be cut: numbers, money, dates, times, phones, MCCMNC, ids.
_FIXED = re.compile(r"[+\-]?[0-9][0-9.,:/ TZ+\-]*")
_NUMBER = re.compile(r"[+\-]?[0-9][0-9,]*(\.[0-9]+)?")
_TEXT_FLOOR = 8
_PIPED_WIDTH = 240


def terminal_width() -> int:
    """``COLUMNS`` if set, else the terminal's width, else 240 (output going to a pipe or file)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return _PIPED_WIDTH


def _is_fixed_value(value: Any, text: str) -> bool:
    if value is None or text == "":
        return True  # an empty cell does not decide
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | Decimal):
        return True
    return _FIXED.fullmatch(text) is not None


def _overhead(n: int) -> int:
    """Characters a rich table with the default box and padding (0, 1) adds around ``n`` columns."""
    return 3 * n + 1


def plan_widths(header: list[str], cells: list[list[str]], fixed: list[bool], width: int) -> tuple[list[int], int]:
    """Column widths for a table of at most ``width`` characters, and how many columns fit.

    Returns (widths of the shown columns, count of columns shown from the left).
    """
    n = len(header)
    natural = [max([len(header[i]), *(len(r[i]) for r in cells)], default=0) or 1 for i in range(n)]
    floors = [
        natural[i] if fixed[i] else min(natural[i], max(_TEXT_FLOOR, min(len(header[i]), _TEXT_FLOOR)))
        for i in range(n)
    ]
    shown = n
    while shown > 1 and sum(floors[:shown]) + _overhead(shown) > width:
        shown -= 1
    widths = natural[:shown]
    excess = sum(widths) + _overhead(shown) - width
    while excess > 0:
        # narrow the widest text column still above its floor, one step at a time
        candidates = [i for i in range(shown) if not fixed[i] and widths[i] > floors[i]]
        if not candidates:
            break
        i = max(candidates, key=lambda k: (widths[k], -k))
        second = max([widths[k] for k in candidates if k != i] + [floors[i]])
        step = min(excess, widths[i] - max(second, floors[i]) or 1)
        widths[i] -= step
        excess -= step
    return widths, shown


def build_table(
    rows: list[dict[str, Any]],
    cols: list[str],
    *,
    width: int | None,
    scalar: Callable[[Any], str],
    safe: Callable[[str], str],
) -> tuple[Any, list[str]]:
    """A rich Table of ``rows`` fitted into ``width`` (None: full width); also the hidden columns."""
    from rich.table import Table
    from rich.text import Text

    header = [safe(c) for c in cols]
    texts = [[safe(scalar(r.get(c))) for c in cols] for r in rows]
    fixed = [all(_is_fixed_value(r.get(c), texts[j][i]) for j, r in enumerate(rows)) for i, c in enumerate(cols)]
    if width is None:
        widths = [max([len(header[i]), *(len(t[i]) for t in texts)], default=0) or 1 for i in range(len(cols))]
        shown = len(cols)
    else:
        widths, shown = plan_widths(header, texts, fixed, width)
    numeric = [
        any(t[i] for t in texts) and all(not t[i] or _NUMBER.fullmatch(t[i]) for t in texts) for i in range(len(cols))
    ]
    table = Table(show_lines=False)
    for i in range(shown):
        justify = "right" if numeric[i] else "left"
        table.add_column(Text(header[i]), width=widths[i], no_wrap=True, overflow="ellipsis", justify=justify)
    for t in texts:
        table.add_row(*[Text(t[i]) for i in range(shown)])
    return table, list(cols[shown:])


def table_width(table: Any) -> int:
    """The characters a fitted table needs (its columns' widths plus the box)."""
    return sum(c.width or 0 for c in table.columns) + _overhead(len(table.columns))
