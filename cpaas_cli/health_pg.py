"""`cpaas doctor` on PostgreSQL: this command's own connection (pool,
``application_name``, statement timeout) and the server settings that matter
for this workload, each with its value, a recommended value or range and one
line of advice when it is off (status ``warn``; doctor still exits 0).

Rows carry ``value``, ``recommended`` and ``advice`` besides ``check``,
``status`` and ``detail``; nothing here changes a setting.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from cpaas_cli.config import Settings

OK, WARN, SKIP = "ok", "warn", "skip"
MB = 1024 * 1024
# the hot tables: every message writes the queue and a balance; EDRs and charges grow by the million
HOT_TABLES = {"outbound_message": 0.02, "agreement_balance": 0.05, "edr": 0.05, "charge": 0.05}
SETTINGS = (
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "synchronous_commit",
    "work_mem",
    "max_connections",
    "superuser_reserved_connections",
    "autovacuum",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
)
_UNITS = {"B": 1, "kB": 1024, "8kB": 8192, "MB": MB, "16MB": 16 * MB, "GB": 1024 * MB, "ms": 0.001, "s": 1, "min": 60}


def _row(check: str, status: str, value: Any, recommended: str, advice: str, shown: str | None = None) -> dict:
    detail = f"{shown if shown is not None else value}; recommended {recommended}"
    if status != OK and advice:
        detail += f"; {advice}"
    return {
        "check": check,
        "status": status,
        "detail": detail,
        "value": value,
        "recommended": recommended,
        "advice": advice if status != OK else "",
    }


def _settings(conn) -> dict[str, tuple[str, float | None]]:
    """name → (the value as the server shows it, the number in bytes or seconds when it has a unit)."""
    rows = conn.execute(
        sa.text("SELECT name, setting, unit, current_setting(name) FROM pg_settings WHERE name = ANY(:names)"),
        {"names": list(SETTINGS)},
    )
    out: dict[str, tuple[str, float | None]] = {}
    for name, setting, unit, shown in rows:
        number = None
        with contextlib.suppress(TypeError, ValueError):
            number = float(setting) * _UNITS.get(unit or "B", 1)
        out[name] = (shown, number)
    return out


def connection(conn, engine) -> dict:
    """What this process looks like to the server (the row `pg_stat_activity` shows for it) and its pool."""
    name = conn.execute(sa.text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")).scalar()
    timeout = conn.execute(sa.text("SHOW statement_timeout")).scalar()
    from cpaas_cli.db.pool import current_profile

    profile = current_profile()
    value = {
        "application_name": name,
        "statement_timeout": timeout,
        "pool_size": engine.pool.size(),
        "max_overflow": profile.max_overflow,
        "pool_timeout": profile.pool_timeout,
    }
    shown = f"application_name {name}, statement_timeout {timeout}, pool {value['pool_size']} + {value['max_overflow']}"
    return _row(
        "pg connection",
        OK,
        value,
        "[database] pool_size, max_overflow, statement_timeout (see README, Configuration)",
        "",
        shown,
    )


def _need(settings: Settings, binds: int) -> int:
    """Connections one `serve --http` process (``binds`` threads) plus one CLI command may open."""
    from cpaas_cli.db import pool

    profiles = (
        pool.serve_profile(settings, threads=binds),
        pool.http_profile(settings),
        pool.scheduler_profile(settings),
        pool.cli_profile(settings, "doctor"),
    )
    return sum(p.pool_size + p.max_overflow for p in profiles)


def _max_connections(conn, got: dict, settings: Settings, binds: int) -> dict:
    shown, number = got["max_connections"]
    reserved = int(got.get("superuser_reserved_connections", ("3", 3.0))[1] or 0)
    in_use = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))
    in_use = int(in_use.scalar() or 0)
    need = _need(settings, binds)
    usable = int(number or 0) - reserved
    status = OK if usable >= need else WARN
    return _row(
        "pg max_connections",
        status,
        {"max_connections": int(number or 0), "reserved": reserved, "in_use": in_use, "one_serve_and_cli": need},
        f"at least {need} per `serve --http` process (its pools at full overflow, {binds} bind(s)) "
        "plus the CLI commands, cron jobs and reports running at once",
        "raise max_connections (restart) or lower [database] pool_size / max_overflow; "
        "with many serve hosts put PgBouncer (transaction mode) in front",
        f"{int(number or 0)} ({reserved} reserved, {in_use} in use); one serve --http and one command may open {need}",
    )


def _bytes_row(check: str, got: dict, low: int, recommended: str, advice: str, high: int | None = None) -> dict:
    shown, number = got[check.removeprefix("pg ")]
    status = OK if number is not None and number >= low and (high is None or number <= high) else WARN
    return _row(check, status, shown, recommended, advice)


def server(conn, settings: Settings, binds: int) -> list[dict]:
    got = _settings(conn)
    rows = [
        _max_connections(conn, got, settings, binds),
        _bytes_row(
            "pg shared_buffers",
            got,
            256 * MB,
            "about 25% of the server's RAM, at least 256MB",
            "raise it (restart needed) so that the queue, the balances and the EDR indexes stay in memory",
        ),
        _bytes_row(
            "pg max_wal_size",
            got,
            2048 * MB,
            "2GB–16GB",
            "raise it (e.g. 4GB): bulk loads (edr ingest, rerate, imports) otherwise force a checkpoint every few "
            "seconds",
        ),
        _bytes_row(
            "pg checkpoint_timeout",
            got,
            600,
            "10min–30min",
            "set it to 15min: fewer full-page writes while dispatch updates the same rows",
            high=3600,
        ),
        _bytes_row(
            "pg work_mem",
            got,
            16 * MB,
            "16MB–256MB (it is per sort or hash, per connection)",
            "set it to 32MB or more so that reports, rerate and invoice runs do not sort on disk; "
            "above 256MB many connections at once can run the server out of memory",
            high=256 * MB,
        ),
    ]
    sync = got["synchronous_commit"][0]
    rows.append(
        _row(
            "pg synchronous_commit",
            OK if sync != "off" else WARN,
            sync,
            "on (or local, remote_write, remote_apply)",
            "set it on: with off a server crash loses the last commits, i.e. receipts and MO already "
            "acknowledged to the vendor",
        )
    )
    auto = got["autovacuum"][0]
    rows.append(
        _row(
            "pg autovacuum",
            OK if auto == "on" else WARN,
            auto,
            "on",
            "turn it on: the queue and the balances are updated all the time and bloat without it",
        )
    )
    rows += tables(conn, got)
    return rows


def tables(conn, got: dict) -> list[dict]:
    """Autovacuum of the hot tables: the scale factor in force (the table's own or the server's) and dead rows."""
    default_vacuum = float(got["autovacuum_vacuum_scale_factor"][1] or 0.2)
    default_analyze = float(got["autovacuum_analyze_scale_factor"][1] or 0.1)
    found = conn.execute(
        sa.text(
            "SELECT c.relname, c.reloptions, s.n_live_tup, s.n_dead_tup, s.last_autovacuum "
            "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.relname = ANY(:names) AND c.relnamespace = to_regnamespace(current_schema())::oid"
        ),
        {"names": list(HOT_TABLES)},
    )
    stats = {r[0]: r for r in found}
    out = []
    for table, limit in HOT_TABLES.items():
        check = f"pg autovacuum {table}"
        if table not in stats:
            out.append(_row(check, SKIP, None, f"vacuum scale factor ≤ {limit:g}", "", "table not found"))
            continue
        _, options, live, dead, last = stats[table]
        own = dict(o.split("=", 1) for o in options or [] if "=" in o)
        vacuum = float(own.get("autovacuum_vacuum_scale_factor", default_vacuum))
        analyze = float(own.get("autovacuum_analyze_scale_factor", default_analyze))
        bloated = dead > 10_000 and dead > 0.2 * max(live, 1)
        status = OK if vacuum <= limit and not bloated else WARN
        advice = []
        if vacuum > limit:
            advice.append(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = {limit:g}, "
                f"autovacuum_analyze_scale_factor = {limit / 2:g})"
            )
        if bloated:
            advice.append(f"VACUUM (ANALYZE) {table}: {dead} dead rows beside {live} live ones")
        value = {
            "vacuum_scale_factor": vacuum,
            "analyze_scale_factor": analyze,
            "live_rows": live,
            "dead_rows": dead,
            "last_autovacuum": last.isoformat() if last else None,
        }
        shown = f"vacuum scale factor {vacuum:g}, {live} live / {dead} dead rows, last autovacuum {value['last_autovacuum'] or 'never'}"
        out.append(_row(check, status, value, f"vacuum scale factor ≤ {limit:g}", "; ".join(advice), shown))
    return out


def run(settings: Settings, engine) -> list[dict]:
    """Every PostgreSQL row, on one connection of this command's pool."""
    from cpaas_cli.models.dispatch import VendorConnection

    t = VendorConnection.__table__
    with engine.connect() as conn:
        rows = [connection(conn, engine)]
        binds = 0
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": t.name}).scalar() is not None:
            binds = conn.execute(
                sa.select(sa.func.count()).where(t.c.enabled.is_(True), t.c.kind == "smpp")
            ).scalar_one()
        rows += server(conn, settings, max(binds, 1))
    return rows
