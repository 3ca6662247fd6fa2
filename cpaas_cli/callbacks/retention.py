"""Keeping the callback outbox small: delivered rows are purged after
``keep_delivered_days`` (default 7), dead-lettered ones after ``keep_dead_days``
(default 30: long enough to find them with ``callback list --failed`` and send
them again with ``callback retry``). Pending rows are never purged.

``serve`` runs :func:`purge_job` every hour; the operator runs
``cpaas callback purge --older-than DAYS [--dead] [--dry-run]``.

The purge walks the outbox in id order, ``CHUNK`` rows at a time, one
transaction per chunk (so a big purge never holds a long lock and an
interruption keeps what was done), and stops at the first chunk that reaches
rows written after the cut-off: a row is delivered or given up after it was
written, so nothing newer can be due. Each run reads only the rows it deletes,
the few kept old ones (dead letters younger than their retention, rows sent
again with ``callback retry``) and one chunk of recent rows, whatever the
size of the outbox, and needs no index beyond the primary key (none is added
to the sender's hot path). Each DELETE checks the state and time again, so a
row another process just changed (a dead letter retried) is not removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cpaas_cli import clock
from cpaas_cli.db import bulk
from cpaas_cli.db.engine import make_session
from cpaas_cli.models.callbacks import CallbackOutbox

OB = CallbackOutbox.__table__
CHUNK = 5000
KEYS = ("keep_delivered_days", "keep_dead_days")


@dataclass(frozen=True)
class Retention:
    keep_delivered_days: int = 7
    keep_dead_days: int = 30

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Retention:
        """``keep_delivered_days`` and ``keep_dead_days`` of ``[callbacks]`` (positive whole days);
        the section's other keys are the sender's (``SenderOptions.from_config`` checks them)."""
        from cpaas_cli.errors import InvalidInput

        got: dict[str, int] = {}
        for key in KEYS:
            if key not in section:
                continue
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"[callbacks] {key}: a whole number of days, at least 1")
            got[key] = value
        return cls(**got)


@dataclass
class Purged:
    delivered: int = 0
    dead: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dead": self.dead}


def purge(
    engine: Engine,
    *,
    delivered_before: datetime | None,
    dead_before: datetime | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    actor: str = "serve",
    command: str = "callback purge",
) -> Purged:
    """Delete delivered rows delivered before ``delivered_before`` and dead rows
    given up before ``dead_before`` (None: not those); ``dry_run`` only counts.
    Commits one transaction per chunk (see the module docstring)."""
    out = Purged()
    cuts = [c for c in (delivered_before, dead_before) if c is not None]
    if not cuts:
        return out
    newest = max(cuts)
    after = 0
    while True:
        s = make_session(engine, actor=actor, command=command)
        try:
            if not dry_run and s.get_bind().dialect.name != "postgresql":
                bulk.writer(s).write_lock()  # before the read: the delete follows in this transaction
            rows = s.execute(
                sa.select(OB.c.id, OB.c.state, OB.c.delivered_at, OB.c.give_up_at, OB.c.created_at)
                .where(OB.c.id > after)
                .order_by(OB.c.id)
                .limit(chunk)
            ).all()
            if not rows:
                s.rollback()
                break
            done = [
                r.id
                for r in rows
                if delivered_before is not None
                and r.state == "delivered"
                and r.delivered_at is not None
                and r.delivered_at < delivered_before
            ]
            dead = [r.id for r in rows if dead_before is not None and r.state == "dead" and r.give_up_at < dead_before]
            n_done, n_dead = len(done), len(dead)
            if not dry_run:
                if done:
                    n_done = s.execute(
                        sa.delete(OB).where(
                            OB.c.id.in_(done), OB.c.state == "delivered", OB.c.delivered_at < delivered_before
                        )
                    ).rowcount
                if dead:
                    n_dead = s.execute(
                        sa.delete(OB).where(OB.c.id.in_(dead), OB.c.state == "dead", OB.c.give_up_at < dead_before)
                    ).rowcount
            s.commit()
        finally:
            s.close()
        out.delivered += n_done
        out.dead += n_dead
        after = rows[-1].id
        if rows[-1].created_at >= newest or len(rows) < chunk:
            break
    return out


def cutoffs(retention: Retention, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or clock.now()
    return now - timedelta(days=retention.keep_delivered_days), now - timedelta(days=retention.keep_dead_days)


def purge_job(engine: Engine, retention: Retention) -> dict[str, int]:
    """Scheduler job of ``serve``: the rows past their retention."""
    delivered_before, dead_before = cutoffs(retention)
    return purge(
        engine, delivered_before=delivered_before, dead_before=dead_before, command="serve job callback-purge"
    ).as_dict()
