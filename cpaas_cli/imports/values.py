"""Small value parsers shared by the importers."""

from __future__ import annotations

TRUE = {"1", "true", "yes", "y", "on", "t"}
FALSE = {"0", "false", "no", "n", "off", "f"}


def parse_bool(text: str | None, default: bool | None = None) -> bool | None:
    """Parse a yes/no cell; an empty cell gives the default; anything else raises ValueError."""
    value = (text or "").strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")
