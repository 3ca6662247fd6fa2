"""Alembic, driven from code so that it works from an installed wheel.

The migration scripts live in the repository's top-level ``migrations/``
folder; the wheel carries them as ``cpaas_cli/_migrations``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cpaas_cli.db.engine import get_engine


def script_location() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError("migration scripts not found (broken installation)")


def alembic_config(url: str, secret_keys: Callable[[], Any] | None = None) -> Config:
    """``secret_keys``: loads the secret keyring for migrations that encrypt or
    decrypt stored secrets (called only when one needs it)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.attributes["url"] = url
    if secret_keys is not None:
        cfg.attributes["secret_keys"] = secret_keys
    return cfg


def upgrade(url: str, revision: str = "head", *, secret_keys: Callable[[], Any] | None = None) -> None:
    command.upgrade(alembic_config(url, secret_keys), revision)


def downgrade(url: str, revision: str, *, secret_keys: Callable[[], Any] | None = None) -> None:
    command.downgrade(alembic_config(url, secret_keys), revision)


def current(url: str) -> list[str]:
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn)
        return list(ctx.get_current_heads())


def heads(url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def history(url: str) -> list[dict]:
    script = ScriptDirectory.from_config(alembic_config(url))
    applied = set(current(url))
    out = []
    for rev in script.walk_revisions():
        out.append(
            {
                "revision": rev.revision,
                "down_revision": rev.down_revision,
                "message": rev.doc,
                "head": rev.is_head,
                "current": rev.revision in applied,
            }
        )
    return out
