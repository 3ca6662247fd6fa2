"""Request rate limits: token buckets, in one process or shared through the database.

A :class:`Limit` holds ``burst`` tokens and refills ``rate`` per second; a
request takes one (or ``n``). When the bucket lacks them the request is
refused with the seconds until it would have them (``Retry-After``).

* :class:`LocalLimiter` keeps its buckets in the process: no I/O per request.
  With several ``serve`` processes behind one address, each process counts on
  its own, so a client spread over N processes may reach N times its limit.
  That is the approximation the per-key limit of the HTTP API makes (stated in
  the README), for speed.
* :func:`take_shared` keeps the bucket in the ``rate_bucket`` table and
  changes it under a row lock (SQLite: the write lock), in the caller's
  transaction: exact across every process, one small write per request.
  The bulk API's 30 requests per minute per user use it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.models.limits import RateBucket

MICRO = 1_000_000
MAX_LOCAL = 100_000  # buckets kept by a LocalLimiter (least recently used dropped first)


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # most tokens held

    @classmethod
    def per_minute(cls, n: float, burst: float | None = None) -> Limit:
        return cls(n / 60.0, float(burst if burst is not None else n))

    @classmethod
    def per_second(cls, n: float, burst: float | None = None) -> Limit:
        return cls(float(n), float(burst if burst is not None else n))


def decide(tokens: float, elapsed: float, limit: Limit, n: float = 1.0) -> tuple[bool, float, float]:
    """Refill ``tokens`` for ``elapsed`` seconds, then take ``n``: (taken, tokens left, seconds to wait if not)."""
    tokens = min(limit.burst, tokens + max(0.0, elapsed) * limit.rate)
    if tokens >= n:
        return True, tokens - n, 0.0
    return False, tokens, (n - tokens) / limit.rate if limit.rate > 0 else math.inf


def retry_after(seconds: float) -> int:
    """``Retry-After`` in whole seconds (at least 1)."""
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else 3600


class LocalLimiter:
    """Token buckets in this process, one per name (thread-safe)."""

    def __init__(self, limit: Limit, clock=time.monotonic):
        self.limit = limit
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, name: str, n: float = 1.0) -> tuple[bool, float]:
        """(taken, seconds to wait when not)."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(name, (self.limit.burst, now))
            ok, left, wait = decide(tokens, now - at, self.limit, n)
            self._buckets[name] = (left, now)
            if len(self._buckets) > MAX_LOCAL:
                self._buckets.popitem(last=False)
        return ok, wait


def take_shared(session: Session, name: str, limit: Limit, *, now: datetime, n: float = 1.0) -> tuple[bool, float]:
    """Take ``n`` tokens from the database bucket ``name`` (locked until the
    caller's transaction ends): (taken, seconds to wait when not). No commit."""
    t = RateBucket.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert

        from cpaas_cli.db import bulk

        bulk.writer(session).write_lock()
    session.execute(
        insert(t)
        .values(name=name, micro_tokens=int(limit.burst * MICRO), at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    micro, at = session.execute(sa.select(t.c.micro_tokens, t.c.at).where(t.c.name == name).with_for_update()).one()
    ok, left, wait = decide(micro / MICRO, (now - at).total_seconds(), limit, n)
    session.execute(sa.update(t).where(t.c.name == name).values(micro_tokens=int(left * MICRO), at=max(now, at)))
    return ok, wait
