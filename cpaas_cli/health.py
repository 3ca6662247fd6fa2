"""The checks of `cpaas doctor`: is this installation ready to work?

Each check returns ``{"check", "status", "detail"}`` with status ``ok``,
``warn`` (works, but look at it), ``fail`` (something will not work) or
``skip`` (not configured, or not checkable because an earlier check failed).
On PostgreSQL the rows of ``health_pg`` follow (connection, server settings).
Nothing here writes to the database or sends a message; the SMTP check only
opens a connection and says QUIT, the optional bind check binds and unbinds.
"""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.config import Settings
from cpaas_cli.errors import CpaasError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
# Work due this long ago and still not done means no `cpaas serve` is running.
OVERDUE = timedelta(minutes=5)


@dataclass
class Options:
    bind: bool = False  # bind each enabled connection (talks to the vendor)
    timeout: float = 5.0
    min_free_mb: int = 500


def _row(check: str, status: str, detail: str) -> dict[str, Any]:
    return {"check": check, "status": status, "detail": detail}


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]


def database(url: str) -> dict[str, Any]:
    from cpaas_cli.db.engine import get_engine

    try:
        with get_engine(url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            name = conn.dialect.name
    except Exception as exc:  # any driver error: the one thing to say is why
        return _row("database", FAIL, f"cannot connect: {_first_line(exc)}")
    return _row("database", OK, f"{name} reachable")


def migrations(url: str) -> dict[str, Any]:
    from cpaas_cli.db import migrate

    try:
        current, heads = migrate.current(url), migrate.heads(url)
    except Exception as exc:
        return _row("migrations", FAIL, _first_line(exc))
    if set(current) == set(heads):
        return _row("migrations", OK, f"at head {', '.join(heads)}")
    at = ", ".join(current) or "an empty database"
    return _row("migrations", FAIL, f"at {at}, head is {', '.join(heads)}: run `cpaas db upgrade`")


def owner(session) -> dict[str, Any]:
    from cpaas_cli.tenancy.service import get_owner

    row = get_owner(session)
    if row is None:
        return _row("owner", FAIL, "no system owner: run `cpaas init --owner NAME`")
    return _row("owner", OK, f"{row.name} (#{row.id})")


def smtp(settings: Settings, timeout: float) -> dict[str, Any]:
    from cpaas_cli.mail import SmtpSettings

    try:
        conf = SmtpSettings.from_config(settings.section("smtp"))
    except CpaasError as exc:
        if "no SMTP server configured" in exc.message:
            return _row("smtp", SKIP, "not configured ([smtp] host or CPAAS_SMTP_HOST); e-mail sending is off")
        return _row("smtp", FAIL, exc.message)
    where = f"{conf.host}:{conf.port}"
    try:
        with smtplib.SMTP(conf.host, conf.port, timeout=timeout) as server:
            code, _ = server.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return _row("smtp", FAIL, f"{where} not reachable: {_first_line(exc)}")
    if code != 250:
        return _row("smtp", FAIL, f"{where} answered NOOP with {code}")
    return _row("smtp", OK, f"{where} answers")


def connections(
    session,
    *,
    environ: Mapping[str, str],
    keys: Callable[[], Any],
    options: Options,
) -> list[dict[str, Any]]:
    """One row per connection: enabled, password resolvable, last submit and
    last inbound message seen (or, with ``options.bind``, a bind now)."""
    from sqlmodel import select

    from cpaas_cli.dispatch import connections as conns
    from cpaas_cli.models.campaigns import OutboundMessage
    from cpaas_cli.models.dispatch import InboundMessage, VendorConnection
    from cpaas_cli.timeutil import iso

    rows = list(session.exec(select(VendorConnection).order_by(VendorConnection.id)))
    if not rows:
        return [_row("connections", WARN, "no vendor connection: `cpaas connection add-smpp` (nothing can be sent)")]
    if not any(r.enabled for r in rows):
        return [_row("connections", WARN, f"all {len(rows)} connections are disabled (nothing can be sent)")]
    out = []
    for row in rows:
        check = f"connection {row.name}"
        if not row.enabled:
            out.append(_row(check, SKIP, "disabled"))
            continue
        sent = session.exec(
            sa.select(sa.func.max(OutboundMessage.updated_at)).where(
                OutboundMessage.connection_id == row.id, OutboundMessage.state.in_(("submitted", "done"))
            )
        ).first()
        heard = session.exec(
            sa.select(sa.func.max(InboundMessage.received_at)).where(InboundMessage.connection_id == row.id)
        ).first()
        sent, heard = (sent[0] if sent else None), (heard[0] if heard else None)
        seen = f"last submit {iso(sent) if sent else 'never'}, last inbound {iso(heard) if heard else 'never'}"
        try:
            secrets = keys() if (row.password and not row.password_env) else None
            conns.resolve_password(row, environ, secrets)
        except CpaasError as exc:
            out.append(_row(check, FAIL, f"cannot bind: {exc.message}"))
            continue
        if not options.bind:
            out.append(_row(check, OK, f"{row.host}:{row.port}; {seen}"))
            continue
        try:
            result = conns.test_connection(row, timeout=options.timeout, environ=environ, keys=secrets)
        except CpaasError as exc:
            out.append(_row(check, FAIL, f"bind failed: {exc.message}"))
            continue
        out.append(_row(check, OK, f"bound in {result['bind_ms']} ms; {seen}"))
    return out


def scheduler(session) -> dict[str, Any]:
    """Work that `cpaas serve` should have picked up already."""
    from sqlmodel import select

    from cpaas_cli.models.campaigns import Campaign
    from cpaas_cli.models.edr import EdrExportTask

    late = clock.now() - OVERDUE
    campaigns = session.exec(
        select(sa.func.count()).select_from(Campaign).where(Campaign.state == "scheduled", Campaign.scheduled_at < late)
    ).one()
    exports = session.exec(
        select(sa.func.count())
        .select_from(EdrExportTask)
        .where(EdrExportTask.state == "waiting", EdrExportTask.created_at < late)
    ).one()
    due = session.exec(
        select(sa.func.count())
        .select_from(Campaign)
        .where(Campaign.state == "scheduled", Campaign.scheduled_at < clock.now())
    ).one()
    if campaigns or exports:
        return _row(
            "scheduler",
            WARN,
            f"overdue by more than {int(OVERDUE.total_seconds() // 60)} min: {campaigns} scheduled campaigns, "
            f"{exports} export tasks; is `cpaas serve` running?",
        )
    return _row("scheduler", OK, f"{due} jobs due now, none overdue")


def disk(directory: Path, min_free_mb: int) -> dict[str, Any]:
    """Free space where exports are written (the nearest existing folder if it is not made yet)."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return _row("disk", FAIL, f"{directory}: {_first_line(exc)}")
    text = f"{free / 1024**3:.1f} GB free for {directory}"
    if free < min_free_mb * 1024 * 1024:
        return _row("disk", FAIL, f"only {text} (less than {min_free_mb} MB)")
    return _row("disk", OK, text)


def run(settings: Settings, *, environ: Mapping[str, str], keys: Callable[[], Any], options: Options) -> list[dict]:
    """Every check, in order; those needing the database are skipped when it cannot be used."""
    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr.tasks import export_dir

    url = settings.database_url
    out = [database(url)]
    if out[0]["status"] == OK:
        out.append(migrations(url))
    else:
        out.append(_row("migrations", SKIP, "database not reachable"))
    usable = out[-1]["status"] == OK
    if usable:
        s = make_session(get_engine(url), actor=settings.actor, command="doctor")
        try:
            out.append(owner(s))
            out.extend(connections(s, environ=environ, keys=keys, options=options))
            out.append(scheduler(s))
        finally:
            s.rollback()
            s.close()
    else:
        out += [_row(name, SKIP, "database not migrated") for name in ("owner", "connections", "scheduler")]
    out.append(smtp(settings, options.timeout))
    out.append(disk(export_dir(settings), options.min_free_mb))
    if out[0]["status"] == OK and get_engine(url).dialect.name == "postgresql":
        from cpaas_cli import health_pg

        out += health_pg.run(settings, get_engine(url))  # the pool, the server settings, autovacuum
    return out
