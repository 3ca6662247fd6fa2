"""``/healthz`` (the process answers) and ``/readyz`` (the database answers and
its schema is at the migrations' head)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cpaas_cli.api.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and its migrations are current")
def readyz(request: Request):
    api = request.app.state.api
    try:
        with api.engine.connect() as conn:
            current = sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    except Exception as exc:  # noqa: BLE001 - any driver error means "not ready"
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()
        return problem(503, "not-ready", f"database unreachable: {reason[0] if reason else type(exc).__name__}")
    heads = api.heads()
    if current != heads:
        return problem(503, "not-ready", "database migrations are not current", current=current, heads=heads)
    return JSONResponse({"status": "ready", "migrations": current})
