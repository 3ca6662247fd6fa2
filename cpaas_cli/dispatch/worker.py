"""Dispatch workers: the loop of one bind, from the outbound queue to the SMSC and back.

One :class:`Worker` is one thread with one gateway (one bind) and one database
session. Its loop:

1. **Claim** (``claim.py``) a batch of ``queued`` rows of running campaigns
   for its connection, with their EDRs created and charged, in one
   transaction. The claimed messages wait to be released (``flow.py``): a
   commit moves them to ``sending`` while the window allows, then they go to
   the gateway (long texts as UDH parts from our own splitter, one EDR per
   message; which parts ask for a receipt follows the connection's
   ``multipart_final``: ``outbound.py``).
2. **Poll** the gateway and buffer what comes back (``results.py``): submit
   answers, receipts (matched by ``receipt_match.py``), MO messages. Results
   and inbound messages are committed as they come, in small groups; receipts
   and MO are answered after that commit. When the queue is empty the worker
   waits inside ``poll``, on its bind and its doorbell (``doorbell.py``) at once:
   a receipt, an MO or a ring ends the wait.

Queue rows change state only through ``queue.py``. Crash safety: a row is
``claimed`` from the commit that created its EDR (not sent), ``sending`` from
the commit that released it to the gateway until its submit_sm_resp is
stored. ``aftercrash.recover`` puts the claimed rows of dead workers back in
the queue; a ``sending`` row may or may not have reached the SMSC: it is sent
again (a possible duplicate, never charged again) or held as ``unknown``, as
its connection's ``after_crash`` says.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db.engine import make_session
from cpaas_cli.dispatch import doorbell
from cpaas_cli.dispatch import gateway as gw
from cpaas_cli.dispatch import multipart as mp
from cpaas_cli.dispatch.aftercrash import host_id
from cpaas_cli.dispatch.claim import Claimer
from cpaas_cli.dispatch.flow import Flow
from cpaas_cli.dispatch.outbound import OutboundBuilder
from cpaas_cli.dispatch.receipt_match import IdRelation, ReceiptMatcher
from cpaas_cli.dispatch.receipts import parse_id_formats
from cpaas_cli.dispatch.results import Results
from cpaas_cli.dispatch.stats import WorkerStats
from cpaas_cli.errors import CpaasError, Upstream
from cpaas_cli.messaging.segments import RefAllocator
from cpaas_cli.models.dispatch import VendorConnection

log = logging.getLogger("cpaas.serve")

DEFAULT_STOP_WORDS = ("STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT", "OPTOUT", "BAJA")
DEFAULT_START_WORDS = ("START", "SUBSCRIBE", "UNSTOP", "ALTA")

__all__ = ["DEFAULT_START_WORDS", "DEFAULT_STOP_WORDS", "Worker", "WorkerOptions", "WorkerStats", "worker_name"]


def worker_name(n: int) -> str:
    return f"{host_id()}:{os.getpid()}:{n}"


@dataclass
class WorkerOptions:
    batch: int = 200  # queue rows claimed per transaction
    flush_every: float = 0.2  # at most this long between commits (held receipts are matched again at each)
    once: bool = False  # stop when nothing is left to claim and receipts are in (or timed out)
    receipt_timeout: float = 30.0  # --once: seconds to wait for receipts after the last submit
    idle_sleep: float = 1.0  # long-running mode: pause when the queue is empty
    receipt_wait: float = 0.05  # ... and this long when receipts are awaited (the bind is watched meanwhile)
    stop_words: tuple[str, ...] = DEFAULT_STOP_WORDS
    start_words: tuple[str, ...] = DEFAULT_START_WORDS
    default_route: bool = False  # also send queue rows whose sender ID names no connection
    plans_ttl: float = 30.0  # seconds a worker keeps agreement plans (rate trees) before reloading them


class Worker:
    """One bind, one thread, one session. ``make_gateway`` builds the gateway
    (tests and benchmarks pass their own settings)."""

    def __init__(
        self,
        engine: Engine,
        connection: VendorConnection,
        make_gateway: Callable[[], gw.Gateway],
        *,
        name: str,
        options: WorkerOptions | None = None,
        stop: threading.Event | None = None,
    ):
        self.engine = engine
        self.connection_id = connection.id
        self.connection_name = connection.name
        self.make_gateway = make_gateway
        self.name = name
        self.o = options or WorkerOptions()
        self.stop = stop or threading.Event()
        self.stats = WorkerStats()
        self.error: BaseException | None = None
        self._refs = RefAllocator()
        fmt = getattr(connection, "message_id_format", None) or "auto"
        learn = (
            IdRelation(getattr(connection, "message_id_learned", None)) if parse_id_formats(fmt)[1] == "auto" else None
        )
        self._matcher = ReceiptMatcher(connection.id, default_route=self.o.default_route, learn=learn)
        self._outbound = OutboundBuilder(connection)  # TON/NPI, coding, concatenation, flash, receipts per part
        self._plans_cache: Plans | None = None
        self._plans_at = 0.0
        self._session: Session | None = None
        self._flow = Flow(window=max(1, getattr(connection, "window_size", None) or 10))
        self._gateway: gw.Gateway | None = None
        self._claimer = Claimer(
            connection_id=connection.id,
            worker=name,
            batch=self.o.batch,
            default_route=self.o.default_route,
            outbound=self._outbound,
            stats=self.stats,
            plans=lambda: self._plans,
        )
        self._results = Results(
            worker=name,
            connection_id=connection.id,
            matcher=self._matcher,
            multipart_final=self._outbound.multipart_final,
            flow=self._flow,
            stats=self.stats,
            plans=lambda: self._plans,
            default_country=getattr(connection, "default_country", None),
            stop_words=self.o.stop_words,
            start_words=self.o.start_words,
        )

    @property
    def _awaiting(self) -> dict:
        """Vendor message id (key) -> a submitted message waiting for receipts."""
        return self._matcher.awaiting

    @property
    def _early(self) -> list:
        """Receipts held for a while: before their submit_sm_resp was read (some
        SMSCs write the receipt first), or until the id relation is learned."""
        return self._matcher.pending

    # ------------------------------------------------------------ thread entry

    def run(self) -> None:
        try:
            self._run()
        except CpaasError as exc:  # expected (bind refused, …): the runner reports it as the one-line error
            self.error = exc
            log.info("worker %s stopped: %s", self.name, exc.message)
        except BaseException as exc:  # reported by the runner
            self.error = exc
            log.exception("worker %s stopped on an error", self.name)

    def _run(self) -> None:
        self._session = make_session(self.engine, actor="serve", command=f"serve worker {self.name}")
        gateway = self._gateway = self.make_gateway()
        try:
            gateway.open()
            log.info("worker %s bound to %s", self.name, self.connection_name)
        except Upstream as exc:
            if self.o.once:
                gateway.close()
                raise  # --once (cron, CI) reports the bind error and exits
            # Long-running: nothing is claimed (or charged) until the link is up;
            # the gateway binds again with back-off inside poll(). Refused
            # credentials are an error (an operator must act), not a warning.
            level = logging.ERROR if isinstance(exc, gw.CredentialsRefused) else logging.WARNING
            log.log(level, "worker %s: %s; binding again with back-off", self.name, exc.message)
        last_flush = last_activity = time.monotonic()
        exhausted = False
        bell = doorbell.register()
        try:
            while True:
                bell.clear()  # before the look at the queue: a ring after it ends the next wait
                stopping = self.stop.is_set()
                up = gateway.connected
                if not stopping and up and len(self._flow.ready) < self.o.batch:
                    got = self._claim(gateway)
                    exhausted = got == 0
                    if got:
                        last_activity = time.monotonic()
                events = gateway.poll(0.02 if gateway.backlog() or self._awaiting or not up else 0.0, wake=bell)
                if events:
                    last_activity = time.monotonic()
                    self._results.handle(events)
                now = time.monotonic()
                # Results and inbound messages commit as they come, in small groups:
                # that frees the window (flow.py) and lets receipts and MO be answered.
                inbound = self._results.inbound()
                if self._flow.due(now, gateway.inflight(), inbound) or now - last_flush >= self.o.flush_every:
                    self._flush()
                    last_flush = now
                idle = not gateway.pending() and not self._results.tickets and not self._early
                if stopping and idle:
                    break
                receipts_done = not self._awaiting or now - last_activity >= self.o.receipt_timeout
                if self.o.once and exhausted and idle and not self._flow.ready and receipts_done:
                    break
                if not self.o.once and exhausted and idle and not events:
                    # a send waiting for its submit result rings the bell (dispatch/doorbell.py)
                    wait = min(self.o.idle_sleep, self.o.receipt_wait if self._awaiting else self.o.idle_sleep)
                    events = self._wait(gateway, bell, wait)
                    if events:
                        last_activity = time.monotonic()
                        self._results.handle(events)
        finally:
            doorbell.unregister(bell)
            self._flush(release=False)
            self._flush(final=True, release=False)
            if self._flow.ready:
                self._flow.give_back(self._session, clock.now())
                self._session.commit()
            gateway.close()
            self._session.close()
            log.info("worker %s done: %s", self.name, self.stats.as_dict())

    def _wait(self, gateway: gw.Gateway, bell: doorbell.Bell, seconds: float) -> list:
        """Wait up to ``seconds`` before the next look at the queue: until the bell rings, the
        gateway has events (receipts, MO: returned) or ``stop`` is set (seen within
        ``doorbell.SLICE_S``). The gateway selects on the bell beside its socket."""
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            events = gateway.poll(min(left, doorbell.SLICE_S), wake=bell)
            if events or bell.wait(0):
                return events
        return []

    @property
    def _plans(self) -> Plans:
        """Agreement plans, reloaded every ``plans_ttl`` seconds so that price and
        service changes reach a long-running serve without a restart."""
        mono = time.monotonic()
        if self._plans_cache is None or mono - self._plans_at >= self.o.plans_ttl:
            self._plans_cache, self._plans_at = Plans(self._session), mono
        return self._plans_cache

    # ------------------------------------------------------------ claiming

    def _claim(self, gateway: gw.Gateway) -> int:
        """Claim a batch (EDRs created and charged), commit, hand to the gateway
        what the window allows."""
        s = self._session
        now = clock.now()
        got = self._claimer.claim(s, now)
        if got is None:
            s.commit()
            return 0
        claimed, send = got
        self._outbound.prepare(s, [r[1] for r, _eid in send])
        for r, eid in send:
            self._flow.add(r, eid, self._outbound.build(s, r, self._refs))
        released = self._flow.release(s, now, results=False)
        s.commit()
        if len(send) < claimed:  # some claimed rows failed at once (no price, no funds): their results are in
            doorbell.written()
        self._send(gateway, released)
        return claimed

    def _send(self, gateway: gw.Gateway, released: list[tuple]) -> None:
        """Hand released messages (their rows committed as ``sending``) to the gateway."""
        for r, eid, msg in released:
            ticket = gateway.submit(msg)
            self._results.sent(ticket, mp.Answers(r[0], eid, len(msg.parts)))

    # ------------------------------------------------------------ writing

    def _flush(self, final: bool = False, release: bool = True) -> None:
        """Write the buffered results, release what the window allows, commit,
        then answer what the commit stored and send what it released."""
        if not self._results.waiting():
            return
        s = self._session
        now = clock.now()
        answer = self._results.write(s, now, final)
        released = self._flow.release(s, now, results=True) if release and not self.stop.is_set() else []
        s.commit()
        self._flow.committed()
        doorbell.written()
        gateway = self._gateway
        if gateway is not None:
            gateway.ack(answer)
            self._send(gateway, released)
