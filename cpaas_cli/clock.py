"""The one source of "now". Tests and `--as-of` style options can pin it.

Set ``CPAAS_NOW`` (ISO 8601 with offset) to pin the clock for a whole process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

_override: Callable[[], datetime] | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    if _override is not None:
        return _override().astimezone(UTC)
    pinned = os.environ.get("CPAAS_NOW")
    if pinned:
        value = datetime.fromisoformat(pinned)
        if value.tzinfo is None:
            raise ValueError("CPAAS_NOW must carry a UTC offset")
        return value.astimezone(UTC)
    return datetime.now(UTC)


def set_clock(func: Callable[[], datetime] | None) -> None:
    """Replace the clock (None restores the real one)."""
    global _override
    _override = func
