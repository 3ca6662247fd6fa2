"""Settings: flag, then environment, then config file, then default."""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.textfile import read_utf8

DEFAULT_DB_URL = "sqlite:///./cpaas.db"
DEFAULT_CONFIG = "./cpaas.toml"
INVOICE_LINE_DECIMALS = 4


@dataclass
class Settings:
    database_url: str = DEFAULT_DB_URL
    actor: str = "unknown"
    config_path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # --secret-key-file (beats CPAAS_SECRET_KEY and [secrets] key_file; see cpaas_cli/secretbox.py)
    secret_key_file: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def load_settings(
    *, config: str | None = None, db: str | None = None, actor: str | None = None, secret_key_file: str | None = None
) -> Settings:
    """Build Settings from (in order) flags, environment, config file, defaults."""
    explicit = config or os.environ.get("CPAAS_CONFIG")
    path = Path(explicit or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(read_utf8(path, "config file"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"config file {path}: {exc}") from exc
    elif explicit:
        raise InvalidInput(f"config file {path} does not exist")
    file_db = raw.get("database", {}).get("url") if isinstance(raw.get("database"), dict) else None
    url = db or os.environ.get("CPAAS_DATABASE_URL") or file_db or DEFAULT_DB_URL
    who = actor or os.environ.get("CPAAS_ACTOR") or raw.get("actor") or _os_user()
    return Settings(
        database_url=url,
        actor=str(who),
        config_path=path if path.exists() else None,
        raw=raw,
        secret_key_file=secret_key_file,
    )


def invoice_line_decimals(settings: Settings) -> int:
    """``[invoice] line_decimals``: the decimals of invoice lines, 0..6 (default 4; SPEC AMB-25)."""
    raw = settings.section("invoice").get("line_decimals", INVOICE_LINE_DECIMALS)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 6:
        where = f"config file {settings.config_path}" if settings.config_path else "config"
        raise InvalidInput(f"{where}: [invoice] line_decimals must be a whole number from 0 to 6, got {raw!r}")
    return raw


def date_range(settings: Settings) -> tuple[date, date]:
    """``[limits] min_date``/``max_date``: the accepted range of business dates
    (default 2000-01-01 … 2100-12-31); a TOML date or an ISO date text."""
    from cpaas_cli.timeutil import MAX_DATE, MIN_DATE

    limits = settings.section("limits")
    where = f"config file {settings.config_path}" if settings.config_path else "config"
    bounds = []
    for key, default in (("min_date", MIN_DATE), ("max_date", MAX_DATE)):
        raw = limits.get(key, default)
        value = raw if type(raw) is date else None
        if isinstance(raw, str):
            try:
                value = date.fromisoformat(raw.strip())
            except ValueError:
                value = None
        if value is None:
            raise InvalidInput(f"{where}: [limits] {key} must be a date (YYYY-MM-DD), got {raw!r}")
        bounds.append(value)
    if bounds[0] > bounds[1]:
        raise InvalidInput(f"{where}: [limits] min_date is after max_date")
    return bounds[0], bounds[1]


def xlsx_limits(settings: Settings):
    """``[limits]`` for workbooks: ``xlsx_inflated_mb``, ``xlsx_max_rows``,
    ``xlsx_max_columns``, ``xlsx_memory_mb`` (positive numbers; defaults in
    ``imports.limits.XlsxLimits``)."""
    from cpaas_cli.imports.limits import XlsxLimits

    limits = settings.section("limits")
    where = f"config file {settings.config_path}" if settings.config_path else "config"
    default = XlsxLimits()
    values: dict[str, int] = {}
    for key, attr, unit in (
        ("xlsx_inflated_mb", "inflated_bytes", 1048576),
        ("xlsx_max_rows", "max_rows", 1),
        ("xlsx_max_columns", "max_columns", 1),
        ("xlsx_memory_mb", "memory_bytes", 1048576),
    ):
        raw = limits.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            raise InvalidInput(f"{where}: [limits] {key} must be a positive number, got {raw!r}")
        values[attr] = int(raw * unit)
    return XlsxLimits(**{**default.__dict__, **values})
