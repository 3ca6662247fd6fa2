"""Limits on what a workbook may unpack to before it is read (see ``imports.xlsx_read``).

A small module on purpose: the CLI's root callback registers where the limits
come from (the config, read lazily) without importing any reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

EXCEL_ROWS = 1_048_576
EXCEL_COLUMNS = 16_384
EXCEL_CELL_CHARS = 32_767  # the most a spreadsheet cell holds


@dataclass(frozen=True)
class XlsxLimits:
    """``[limits]`` keys: ``xlsx_inflated_mb``, ``xlsx_max_rows``, ``xlsx_max_columns``, ``xlsx_memory_mb``."""

    inflated_bytes: int = 1024 * 1024 * 1024  # all parts of the zip, unpacked
    max_rows: int = EXCEL_ROWS
    max_columns: int = EXCEL_COLUMNS
    memory_bytes: int = 4096 * 1024 * 1024  # address space the reader process may add
    cell_chars: int = EXCEL_CELL_CHARS


_provider: Callable[[], XlsxLimits] = XlsxLimits


def set_provider(provider: Callable[[], XlsxLimits] | None) -> None:
    """Where the limits come from (the CLI passes one reading the config); None: the defaults."""
    global _provider
    _provider = provider or XlsxLimits


def current() -> XlsxLimits:
    return _provider()
