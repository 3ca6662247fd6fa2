"""Background EDR export tasks.

States: ``waiting`` (recorded, or being generated) → ``ready`` (file done) or
``sent`` (file done and e-mailed) or ``failed`` (generation error). A task can
be ``canceled`` only while waiting; a canceled (or failed) task can be
restarted, which puts it back to waiting.

``process_waiting(engine)`` is the job `cpaas serve` runs (and
`cpaas edr export-task run`). A worker claims a task by stamping
``started_at`` with a conditional UPDATE (plus ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), so two workers never build the same file; a claim older than
``STALE_CLAIM`` (a crashed worker) is taken over. A task canceled while its
file is being built ends canceled and its file is removed.

Files are written under ``[export] dir`` (default ``./exports``, relative to
the worker's working directory), one per task; every worker must see that
directory. A task stores its file's absolute path, so `export-task fetch`
finds it from any directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli import clock, files
from cpaas_cli.audit import service as audit
from cpaas_cli.config import Settings, load_settings
from cpaas_cli.db import locking
from cpaas_cli.db.engine import make_session
from cpaas_cli.edr import export
from cpaas_cli.errors import Conflict, CpaasError, InvalidInput, NotFound
from cpaas_cli.exports.writers import XLSX_MAX_ROWS
from cpaas_cli.models.edr import EXPORT_STATES, EdrExportTask
from cpaas_cli.timeutil import iso

T = EdrExportTask.__table__
STALE_CLAIM = timedelta(hours=1)
DEFAULT_DIR = "./exports"


def export_dir(settings: Settings) -> Path:
    """The configured export folder, as an absolute path."""
    return Path(str(settings.section("export").get("dir") or DEFAULT_DIR)).expanduser().absolute()


def sheet_rows(settings: Settings) -> int:
    try:
        return int(settings.section("export").get("xlsx_sheet_rows") or XLSX_MAX_ROWS)
    except ValueError as exc:
        raise InvalidInput(f"[export] xlsx_sheet_rows: {exc}") from exc


def as_dict(t: EdrExportTask | dict[str, Any]) -> dict[str, Any]:
    d = t if isinstance(t, dict) else t.model_dump()
    p = d["params"] or {}
    flt = p.get("filter", {})
    return {
        "id": d["id"],
        "state": d["state"],
        "from": flt.get("since"),
        "till": flt.get("till"),
        "filter": {k: v for k, v in flt.items() if k not in ("since", "till") and v not in (None, [])},
        "fields": p.get("fields"),
        "format": p.get("format"),
        "tz": p.get("tz"),
        "gzip": p.get("gzip"),
        "emails": d["emails"],
        "created_by": d["created_by"],
        "created_at": iso(d["created_at"]),
        "started_at": iso(d["started_at"]),
        "finished_at": iso(d["finished_at"]),
        "rows": d["rows"],
        "size_bytes": d["size_bytes"],
        "file": d["file"],
        "note": d["note"],
    }


def create(
    session: Session,
    *,
    flt: export.EdrFilter,
    fields: list[str],
    fmt: str,
    tz: str = "UTC",
    gzip: bool = False,
    emails: list[str] | None = None,
) -> dict[str, Any]:
    flt.check()
    fmt = export.check_format(fmt)
    export.time_formatter(tz)  # validates the zone now, not in the worker
    if fmt == "xlsx" and gzip:
        raise InvalidInput("XLSX files are compressed already; --gzip is for csv, tsv and jsonl")
    task = EdrExportTask(
        params={"filter": flt.to_json(), "fields": fields, "format": fmt, "tz": tz, "gzip": gzip},
        emails=list(emails or []),
        created_by=session.info.get("actor"),
    )
    session.add(task)
    session.flush()
    return as_dict(task)


def get(session: Session, task_id: int) -> EdrExportTask:
    task = session.get(EdrExportTask, task_id)
    if task is None:
        raise NotFound(f"export task {task_id} not found")
    return task


def list_tasks(session: Session, *, state: str | None = None, limit: int = 150) -> list[dict[str, Any]]:
    if state is not None and state not in EXPORT_STATES:
        raise InvalidInput(f"--state: choose one of {', '.join(EXPORT_STATES)}")
    q = sa.select(T).order_by(T.c.id.desc()).limit(limit)
    if state:
        q = q.where(T.c.state == state)
    return [as_dict(dict(r)) for r in session.execute(q).mappings()]


def cancel(session: Session, task_id: int) -> dict[str, Any]:
    task = get(session, task_id)
    locking.lock_row(session, task)
    if task.state != "waiting":
        raise Conflict(f"export task {task_id} is {task.state}; only a waiting task can be canceled")
    task.state = "canceled"
    task.finished_at = clock.now()
    session.add(task)
    session.flush()
    return as_dict(task)


def restart(session: Session, task_id: int) -> dict[str, Any]:
    task = get(session, task_id)
    locking.lock_row(session, task)
    if task.state not in ("canceled", "failed"):
        raise Conflict(f"export task {task_id} is {task.state}; only a canceled or failed task can be restarted")
    task.state = "waiting"
    task.started_at = task.finished_at = None
    task.file = task.note = None
    task.rows = task.size_bytes = None
    session.add(task)
    session.flush()
    return as_dict(task)


def stored_file(task: EdrExportTask, settings: Settings) -> Path:
    """The task's file on disk. Tasks built before paths were stored absolute
    hold a path relative to the worker's directory: those are looked up by
    name in the configured export folder."""
    src = Path(task.file or "")
    if src.is_absolute() or src.exists():
        return src
    return export_dir(settings) / src.name


def fetch(session: Session, task_id: int, out: str | Path, settings: Settings | None = None) -> dict[str, Any]:
    task = get(session, task_id)
    if task.state not in ("ready", "sent") or not task.file:
        raise Conflict(f"export task {task_id} is {task.state}; its file is not ready")
    src = stored_file(task, settings or load_settings())
    if not src.exists():
        raise NotFound(f"export task {task_id}: file {src} is gone")
    if Path(out).exists() and os.path.samefile(src, out):
        raise InvalidInput(f"--out {out}: that is the task's own file")
    with files.atomic_path(out) as tmp:  # the old file stays if copying fails
        shutil.copyfile(src, tmp)
    return {"id": task.id, "file": str(out), "rows": task.rows, "size_bytes": Path(out).stat().st_size}


# ------------------------------------------------------------------ worker


def _claim(engine: Engine, task_id: int | None) -> int | None:
    """Claim one waiting task (the given one, or the oldest); None if there is none."""
    now = clock.now()
    free = sa.or_(T.c.started_at.is_(None), T.c.started_at < now - STALE_CLAIM)
    with engine.begin() as conn:
        for _ in range(20):
            q = sa.select(T.c.id).where(T.c.state == "waiting", free).order_by(T.c.id).limit(1)
            if task_id is not None:
                q = q.where(T.c.id == task_id)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            found = conn.execute(q).scalar()
            if found is None:
                return None
            won = conn.execute(
                sa.update(T).where(T.c.id == found, T.c.state == "waiting", free).values(started_at=now)
            ).rowcount
            if won:
                return found
    return None


def _not_claimable(engine: Engine, task_id: int) -> None:
    """Say why ``task_id`` could not be claimed."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(T.c.state, T.c.started_at).where(T.c.id == task_id)).one_or_none()
    if row is None:
        raise NotFound(f"export task {task_id} not found")
    if row.state == "waiting":
        raise Conflict(f"export task {task_id} is being built by another worker (claimed at {iso(row.started_at)})")
    raise Conflict(f"export task {task_id} is {row.state}; only a waiting task can be run")


def _finish(engine: Engine, task_id: int, values: dict[str, Any], *, from_state: str = "waiting") -> bool:
    """Move a task on, unless someone canceled it meanwhile; records it in the audit trail."""
    s = make_session(engine, actor="cpaas-serve", command="edr export-task run")
    try:
        n = s.execute(sa.update(T).where(T.c.id == task_id, T.c.state == from_state).values(**values)).rowcount
        if n:
            audit.record(s, action="update", object_type="edr_export_task", object_id=task_id, new=_plain(values))
        s.commit()
        return bool(n)
    finally:
        s.close()


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if hasattr(v, "tzinfo") else v for k, v in values.items()}


def process_one(engine: Engine, task_id: int, settings: Settings) -> str:
    """Build one claimed task's file, e-mail it if asked; returns the final state."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(T).where(T.c.id == task_id)).mappings().one()
        p = row["params"]
        ext = p["format"] + (".gz" if p.get("gzip") else "")
        folder = export_dir(settings)
        path = folder / f"edr-export-{task_id}.{ext}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            flt = export.EdrFilter.from_json(p["filter"])
            result = export.write(
                conn,
                flt,
                path,
                fields=p["fields"],
                fmt=p["format"],
                tz=p.get("tz") or "UTC",
                gzip=bool(p.get("gzip")),
                sheet_rows=sheet_rows(settings),
            )
        except Exception as exc:  # any failure ends the task as failed, with the reason
            conn.rollback()
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            msg = exc.message if isinstance(exc, CpaasError) else f"{type(exc).__name__}: {exc}"
            _finish(engine, task_id, {"state": "failed", "finished_at": clock.now(), "note": msg[:500]})
            return "failed"
        emails = row["emails"] or []
    done = {
        "state": "ready",
        "finished_at": clock.now(),
        "file": str(path),
        "rows": result["rows"],
        "size_bytes": result["size_bytes"],
    }
    if not _finish(engine, task_id, done):
        path.unlink(missing_ok=True)  # canceled while the file was built
        return "canceled"
    if not emails:
        return "ready"
    try:
        sent, note = export.email_file(
            settings.section("smtp"),
            emails,
            path,
            subject=f"EDR export #{task_id}",
            body=f"{result['rows']} EDRs from {p['filter']['since']} till {p['filter']['till']} "
            f"({p['format']}, times in {p.get('tz') or 'UTC'}).",
        )
    except CpaasError as exc:
        sent, note = False, f"not e-mailed: {exc.message}"
    _finish(engine, task_id, {"state": "sent" if sent else "ready", "note": note[:500]}, from_state="ready")
    return "sent" if sent else "ready"


def process_waiting(
    engine: Engine, *, task_id: int | None = None, settings: Settings | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Process waiting export tasks (all of them, or just ``task_id``); returns counts by final state.
    A given task that cannot be claimed (not waiting, or being built by
    another worker) is a Conflict: of two runs of one task, one builds it."""
    settings = settings or load_settings()
    counts: dict[str, Any] = {"processed": 0, "ready": 0, "sent": 0, "failed": 0, "canceled": 0}
    while limit is None or counts["processed"] < limit:
        claimed = _claim(engine, task_id)
        if claimed is None and task_id is not None:
            _not_claimable(engine, task_id)
        if claimed is None:
            break
        state = process_one(engine, claimed, settings)
        counts["processed"] += 1
        counts[state] += 1
        if task_id is not None:
            break
    return counts
