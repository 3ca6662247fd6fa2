"""``Idempotency-Key`` for ``POST /v1/messages``: the first answer is kept 24 hours.

The same key (per API key) with the same body gets the stored answer again and
sends nothing; the same key with another body is refused (409). The record is
written in the request's own transaction, so an answer is stored exactly when
its messages are; of two concurrent first requests one wins the unique
constraint and the other then reads its answer.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.errors import Conflict, InvalidInput, Problem
from cpaas_cli.models.sending import ApiIdempotency

KEEP = timedelta(hours=24)
MAX_KEY = 255
T = ApiIdempotency.__table__


class IdempotencyConflict(Conflict):
    """The key was used with another body (HTTP 409, its own problem type)."""

    problem_type = "idempotency-conflict"


def body_hash(body: Any) -> str:
    """SHA-256 of the body as canonical JSON (key order and spacing do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        problem = Problem("Idempotency-Key", f"1 to {MAX_KEY} printable characters")
        raise InvalidInput(str(problem), problems=[problem])
    return key


def replay(session: Session, *, api_key_id: int, key: str, digest: str) -> tuple[int, dict] | None:
    """The stored (status, answer) of this key, None when there is none (an expired one is dropped)."""
    conn = session.connection()
    conn.execute(sa.delete(T).where(T.c.api_key_id == api_key_id, T.c.key == key, T.c.created_at < clock.now() - KEEP))
    row = conn.execute(
        sa.select(T.c.body_hash, T.c.status, T.c.response).where(T.c.api_key_id == api_key_id, T.c.key == key)
    ).first()
    if row is None:
        return None
    if row.body_hash != digest:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was used with another request body")
    return row.status, row.response


def store(session: Session, *, api_key_id: int, key: str, digest: str, status: int, response: dict) -> None:
    session.connection().execute(
        sa.insert(T).values(
            api_key_id=api_key_id, key=key, body_hash=digest, status=status, response=response, created_at=clock.now()
        )
    )


def update(session: Session, *, api_key_id: int, key: str, status: int, response: dict) -> None:
    """The final answer of a sync request replaces the first one."""
    session.connection().execute(
        sa.update(T).where(T.c.api_key_id == api_key_id, T.c.key == key).values(status=status, response=response)
    )


def forget(session: Session, *, api_key_id: int, key: str) -> None:
    """Drop a key's record (a request that failed keeps nothing under its key)."""
    session.connection().execute(sa.delete(T).where(T.c.api_key_id == api_key_id, T.c.key == key))


def purge(session: Session, *, now=None) -> int:
    """Drop the records older than 24 hours (a job of serve)."""
    return session.connection().execute(sa.delete(T).where(T.c.created_at < (now or clock.now()) - KEEP)).rowcount or 0


def purge_job(engine) -> dict[str, int]:
    """Scheduler job of serve: drop the expired idempotency records."""
    from cpaas_cli.db.engine import session_scope

    with session_scope(engine, actor="scheduler", command="idempotency purge") as s:
        return {"purged": purge(s)}
