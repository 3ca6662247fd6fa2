"""Dispatch workers: the outbound queue → EDRs and charges → an SMPP bind → receipts.

One :class:`Worker` is one thread with one gateway (one bind) and one database
session. Its loop:

1. **Claim** a batch of ``queued`` rows of running campaigns for its connection
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several ``serve`` processes
   share the queue), and in the same transaction create each message's EDR
   (``external_id = "om:<queue id>"``, unique, so a message can never get two)
   and rate it with the ``submitted`` event, which charges the ledger under the
   credit check. A message whose EDR exists already (a claim recovered from a
   dead worker) reuses it and is never charged again. Insufficient credit fails
   the message and the campaign; its remaining queued messages get rejected
   EDRs. The transaction commits; the messages wait to be released
   (``flow.py``): a commit moves them to ``sending`` while the window allows,
   then they go to the gateway (long texts as UDH parts from our own splitter,
   one EDR per message; which parts ask for a receipt follows the connection's
   ``multipart_final``).
2. **Poll** the gateway: accepted submits store the vendor message id (EDR and
   queue row), rejected ones fail the EDR (a long message some of whose parts
   went is submitted with fewer parts and pays for those: ``multipart.py``),
   receipts (``receipt_match``: by vendor message id, in memory, then among the
   messages of this connection in the database) move the EDR to delivered or
   undelivered and rate the ``delivered`` event; a message the SMSC refused
   gets its submitted-rule charge back (``billing/refunds.py``); MO messages are stored and
   handle opt-out keywords (``inbound``). Results and inbound messages are committed
   as they come, in small groups; receipts and MO are answered after that commit.

Crash safety: a row is ``claimed`` from the commit that created its EDR (not
sent), ``sending`` from the commit that released it to the gateway until its
submit_sm_resp is stored. ``aftercrash.recover`` puts the claimed rows of dead
workers back in the queue; a ``sending`` row may or may not have reached the
SMSC: it is sent again (a possible duplicate, never charged again) or held as
``unknown``, as its connection's ``after_crash`` says.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.billing import refunds
from cpaas_cli.campaigns import holds
from cpaas_cli.db.engine import make_session
from cpaas_cli.dispatch import gateway as gw
from cpaas_cli.dispatch import multipart as mp
from cpaas_cli.dispatch.aftercrash import FINAL, host_id
from cpaas_cli.dispatch.flow import Flow
from cpaas_cli.dispatch.outbound import GATEWAY_CHANNELS, OutboundBuilder
from cpaas_cli.dispatch.receipt_match import IdRelation, ReceiptMatcher
from cpaas_cli.dispatch.receipts import parse_id_formats
from cpaas_cli.edr import service as edrs
from cpaas_cli.errors import CpaasError, Upstream
from cpaas_cli.messaging.segments import RefAllocator
from cpaas_cli.models.campaigns import Campaign
from cpaas_cli.models.campaigns import OutboundMessage as QueueRow
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.edr import Edr

log = logging.getLogger("cpaas.serve")

Q = QueueRow.__table__
E = Edr.__table__
C = Campaign.__table__

DEFAULT_STOP_WORDS = ("STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT", "OPTOUT", "BAJA")
DEFAULT_START_WORDS = ("START", "SUBSCRIBE", "UNSTOP", "ALTA")


def external_id(queue_id: int) -> str:
    return f"om:{queue_id}"


def worker_name(n: int) -> str:
    return f"{host_id()}:{os.getpid()}:{n}"


@dataclass
class WorkerOptions:
    batch: int = 200  # queue rows claimed per transaction
    flush_every: float = 0.2  # at most this long between commits (held receipts are matched again at each)
    once: bool = False  # stop when nothing is left to claim and receipts are in (or timed out)
    receipt_timeout: float = 30.0  # --once: seconds to wait for receipts after the last submit
    idle_sleep: float = 1.0  # long-running mode: pause when the queue is empty
    stop_words: tuple[str, ...] = DEFAULT_STOP_WORDS
    start_words: tuple[str, ...] = DEFAULT_START_WORDS
    default_route: bool = False  # also send queue rows whose sender ID names no connection
    plans_ttl: float = 30.0  # seconds a worker keeps agreement plans (rate trees) before reloading them


@dataclass
class WorkerStats:
    claimed: int = 0
    charged: int = 0  # new EDRs rated at submit time
    reused_edrs: int = 0  # recovered claims: EDR (and charge) reused
    submitted: int = 0  # messages accepted by the SMSC (all parts)
    rejected: int = 0  # messages refused by the SMSC
    refunded: int = 0  # refused messages whose submitted-rule charge was given back
    partly_refused: int = 0  # long messages sent with some parts refused (counted in submitted)
    no_credit: int = 0  # messages not sent for lack of credit
    not_rated: int = 0  # messages not sent because rating rejected them (no rate, blocked, ...)
    receipts: int = 0  # receipts matched to an EDR
    receipts_unmatched: int = 0  # stored in inbound_message with the reason (ambiguous ones included)
    receipts_ambiguous: int = 0  # ids that could name more than one message: never applied
    receipts_extra: int = 0  # receipts of parts of a message already final (multipart_final any)
    mo: int = 0
    opt_outs: int = 0
    opt_ins: int = 0
    campaigns_failed: int = 0
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "statuses"}
        d["receipt_statuses"] = dict(self.statuses)
        return d


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
        self._tickets: dict[int, mp.Answers] = {}
        self._partial: list[mp.Settled] = []  # sent with some parts refused, to store
        fmt = getattr(connection, "message_id_format", None) or "auto"
        learn = (
            IdRelation(getattr(connection, "message_id_learned", None)) if parse_id_formats(fmt)[1] == "auto" else None
        )
        self._matcher = ReceiptMatcher(connection.id, default_route=self.o.default_route, learn=learn)
        self._default_country = getattr(connection, "default_country", None)
        self._outbound = OutboundBuilder(connection)  # TON/NPI, coding, concatenation, flash, receipts per part
        self._accepted: list[tuple[int, int, str]] = []  # (queue id, edr id, vendor id)
        self._failed: list[tuple[int, int, str, str]] = []  # (queue id, edr id, vendor error, reason)
        self._receipts: list[gw.DeliveryReceipt] = []
        self._mo: list[gw.MobileOriginated] = []
        self._plans_cache: edrs.Plans | None = None
        self._plans_at = 0.0
        self._campaigns: dict[int, tuple[int, int | None, str]] = {}
        self._session: Session | None = None
        self._flow = Flow(window=max(1, getattr(connection, "window_size", None) or 10))
        self._gateway: gw.Gateway | None = None

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
        try:
            while True:
                stopping = self.stop.is_set()
                up = gateway.connected
                if not stopping and up and len(self._flow.ready) < self.o.batch:
                    got = self._claim(gateway)
                    exhausted = got == 0
                    if got:
                        last_activity = time.monotonic()
                events = gateway.poll(0.02 if gateway.backlog() or self._awaiting or not up else 0.0)
                if events:
                    last_activity = time.monotonic()
                    self._handle(events)
                now = time.monotonic()
                # Results and inbound messages commit as they come, in small groups:
                # that frees the window (flow.py) and lets receipts and MO be answered.
                inbound = len(self._receipts) + len(self._mo)
                if self._flow.due(now, gateway.inflight(), inbound) or now - last_flush >= self.o.flush_every:
                    self._flush()
                    last_flush = now
                idle = not gateway.pending() and not self._tickets and not self._early
                if stopping and idle:
                    break
                receipts_done = not self._awaiting or now - last_activity >= self.o.receipt_timeout
                if self.o.once and exhausted and idle and not self._flow.ready and receipts_done:
                    break
                if not self.o.once and exhausted and idle and not events:
                    self.stop.wait(min(self.o.idle_sleep, 0.05 if self._awaiting else self.o.idle_sleep))
        finally:
            self._flush(release=False)
            self._flush(final=True, release=False)
            if self._flow.ready:
                self._flow.give_back(self._session, clock.now())
                self._session.commit()
            gateway.close()
            self._session.close()
            log.info("worker %s done: %s", self.name, self.stats.as_dict())

    @property
    def _plans(self) -> edrs.Plans:
        """Agreement plans, reloaded every ``plans_ttl`` seconds so that price and
        service changes reach a long-running serve without a restart."""
        mono = time.monotonic()
        if self._plans_cache is None or mono - self._plans_at >= self.o.plans_ttl:
            self._plans_cache, self._plans_at = edrs.Plans(self._session), mono
        return self._plans_cache

    # ------------------------------------------------------------ claiming

    def _campaign(self, s: Session, campaign_id: int) -> tuple[int, int | None, str]:
        got = self._campaigns.get(campaign_id)
        if got is None:
            row = s.execute(sa.select(C.c.company_id, C.c.agreement_id, C.c.channel).where(C.c.id == campaign_id)).one()
            got = self._campaigns[campaign_id] = (row[0], row[1], row[2])
        return got

    def _claim(self, gateway: gw.Gateway) -> int:
        """Claim a batch, create/reuse EDRs, charge, commit, hand to the gateway."""
        s = self._session
        now = clock.now()
        route = Q.c.connection_id == self.connection_id
        if self.o.default_route:
            route = sa.or_(route, Q.c.connection_id.is_(None))
        # running, not of a disabled company (held), on a channel a gateway serves
        running = holds.sendable_campaigns().where(C.c.channel.in_(GATEWAY_CHANNELS))
        pick = (
            sa.select(Q.c.id)
            .where(Q.c.state == "queued", route, Q.c.campaign_id.in_(running))
            .order_by(Q.c.id)
            .limit(self.o.batch)
            .with_for_update(skip_locked=True)
        )
        if s.get_bind().dialect.name != "postgresql":
            edrs._write_lock(s)  # take SQLite's write lock before reading what to claim
        # Two statements: PostgreSQL may run an IN (subquery ... LIMIT) more than
        # once inside an UPDATE; the selected rows stay locked until the commit.
        picked = s.execute(pick).scalars().all()
        if not picked:
            s.commit()
            return 0
        rows = s.execute(
            sa.update(Q)
            .where(Q.c.id.in_(picked), Q.c.state == "queued")
            .values(state="claimed", claimed_by=self.name, claimed_at=now, attempts=Q.c.attempts + 1, updated_at=now)
            .returning(
                Q.c.id,
                Q.c.campaign_id,
                Q.c.phone,
                Q.c.country,
                Q.c.sender,
                Q.c.text,
                Q.c.encoding,
                Q.c.segments,
                Q.c.mcc,
                Q.c.mnc,
                Q.c.network,
            )
        ).all()
        if not rows:
            s.commit()
            return 0
        rows.sort(key=lambda r: r[0])
        self.stats.claimed += len(rows)
        ext = {external_id(r[0]): r for r in rows}
        have = {
            x: (i, st, vid)
            for x, i, st, vid in s.execute(
                sa.select(E.c.external_id, E.c.id, E.c.status, E.c.vendor_message_id).where(E.c.external_id.in_(ext))
            )
        }
        new = [r for x, r in ext.items() if x not in have]
        edr_of = {ext[x][0]: v[0] for x, v in have.items()}
        skip: dict[int, str] = {}
        for x, (_i, st, vid) in have.items():
            qid = ext[x][0]
            if st in FINAL:
                skip[qid] = st
            elif vid:
                skip[qid] = "submitted"  # its submit_sm_resp was stored: never send again
            else:
                self.stats.reused_edrs += 1
        if new:
            ids = edrs._reserve_ids(s, len(new))
            recs = []
            for r, i in zip(new, ids, strict=True):
                company_id, agreement_id, channel = self._campaign(s, r[1])
                recs.append(self._outbound.as_sent(s, r, _edr_row(i, r, company_id, agreement_id, channel, now)))
                edr_of[r[0]] = i
            self._charge(s, recs, now)
        # What rating refused (credit, no rate, blocked) is not sent.
        refused = {
            i: (reason, cid)
            for i, reason, cid in s.execute(
                sa.select(E.c.id, E.c.rating_reason, E.c.campaign_id).where(
                    E.c.id.in_(list(edr_of.values())), E.c.rating_state == "rejected", E.c.status != "failed"
                )
            )
        }
        send: list[tuple] = []
        failed_campaigns: set[int] = set()
        for r in rows:
            qid, eid = r[0], edr_of[r[0]]
            if qid in skip:
                st = skip[qid]
                s.execute(
                    sa.update(Q)
                    .where(Q.c.id == qid)
                    .values(state="submitted" if st == "submitted" else ("done" if st != "failed" else "failed"))
                )
                continue
            if eid in refused:
                reason, cid = refused[eid]
                if reason == "insufficient_credit":
                    self.stats.no_credit += 1
                    failed_campaigns.add(cid)
                else:
                    self.stats.not_rated += 1
                s.execute(sa.update(E).where(E.c.id == eid).values(status="failed", failed_at=now))
                s.execute(
                    sa.update(Q)
                    .where(Q.c.id == qid)
                    .values(state="failed", error=f"not sent: rating rejected ({reason})", updated_at=now)
                )
                continue
            send.append((r, eid))
        for cid in sorted(failed_campaigns):
            self._fail_campaign(s, cid, now)
        self._outbound.prepare(s, [r[1] for r, _eid in send])
        for r, eid in send:
            self._flow.add(r, eid, self._outbound.build(s, r, self._refs))
        released = self._flow.release(s, now, results=False)
        s.commit()
        self._send(gateway, released)
        return len(rows)

    def _send(self, gateway: gw.Gateway, released: list[tuple]) -> None:
        """Hand released messages (their rows committed as ``sending``) to the gateway."""
        for r, eid, msg in released:
            ticket = gateway.submit(msg)
            self._tickets[ticket] = mp.Answers(r[0], eid, len(msg.parts))

    def _charge(self, s: Session, recs: list[dict], now: datetime) -> None:
        """The submitted event and rating of new EDRs (the ledger's credit check
        applies), rated in memory and inserted with their results and charges
        in one go, as ``edr ingest`` does."""
        for r in recs:
            r["status"], r["submitted_at"] = "submitted", now
        decisions, charges = edrs.Rater(s, self._plans, now=now).decide(recs)
        for r, d in zip(recs, decisions, strict=True):
            if d is not None:
                r.update(edrs._result(d, now))
        edrs.bulk_insert(s, E, recs)
        edrs._post_bulk(s, charges)  # tuples in CHARGE_COLUMNS order (+ row position)
        self.stats.charged += sum(1 for d in decisions if d is not None)

    def _fail_campaign(self, s: Session, campaign_id: int, now: datetime) -> None:
        """Insufficient credit: the campaign fails; its queued messages get rejected EDRs."""
        got = s.execute(
            sa.update(C)
            .where(C.c.id == campaign_id, C.c.state.in_(["in_progress", "paused"]))
            .values(state="failed", failure_reason="insufficient credit while sending", finished_at=now, updated_at=now)
        ).rowcount
        if got:
            self.stats.campaigns_failed += 1
        left = s.execute(
            sa.select(
                Q.c.id,
                Q.c.campaign_id,
                Q.c.phone,
                Q.c.country,
                Q.c.sender,
                Q.c.text,
                Q.c.encoding,
                Q.c.segments,
                Q.c.mcc,
                Q.c.mnc,
                Q.c.network,
            )
            .where(Q.c.campaign_id == campaign_id, Q.c.state == "queued")
            .order_by(Q.c.id)
        ).all()
        have = set(
            s.execute(sa.select(E.c.external_id).where(E.c.campaign_id == campaign_id, E.c.external_id.isnot(None)))
            .scalars()
            .all()
        )
        left_new = [r for r in left if external_id(r[0]) not in have]
        if left_new:
            company_id, agreement_id, channel = self._campaign(s, campaign_id)
            ids = edrs._reserve_ids(s, len(left_new))
            recs = []
            for r, i in zip(left_new, ids, strict=True):
                rec = _edr_row(i, r, company_id, agreement_id, channel, now)
                rec.update(
                    status="failed",
                    failed_at=now,
                    rating_state="rejected",
                    rating_reason="insufficient_credit",
                    rating_note="the campaign stopped: credit ran out",
                    rated_at=now,
                )
                recs.append(rec)
            edrs.bulk_insert(s, E, recs)
        s.execute(
            sa.update(Q)
            .where(Q.c.campaign_id == campaign_id, Q.c.state == "queued")
            .values(state="failed", error="not sent: insufficient credit", updated_at=now)
        )
        record(
            s,
            action="fail",
            object_type="campaign",
            object_id=campaign_id,
            new={"reason": "insufficient credit while sending", "unsent": len(left)},
        )
        log.warning("campaign #%s failed: insufficient credit (%d messages not sent)", campaign_id, len(left))

    # ------------------------------------------------------------ events

    def _handle(self, events: list[gw.Event]) -> None:
        for ev in events:
            if isinstance(ev, gw.SubmitAccepted):
                inf = self._tickets.get(ev.ticket)
                if inf is not None and inf.accept(ev.part, ev.message_id):
                    self._finish_ticket(ev.ticket, inf)
            elif isinstance(ev, gw.SubmitRejected):
                inf = self._tickets.get(ev.ticket)
                if inf is not None and inf.refuse(ev.part, ev.status, ev.reason):
                    self._finish_ticket(ev.ticket, inf)
            elif isinstance(ev, gw.DeliveryReceipt):
                self._receipts.append(ev)
            elif isinstance(ev, gw.MobileOriginated):
                self._mo.append(ev)
            elif isinstance(ev, gw.LinkChanged):
                level = logging.INFO if ev.up else logging.WARNING
                log.log(
                    level,
                    "worker %s link %s: %s (requeued %d)",
                    self.name,
                    "up" if ev.up else "down",
                    ev.detail,
                    ev.requeued,
                )

    def _finish_ticket(self, ticket: int, inf: mp.Answers) -> None:
        del self._tickets[ticket]
        self._flow.answered(inf.parts)
        got = mp.settle(self._outbound.multipart_final, inf)
        if got.failed:
            code, reason = got.error
            self._failed.append((inf.queue_id, inf.edr_id, code, reason))
            self.stats.rejected += 1
            return
        self._accepted.append((inf.queue_id, inf.edr_id, got.key_id))
        self.stats.submitted += 1
        if got.partial:
            self._partial.append(got)
            self.stats.partly_refused += 1
        if got.awaiting is not None:
            self._matcher.expect(got.awaiting)

    # ------------------------------------------------------------ writing

    def _flush(self, final: bool = False, release: bool = True) -> None:
        if not (self._accepted or self._failed or self._receipts or self._mo or self._early):
            return
        inbound = self._receipts + self._mo + [h.receipt for h in self._early]
        s = self._session
        now = clock.now()
        accepted, self._accepted = self._accepted, []
        partial, self._partial = self._partial, []
        failed, self._failed = self._failed, []
        receipts, self._receipts = self._receipts, []
        mos, self._mo = self._mo, []
        if s.get_bind().dialect.name != "postgresql":
            edrs._write_lock(s)
        if accepted:
            s.execute(
                sa.update(Q)
                .where(Q.c.id == sa.bindparam("b_q"), sa.or_(Q.c.state == "claimed", Q.c.state == "sending"))
                .values(state="submitted", vendor_message_id=sa.bindparam("b_v"), updated_at=now),
                [{"b_q": q, "b_v": v[:100]} for q, _e, v in accepted],
            )
            s.execute(
                sa.update(E).where(E.c.id == sa.bindparam("b_e")).values(vendor_message_id=sa.bindparam("b_v")),
                [{"b_e": e, "b_v": v[:100]} for _q, e, v in accepted],
            )
        finals: dict[int, tuple[int, str, str | None]] = {}  # edr id -> (queue id, status, vendor error)
        if partial:  # after their vendor ids, before any receipt rates them
            finals.update(mp.record_partial(s, partial, self._plans, now=now))
        for q, e, code, reason in failed:
            finals[e] = (q, "failed", code)
            s.execute(sa.update(Q).where(Q.c.id == q).values(state="failed", error=reason[:200], updated_at=now))
        if receipts or self._early:
            finals.update(self._match_receipts(s, receipts, now, final))
        if finals:
            self._finalise(s, finals, now)
        if failed:
            got = refunds.refund_unsent(s, [e for _q, e, _c, _r in failed], self._plans, now=now)
            self.stats.refunded += got["refunded"]
        if mos:
            self._store_mo(s, mos, now)
        released = self._flow.release(s, now, results=True) if release and not self.stop.is_set() else []
        s.commit()
        self._flow.committed()
        gateway = self._gateway
        if gateway is not None:
            # Answer what this commit stored: not the receipts still waiting for
            # their submit_sm_resp (kept in memory only).
            waiting = {id(h.receipt) for h in self._early}
            gateway.ack([ev for ev in inbound if id(ev) not in waiting])
            self._send(gateway, released)

    def _match_receipts(
        self, s: Session, receipts: list[gw.DeliveryReceipt], now: datetime, final: bool = False
    ) -> dict[int, tuple[int, str, str | None]]:
        """Receipts to final EDR statuses (``receipt_match``); the rest is stored with its reason."""
        m = self._matcher
        before = (m.matched, m.unmatched, m.ambiguous, m.extra, Counter(m.statuses))
        out = m.match(s, receipts, now, final)
        self.stats.receipts += m.matched - before[0]
        self.stats.receipts_unmatched += m.unmatched - before[1]
        self.stats.receipts_ambiguous += m.ambiguous - before[2]
        self.stats.receipts_extra += m.extra - before[3]
        self.stats.statuses.update(m.statuses - before[4])
        return out

    def _finalise(self, s: Session, finals: dict[int, tuple[int, str, str | None]], now: datetime) -> None:
        """Final EDR statuses (only on EDRs not final yet), queue rows done, then rating."""
        by_status: dict[str, list[dict]] = {}
        for e, (_q, st, err) in finals.items():
            by_status.setdefault(st, []).append({"b_e": e, "b_err": (err or None) and str(err)[:32]})
        for st, params in by_status.items():
            s.execute(
                sa.update(E)
                .where(E.c.id == sa.bindparam("b_e"), *(E.c.status != f for f in FINAL))
                .values({"status": st, f"{st}_at": now, "vendor_error": sa.bindparam("b_err")}),
                params,
            )
        done = [q for q, st, _ in finals.values() if q is not None and st != "failed"]
        if done:
            s.execute(
                sa.update(Q)
                .where(Q.c.id == sa.bindparam("b_q"), Q.c.state != "done", Q.c.state != "failed")
                .values(state="done", updated_at=now),
                [{"b_q": q} for q in done],
            )
        ids = list(finals)
        rows = [
            dict(m)
            for m in s.execute(
                sa.select(E).where(E.c.id.in_(ids), E.c.rating_state == "unrated").order_by(E.c.event_at, E.c.id)
            ).mappings()
        ]
        if rows:
            edrs.rate_rows(s, rows, self._plans)

    def _store_mo(self, s: Session, mos: list[gw.MobileOriginated], now: datetime) -> None:
        from cpaas_cli.dispatch import inbound

        for m in mos:
            action = inbound.handle_mo(
                s,
                source=m.source,
                dest=m.dest,
                text=m.text,
                data_coding=m.data_coding,
                connection_id=self.connection_id,
                source_ton=m.source_ton,
                default_country=self._default_country,
                stop_words=self.o.stop_words,
                start_words=self.o.start_words,
                now=now,
            )
            self.stats.mo += 1
            if action == "opt_out":
                self.stats.opt_outs += 1
            elif action == "opt_in":
                self.stats.opt_ins += 1


def _edr_row(edr_id: int, r, company_id: int, agreement_id: int | None, channel: str, now: datetime) -> dict:
    qid, cid, phone, country, sender, _text, encoding, segments = r[:8]
    # The network of the number range, so the charge is priced by network
    # (campaigns.destinations): the queue row's mcc/mnc/network when the row
    # was read with them and filled, otherwise looked up from the number
    # (memoised per prefix; the same answer the campaign stored). The EDR's
    # network is the dictionary's name of a recognised network, else the carrier's.
    from cpaas_cli.campaigns.destinations import destination
    from cpaas_cli.catalog.dictionary import network_name

    m = getattr(r, "_mapping", None)
    if m is not None and m.get("mcc") is not None:
        mcc, mnc, network = m["mcc"], m.get("mnc"), m.get("network")
    else:
        _c, mcc, mnc, network = destination(phone)
    if mcc and mnc:
        network = network_name(mcc + mnc) or network
    return {
        "id": edr_id,
        "external_id": external_id(qid),
        "vendor_message_id": None,
        "company_id": company_id,
        "agreement_id": agreement_id,
        "campaign_id": cid,
        "sender": sender,
        "channel": channel,
        "direction": "mt",
        "source": sender,
        "destination": phone,
        "mcc": mcc,
        "mnc": mnc,
        "country": country,
        "network": network,
        "encoding": encoding,
        "segments": segments,
        "status": "prepared",
        "event_at": now,
        "prepared_at": now,
        "billed_at": None,
        "submitted_at": None,
        "delivered_at": None,
        "undelivered_at": None,
        "failed_at": None,
        "seen_at": None,
        "vendor_error": None,
        "rating_state": "unrated",
        "rating_reason": None,
        "rating_note": None,
        "rate_path": None,
        "service_id": None,
        "billing_rule": None,
        "unit_price": None,
        "quantity": None,
        "cost": None,
        "currency": None,
        "pack_enabled_id": None,
        "pack_units": None,
        "rated_at": None,
        "ingested_at": now,
    }


# ---------------------------------------------------------------- housekeeping


def expire_receipts(session: Session, *, older_than: float, now: datetime | None = None) -> int:
    """Close as undelivered (vendor error ``no_receipt``) the messages submitted
    more than ``older_than`` seconds ago whose receipt never came. No commit."""
    now = now or clock.now()
    cutoff = now - timedelta(seconds=older_than)
    rows = session.execute(sa.select(Q.c.id).where(Q.c.state == "submitted", Q.c.updated_at <= cutoff)).scalars().all()
    if not rows:
        return 0
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        exts = [external_id(q) for q in chunk]
        session.execute(
            sa.update(E)
            .where(E.c.external_id.in_(exts), E.c.status.notin_(FINAL))
            .values(status="undelivered", undelivered_at=now, vendor_error="no_receipt")
        )
        session.execute(sa.update(Q).where(Q.c.id.in_(chunk), Q.c.state == "submitted").values(state="done"))
        ids = session.execute(
            sa.select(E.c.id).where(E.c.external_id.in_(exts), E.c.rating_state == "unrated")
        ).scalars()
        ids = list(ids)
        if ids:
            edrs.rate_and_charge(session, ids, at=now)
    log.info("closed %d messages without a receipt after %gs", len(rows), older_than)
    return len(rows)
