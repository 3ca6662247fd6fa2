"""Settings: flag, then environment, then config file, then default."""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
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
