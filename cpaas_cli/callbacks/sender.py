"""The callback sender of ``cpaas serve``: posts the outbox rows, signed.

One step: claim up to ``batch`` due rows (one transaction: a lease of
``lease_s`` seconds on each, so another process skips them; on PostgreSQL
``FOR UPDATE SKIP LOCKED``, on SQLite under the write lock), post them at
once (``concurrency`` requests in flight, each on a keep-alive HTTP/1.1
connection of its own: ``httpclient.AsyncPoster``), then
store every answer in one transaction: 2xx → delivered; anything else (an
error status, a refused connection, a timeout) → tried again after the
back-off of ``signing.backoff``, or dead-lettered once past its
``give_up_at`` (24 h after it was written).

Order per message: a row is due only while no earlier row of the same
transaction id is pending (in flight included), so one message's events go
one after the other, in the order they were written; different messages go
in parallel. A dead-lettered row no longer holds the rows after it.

Nothing is lost when the process dies: a row is delivered only once its 2xx
is stored; a claimed row whose sender died is claimed again when its lease
ends. So delivery is at-least-once: the receiver drops a repeated
``X-Cpaas-Callback-Id``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cpaas_cli import clock
from cpaas_cli.callbacks import signing
from cpaas_cli.db import bulk
from cpaas_cli.db.engine import make_session
from cpaas_cli.models.callbacks import ApiKeyCallback, CallbackOutbox
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.secretbox import Keyring

log = logging.getLogger("cpaas.callbacks")

OB = CallbackOutbox.__table__
K = ApiKeyCallback.__table__
I = OtpIntegration.__table__  # noqa: E741  (an OTP result goes to its integration's callback)
R = OtpRequest.__table__  # a test request's own status URL (`otp integration test --status-url`)
# A literal, not a bound parameter: the partial indexes (WHERE state = 'pending') then serve the claim.
PENDING = sa.literal_column("'pending'")


@dataclass
class SenderOptions:
    batch: int = 500
    concurrency: int = 100
    lease_s: float = 60.0
    timeout_s: float = 10.0
    poll_s: float = 0.2

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> SenderOptions:
        """``[callbacks]`` of the config file: batch, concurrency, lease_seconds, timeout_seconds,
        poll_seconds (and the outbox's retention, read by ``retention.Retention.from_config``)."""
        from cpaas_cli.callbacks.retention import KEYS as RETENTION_KEYS
        from cpaas_cli.errors import InvalidInput

        names = {
            "batch": "batch",
            "concurrency": "concurrency",
            "lease_seconds": "lease_s",
            "timeout_seconds": "timeout_s",
            "poll_seconds": "poll_s",
        }
        got: dict[str, Any] = {}
        for key, value in section.items():
            if key in RETENTION_KEYS:
                continue
            if key not in names:
                known = ", ".join([*names, *RETENTION_KEYS])
                raise InvalidInput(f"[callbacks] {key}: unknown setting (known: {known})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInput(f"[callbacks] {key}: a positive number")
            got[names[key]] = int(value) if key in ("batch", "concurrency") else float(value)
        return cls(**got)


@dataclass
class SenderStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "retried": self.retried, "dead": self.dead}


@dataclass
class _Claimed:
    id: int
    url: str | None
    secret: str | None
    body: bytes
    kind: str = "message"


class Sender:
    def __init__(self, engine: Engine, keys: Keyring | None, *, options: SenderOptions | None = None, name: str = ""):
        self.engine = engine
        self.keys = keys
        self.options = options or SenderOptions()
        self.name = name or "callbacks"
        self.stats = SenderStats()
        self._secrets: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = None

    # ------------------------------------------------------------ database

    def _secret(self, token: str) -> str | None:
        if token not in self._secrets:
            if self.keys is None:
                return None
            self._secrets[token] = self.keys.decrypt(token, "a callback signing secret")
        return self._secrets[token]

    def claim(self, now: datetime) -> list[_Claimed]:
        """Lease up to ``batch`` due rows (committed); rows without a usable URL/secret come back with url None."""
        later = OB.alias("later")
        earlier_pending = (
            sa.select(later.c.id)
            .where(later.c.transaction_id == OB.c.transaction_id, later.c.state == PENDING, later.c.id < OB.c.id)
            .exists()
        )
        pick = (
            sa.select(OB.c.id)
            .where(
                OB.c.state == PENDING,
                OB.c.next_at <= now,
                sa.or_(OB.c.lease_until.is_(None), OB.c.lease_until < now),
                ~earlier_pending,
            )
            .order_by(OB.c.next_at, OB.c.id)
            .limit(self.options.batch)
            .with_for_update(skip_locked=True, of=OB)
        )
        s = make_session(self.engine, actor="serve", command="serve callbacks")
        try:
            if s.get_bind().dialect.name != "postgresql":
                bulk.writer(s).write_lock()
            ids = s.execute(pick).scalars().all()
            if not ids:
                s.rollback()
                return []
            until = now + timedelta(seconds=self.options.lease_s)
            s.execute(sa.update(OB).where(OB.c.id.in_(ids)).values(lease_until=until))
            rows = s.execute(
                sa.select(
                    OB.c.id,
                    OB.c.transaction_id,
                    OB.c.dnis,
                    OB.c.status,
                    OB.c.event_at,
                    OB.c.channel,
                    OB.c.message,
                    OB.c.kind,
                    OB.c.payload,
                    # an OTP test request's own status URL comes before its integration's
                    sa.func.coalesce(K.c.url, R.c.callback_url, I.c.callback_url).label("url"),
                    sa.func.coalesce(K.c.secret, I.c.callback_secret).label("secret"),
                )
                .select_from(
                    OB.outerjoin(K, K.c.api_key_id == OB.c.api_key_id)
                    .outerjoin(I, I.c.id == OB.c.otp_integration_id)
                    .outerjoin(R, sa.and_(OB.c.kind == "otp", R.c.request_id == OB.c.transaction_id))
                )
                .where(OB.c.id.in_(ids))
                .order_by(OB.c.id)
            ).all()
            s.commit()
        finally:
            s.close()
        out = []
        for r in rows:
            if r.kind == "otp":
                payload = signing.otp_body(r.payload or {})
            else:
                payload = signing.body(
                    transaction_id=r.transaction_id,
                    dnis=r.dnis,
                    status=r.status,
                    event_at=r.event_at,
                    channel=r.channel,
                    message=r.message,
                )
            secret = self._secret(r.secret) if r.secret else None
            out.append(_Claimed(r.id, r.url if secret else None, secret, payload, r.kind))
        return out

    def settle(self, results: list[tuple[int, str | None]], now: datetime) -> None:
        """Store the answers: (row id, None when delivered else the error), one transaction."""
        ok = [i for i, err in results if err is None]
        bad = {i: err for i, err in results if err is not None}
        s = make_session(self.engine, actor="serve", command="serve callbacks")
        try:
            if s.get_bind().dialect.name != "postgresql":
                bulk.writer(s).write_lock()
            if ok:
                s.execute(
                    sa.update(OB)
                    .where(OB.c.id.in_(ok))
                    .values(
                        state="delivered",
                        delivered_at=now,
                        attempts=OB.c.attempts + 1,
                        lease_until=None,
                        last_error=None,
                    )
                )
            if bad:
                rows = s.execute(sa.select(OB.c.id, OB.c.attempts, OB.c.give_up_at).where(OB.c.id.in_(list(bad)))).all()
                params = []
                for r in rows:
                    n = r.attempts + 1
                    dead = now >= r.give_up_at
                    nxt = now + timedelta(seconds=signing.backoff(n))
                    params.append(
                        {
                            "b_id": r.id,
                            "b_state": "dead" if dead else "pending",
                            "b_n": n,
                            "b_next": nxt,
                            "b_err": (bad[r.id] or "")[:300],
                        }
                    )
                    if dead:
                        self.stats.dead += 1
                        log.warning("callback %s dead-lettered after %d attempts: %s", r.id, n, bad[r.id])
                    else:
                        self.stats.retried += 1
                s.execute(
                    sa.update(OB)
                    .where(OB.c.id == sa.bindparam("b_id"))
                    .values(
                        state=sa.bindparam("b_state"),
                        attempts=sa.bindparam("b_n"),
                        next_at=sa.bindparam("b_next"),
                        last_error=sa.bindparam("b_err"),
                        lease_until=None,
                    ),
                    params,
                )
            s.commit()
        finally:
            s.close()
        self.stats.delivered += len(ok)

    # ------------------------------------------------------------ posting

    def _loop_and_client(self):
        if self._loop is None:
            from cpaas_cli import httpclient

            self._loop = asyncio.new_event_loop()

            async def make():
                return httpclient.AsyncPoster(timeout=self.options.timeout_s, max_in_flight=self.options.concurrency)

            self._client = self._loop.run_until_complete(make())
        return self._loop, self._client

    async def _post(self, client, row: _Claimed) -> tuple[int, str | None]:
        if row.url is None:
            where = "the integration" if row.kind == "otp" else "the key"
            why = "no signing key configured" if self.keys is None else f"{where} has no callback URL"
            return row.id, why
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.signature(row.secret or "", int(time.time()), row.body),
            signing.ID_HEADER: str(row.id),
        }
        try:
            status = await client.post(row.url, row.body, headers)
        except Exception as exc:  # any transport failure is a failed attempt
            return row.id, f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= status < 300:
            return row.id, None
        return row.id, f"HTTP {status}"

    def post(self, rows: list[_Claimed]) -> list[tuple[int, str | None]]:
        loop, client = self._loop_and_client()

        async def all_of():
            got = await asyncio.gather(*(self._post(client, r) for r in rows))
            await client.prune()
            return got

        return list(loop.run_until_complete(all_of()))

    def step(self) -> int:
        """Claim, post, settle once; how many rows were tried."""
        rows = self.claim(clock.now())
        if not rows:
            return 0
        self.settle(self.post(rows), clock.now())
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: step, and wait ``poll_s`` when nothing was due."""
        try:
            while not stop.is_set():
                try:
                    n = self.step()
                except Exception:
                    log.exception("callback sender step failed")
                    n = 0
                if not n:
                    stop.wait(self.options.poll_s)
        finally:
            self.close()

    def drain(self, max_seconds: float) -> None:
        """Step until nothing is due (or ``max_seconds`` pass): for ``serve --once``."""
        end = time.monotonic() + max_seconds
        try:
            while time.monotonic() < end and self.step():
                pass
        finally:
            self.close()

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            self._loop.close()
            self._loop = self._client = None
