"""What comes back from the gateway, buffered between commits and then written.

Accepted submits store the vendor message id (EDR and queue row); refused ones
fail the EDR and give its submitted-rule charge back (``charging/refunds.py``;
a long message some of whose parts went is submitted with fewer parts and
pays for those: ``multipart.py``); receipts (``receipt_match``) move the EDR
to delivered or undelivered and rate the ``delivered`` event; MO messages are
stored and handle opt-out keywords (``inbound``). The worker decides when to
write (``flow.py``) and commits; receipts and MO are answered after that commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.charging import refunds
from cpaas_cli.charging import stored as charging_stored
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk
from cpaas_cli.dispatch import gateway as gw
from cpaas_cli.dispatch import multipart as mp
from cpaas_cli.dispatch import queue
from cpaas_cli.dispatch.aftercrash import FINAL
from cpaas_cli.dispatch.flow import Flow
from cpaas_cli.dispatch.receipt_match import Finals, ReceiptMatcher
from cpaas_cli.dispatch.stats import WorkerStats
from cpaas_cli.models.edr import Edr
from cpaas_cli.otp import results as otp_results

log = logging.getLogger("cpaas.serve")

E = Edr.__table__


class Results:
    """One worker's gateway answers and inbound messages not written yet."""

    def __init__(
        self,
        *,
        worker: str,
        connection_id: int,
        matcher: ReceiptMatcher,
        multipart_final: str,
        flow: Flow,
        stats: WorkerStats,
        plans: Callable[[], Plans],
        default_country: str | None,
        stop_words: tuple[str, ...],
        start_words: tuple[str, ...],
    ):
        self.worker = worker
        self.connection_id = connection_id
        self.matcher = matcher
        self.multipart_final = multipart_final
        self.flow = flow
        self.stats = stats
        self.plans = plans
        self.default_country = default_country
        self.stop_words = stop_words
        self.start_words = start_words
        self.tickets: dict[int, mp.Answers] = {}  # submitted, not all parts answered
        self.accepted: list[tuple[int, int, str]] = []  # (queue id, edr id, vendor id)
        self.failed: list[tuple[int, int, str, str]] = []  # (queue id, edr id, vendor error, reason)
        self.partial: list[mp.Settled] = []  # sent with some parts refused, to store
        self.receipts: list[gw.DeliveryReceipt] = []
        self.mo: list[gw.MobileOriginated] = []

    def sent(self, ticket: int, answers: mp.Answers) -> None:
        """A message handed to the gateway under ``ticket``."""
        self.tickets[ticket] = answers

    def inbound(self) -> int:
        """Receipts and MO messages waiting to be written."""
        return len(self.receipts) + len(self.mo)

    def waiting(self) -> bool:
        """Whether anything waits to be written (held receipts included)."""
        return bool(self.accepted or self.failed or self.receipts or self.mo or self.matcher.pending)

    # ------------------------------------------------------------ events

    def handle(self, events: list[gw.Event]) -> None:
        for ev in events:
            if isinstance(ev, gw.SubmitAccepted):
                inf = self.tickets.get(ev.ticket)
                if inf is not None and inf.accept(ev.part, ev.message_id):
                    self._finish_ticket(ev.ticket, inf)
            elif isinstance(ev, gw.SubmitRejected):
                inf = self.tickets.get(ev.ticket)
                if inf is not None and inf.refuse(ev.part, ev.status, ev.reason):
                    self._finish_ticket(ev.ticket, inf)
            elif isinstance(ev, gw.DeliveryReceipt):
                self.receipts.append(ev)
            elif isinstance(ev, gw.MobileOriginated):
                self.mo.append(ev)
            elif isinstance(ev, gw.LinkChanged):
                level = logging.INFO if ev.up else logging.WARNING
                log.log(
                    level,
                    "worker %s link %s: %s (requeued %d)",
                    self.worker,
                    "up" if ev.up else "down",
                    ev.detail,
                    ev.requeued,
                )

    def _finish_ticket(self, ticket: int, inf: mp.Answers) -> None:
        del self.tickets[ticket]
        self.flow.answered(inf.parts)
        got = mp.settle(self.multipart_final, inf)
        if got.failed:
            code, reason = got.error
            self.failed.append((inf.queue_id, inf.edr_id, code, reason))
            self.stats.rejected += 1
            return
        self.accepted.append((inf.queue_id, inf.edr_id, got.key_id))
        self.stats.submitted += 1
        if got.partial:
            self.partial.append(got)
            self.stats.partly_refused += 1
        if got.awaiting is not None:
            self.matcher.expect(got.awaiting)

    # ------------------------------------------------------------ writing

    def write(self, s: Session, now: datetime, final: bool = False) -> list[gw.Event]:
        """Write what is buffered (no commit); returns the receipts and MO
        messages to answer once the caller has committed (not the receipts
        still held for their submit_sm_resp: those are kept in memory only)."""
        inbound = self.receipts + self.mo + [h.receipt for h in self.matcher.pending]
        accepted, self.accepted = self.accepted, []
        partial, self.partial = self.partial, []
        failed, self.failed = self.failed, []
        receipts, self.receipts = self.receipts, []
        mos, self.mo = self.mo, []
        if s.get_bind().dialect.name != "postgresql":
            bulk.writer(s).write_lock()
        if accepted:
            queue.mark_submitted(s, [(q, v[:100]) for q, _e, v in accepted], now=now)
            s.execute(
                sa.update(E).where(E.c.id == sa.bindparam("b_e")).values(vendor_message_id=sa.bindparam("b_v")),
                [{"b_e": e, "b_v": v[:100]} for _q, e, v in accepted],
            )
            callbacks.record_edrs(s, [e for _q, e, _v in accepted], now=now, status="submitted")
            otp_results.record(s, [q for q, _e, _v in accepted], "SENT", now=now)
        finals: Finals = {}  # edr id -> (queue id, status, vendor error)
        if partial:  # after their vendor ids, before any receipt rates them
            finals.update(mp.record_partial(s, partial, self.plans(), now=now))
        for q, e, code, reason in failed:
            finals[e] = (q, "failed", code)
            queue.fail(s, q, reason[:200], now=now)
        if receipts or self.matcher.pending:
            finals.update(self.matcher.match_counted(s, receipts, now, final, self.stats))
        if finals:
            self._finalise(s, finals, now)
        if failed:
            got = refunds.refund_unsent(s, [e for _q, e, _c, _r in failed], self.plans(), now=now)
            self.stats.refunded += got["refunded"]
            otp_results.record(s, [q for q, _e, _c, _r in failed], "FAILED", now=now)  # after the refund: not billable
        if mos:
            self._store_mo(s, mos, now)
        waiting = {id(h.receipt) for h in self.matcher.pending}
        return [ev for ev in inbound if id(ev) not in waiting]

    def _finalise(self, s: Session, finals: Finals, now: datetime) -> None:
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
            callbacks.record_edrs(s, [p["b_e"] for p in params], now=now, status=st, changed=True)
        done = [q for q, st, _ in finals.values() if q is not None and st != "failed"]
        if done:
            queue.mark_done(s, done, now=now)
        ids = list(finals)
        rows = [
            dict(m)
            for m in s.execute(
                sa.select(E).where(E.c.id.in_(ids), E.c.rating_state == "unrated").order_by(E.c.event_at, E.c.id)
            ).mappings()
        ]
        if rows:
            charging_stored.rate_rows(s, rows, self.plans())

    def _store_mo(self, s: Session, mos: list[gw.MobileOriginated], now: datetime) -> None:
        from cpaas_cli.dispatch import inbound

        for m in mos:
            action, answered = inbound.handle_mo(
                s,
                source=m.source,
                dest=m.dest,
                text=m.text,
                data_coding=m.data_coding,
                connection_id=self.connection_id,
                default_route=self.matcher.default_route,
                source_ton=m.source_ton,
                default_country=self.default_country,
                stop_words=self.stop_words,
                start_words=self.start_words,
                now=now,
            )
            self.stats.mo += 1
            if answered is not None:
                self.stats.mo_answers += 1
            if action == "opt_out":
                self.stats.opt_outs += 1
            elif action == "opt_in":
                self.stats.opt_ins += 1
