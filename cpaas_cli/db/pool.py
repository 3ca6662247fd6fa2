"""How a process uses PostgreSQL connections: its pool, its ``application_name``
and its statement timeout (a *profile*). SQLite ignores all of it.

Settings (``[database]`` in cpaas.toml, or the environment; the environment wins):

- ``pool_size`` (``CPAAS_DB_POOL_SIZE``): connections a pool keeps open. Default
  per process kind: a CLI command 2; `cpaas serve` its worker threads (enabled
  SMPP connections × ``--workers``) + 4 (scheduler jobs, callback sender,
  recovery); the HTTP API of ``serve --http`` (a pool of its own) 10.
- ``max_overflow`` (``CPAAS_DB_MAX_OVERFLOW``): connections opened beyond
  ``pool_size`` at a peak and closed after. Default: CLI 2, serve 10, HTTP 10.
- ``pool_timeout`` (``CPAAS_DB_POOL_TIMEOUT``): seconds a thread waits for a free
  connection before the pool gives up (default 30).
- ``statement_timeout`` (``CPAAS_DB_STATEMENT_TIMEOUT``): seconds one SQL
  statement of an interactive command may run (default 60; 0 turns it off).
  Bulk commands (``BULK_COMMANDS``) and `serve` never have one.

``application_name`` is ``cpaas-cli:<command>`` (e.g. ``cpaas-cli:campaign list``),
``cpaas-serve:dispatch`` (workers, scheduler jobs, callbacks), ``cpaas-serve:http``
(the HTTP API) or ``cpaas-serve:scheduler`` (APScheduler's job store); library
use (tests, benchmarks) gets ``cpaas`` and SQLAlchemy's own pool defaults.
A URL that names its own ``application_name`` or ``options`` keeps them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cpaas_cli.config import Settings
from cpaas_cli.errors import InvalidInput

DEFAULT_STATEMENT_TIMEOUT = 60.0  # seconds, interactive commands
DEFAULT_POOL_TIMEOUT = 30.0
CLI_POOL = (2, 2)  # pool_size, max_overflow of a CLI command
SERVE_EXTRA = 4  # serve's connections beside its worker threads
SERVE_OVERFLOW = 10
HTTP_POOL = (10, 10)
NAME_BYTES = 63  # PostgreSQL keeps this much of application_name (NAMEDATALEN - 1)

# Commands that may run for minutes on purpose: no statement timeout. A command
# path matches an entry equal to it or to one of its leading words ("db" covers
# every `db` command); a last word in BULK_VERBS matches in any group.
BULK_COMMANDS = frozenset(
    {
        "serve",
        "init",
        "db",
        "dev",
        "edr ingest",
        "edr rate",
        "edr cost",
        "edr retention",
        "edr export-task run",
        "rerate run",
        "rerate preview",
        "invoice run",
        "invoice recalculate",
        "fee-rules run",
        "campaign send",
        "campaign start",
        "campaign retry",
        "campaign repeat",
        "callback purge",
    }
)
BULK_VERBS = frozenset({"import", "export"})


@dataclass(frozen=True)
class Profile:
    """One pool's settings. ``statement_timeout`` in seconds, 0: none."""

    application_name: str = "cpaas"
    statement_timeout: float = 0.0
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = DEFAULT_POOL_TIMEOUT

    def connect_args(self, query: dict[str, Any]) -> dict[str, Any]:
        """psycopg connect arguments (``query``: the URL's own, which win)."""
        args: dict[str, Any] = {}
        if "application_name" not in query:
            args["application_name"] = self.application_name
        if self.statement_timeout > 0:
            option = f"-c statement_timeout={max(1, round(self.statement_timeout * 1000))}"
            own = query.get("options")
            own = own[-1] if isinstance(own, tuple) else own
            args["options"] = f"{own} {option}" if own else option
        return args


DEFAULT = Profile()


@dataclass(frozen=True)
class PoolSettings:
    pool_size: int | None
    max_overflow: int | None
    pool_timeout: float
    statement_timeout: float


def _number(settings: Settings, key: str, env: str, *, whole: bool, least: float) -> Any:
    raw: Any = os.environ.get(env)
    where = f"{env}" if raw not in (None, "") else f"[database] {key}"
    if raw in (None, ""):
        raw = settings.section("database").get(key)
        if raw is None:
            return None
        if settings.config_path:
            where = f"config file {settings.config_path}: {where}"
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            raw = int(raw) if whole else float(raw)
    kind = int if whole else int | float
    if isinstance(raw, bool) or not isinstance(raw, kind) or raw < least:
        what = "a whole number" if whole else "a number of seconds"
        raise InvalidInput(f"{where} must be {what}, at least {least:g}, got {raw!r}")
    return raw


def pool_settings(settings: Settings) -> PoolSettings:
    """The ``[database]`` pool and timeout settings (see the module docstring)."""
    size = _number(settings, "pool_size", "CPAAS_DB_POOL_SIZE", whole=True, least=1)
    overflow = _number(settings, "max_overflow", "CPAAS_DB_MAX_OVERFLOW", whole=True, least=0)
    wait = _number(settings, "pool_timeout", "CPAAS_DB_POOL_TIMEOUT", whole=False, least=0)
    stmt = _number(settings, "statement_timeout", "CPAAS_DB_STATEMENT_TIMEOUT", whole=False, least=0)
    return PoolSettings(
        pool_size=size,
        max_overflow=overflow,
        pool_timeout=DEFAULT_POOL_TIMEOUT if wait is None else float(wait),
        statement_timeout=DEFAULT_STATEMENT_TIMEOUT if stmt is None else float(stmt),
    )


def is_bulk(command: str) -> bool:
    words = command.split()
    if words and words[-1] in BULK_VERBS:
        return True
    return any(" ".join(words[:n]) in BULK_COMMANDS for n in range(1, len(words) + 1))


def _name(text: str) -> str:
    return text.encode()[:NAME_BYTES].decode(errors="ignore")


def cli_profile(settings: Settings, command: str) -> Profile:
    """A CLI command's profile: a small pool, the statement timeout unless the command is bulk."""
    ps = pool_settings(settings)
    return Profile(
        application_name=_name(f"cpaas-cli:{command}" if command else "cpaas-cli"),
        statement_timeout=0.0 if is_bulk(command) else ps.statement_timeout,
        pool_size=ps.pool_size or CLI_POOL[0],
        max_overflow=CLI_POOL[1] if ps.max_overflow is None else ps.max_overflow,
        pool_timeout=ps.pool_timeout,
    )


def serve_profile(settings: Settings, *, threads: int) -> Profile:
    """`cpaas serve`'s pool: ``threads`` worker threads plus the scheduler and callbacks; no statement timeout."""
    ps = pool_settings(settings)
    return Profile(
        application_name="cpaas-serve:dispatch",
        pool_size=ps.pool_size or threads + SERVE_EXTRA,
        max_overflow=SERVE_OVERFLOW if ps.max_overflow is None else ps.max_overflow,
        pool_timeout=ps.pool_timeout,
    )


def http_profile(settings: Settings) -> Profile:
    """The pool of `serve --http`'s API (its own, so a burst of requests never starves the workers)."""
    ps = pool_settings(settings)
    return Profile(
        application_name="cpaas-serve:http",
        pool_size=ps.pool_size or HTTP_POOL[0],
        max_overflow=HTTP_POOL[1] if ps.max_overflow is None else ps.max_overflow,
        pool_timeout=ps.pool_timeout,
    )


def scheduler_profile(settings: Settings) -> Profile:
    """APScheduler's job store: a few short statements a minute."""
    ps = pool_settings(settings)
    return Profile(application_name="cpaas-serve:scheduler", pool_size=1, max_overflow=2, pool_timeout=ps.pool_timeout)


# part (None: the process's main one) → its profile, or a function giving it (asked once, on first use)
_PROFILES: dict[str | None, Profile | Callable[[], Profile]] = {}


def set_profile(profile: Profile | Callable[[], Profile] | None, *, part: str | None = None) -> None:
    """The PostgreSQL profile of the process (or of one ``part`` of it: "http",
    "scheduler"); a callable is asked on the first ``get_engine`` and kept.
    None: back to the default (library use: ``pool.DEFAULT``)."""
    if profile is None:
        _PROFILES.pop(part, None)
    else:
        _PROFILES[part] = profile


def current_profile(part: str | None = None) -> Profile:
    got = _PROFILES.get(part) if part in _PROFILES else _PROFILES.get(None)
    if got is None:
        return DEFAULT
    if not isinstance(got, Profile):
        got = got()
        _PROFILES[part if part in _PROFILES else None] = got
    return got


def resolved(part: str | None = None) -> bool:
    """Whether ``part``'s profile is set and was already worked out (asked for by an engine)."""
    return isinstance(_PROFILES.get(part), Profile)
