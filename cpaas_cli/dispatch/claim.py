"""Claiming: a batch of queued messages becomes the worker's, with its EDRs charged.

One claim is one transaction (the worker commits it): ``queued`` rows of
running campaigns for the worker's connection are picked (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several ``serve`` processes share the queue) and
moved to ``claimed``; each message gets its EDR (``external_id = "om:<queue
id>"``, unique, so a message can never get two), rated with the
``submitted`` event, which charges the ledger under the credit check. A
message whose EDR exists already (a claim recovered from a dead worker)
reuses it and is never charged again. Insufficient credit fails the message
and the campaign; its remaining queued messages get rejected EDRs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.audit.service import record
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.campaigns import holds
from cpaas_cli.charging import rater as charging
from cpaas_cli.charging import vendor
from cpaas_cli.charging.events import event_of
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk
from cpaas_cli.dispatch import queue
from cpaas_cli.dispatch.aftercrash import FINAL
from cpaas_cli.dispatch.outbound import GATEWAY_CHANNELS, OutboundBuilder
from cpaas_cli.dispatch.queue import Q, QueueState, external_id
from cpaas_cli.dispatch.stats import WorkerStats
from cpaas_cli.models.campaigns import Campaign
from cpaas_cli.models.edr import Edr
from cpaas_cli.otp import results as otp_results

log = logging.getLogger("cpaas.serve")

E = Edr.__table__
C = Campaign.__table__

# The queue row as a claim reads it (edr_row takes the first eight by position).
COLUMNS = (
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
    Q.c.api_key_id,
    Q.c.label,
)


class Claimer:
    """Claims for one worker (``worker``: its name, stored on the rows it claims)."""

    def __init__(
        self,
        *,
        connection_id: int,
        worker: str,
        batch: int,
        default_route: bool,
        outbound: OutboundBuilder,
        stats: WorkerStats,
        plans: Callable[[], Plans],
    ):
        self.connection_id = connection_id
        self.worker = worker
        self.batch = batch
        self.default_route = default_route
        self.outbound = outbound
        self.stats = stats
        self.plans = plans
        self._campaigns: dict[int, tuple[int, int | None, str]] = {}
        route = Q.c.connection_id == connection_id
        if default_route:
            route = sa.or_(route, Q.c.connection_id.is_(None))
        # running, not of a disabled company (held), on a channel a gateway serves
        running = holds.sendable_campaigns().where(C.c.channel.in_(GATEWAY_CHANNELS))
        self._pick = (  # built once: the same statement at every look
            sa.select(Q.c.id)
            .where(Q.c.state == QueueState.QUEUED, route, Q.c.campaign_id.in_(running))
            .order_by(Q.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )

    def _campaign(self, s: Session, campaign_id: int) -> tuple[int, int | None, str]:
        got = self._campaigns.get(campaign_id)
        if got is None:
            row = s.execute(sa.select(C.c.company_id, C.c.agreement_id, C.c.channel).where(C.c.id == campaign_id)).one()
            got = self._campaigns[campaign_id] = (row[0], row[1], row[2])
        return got

    def claim(self, s: Session, now: datetime) -> tuple[int, list[tuple]] | None:
        """Claim a batch, create/reuse EDRs, charge. Returns (rows claimed,
        [(queue row, EDR id)] to send), or None when nothing was claimed. No commit."""
        pick = self._pick
        if s.get_bind().dialect.name != "postgresql":
            # A look first, outside a transaction: an empty queue (most looks of a waiting
            # worker, and those after a doorbell that rang for rows claimed already) does
            # not take SQLite's one write lock from the API's writers. Then the write lock,
            # taken before reading what to claim: the rows are picked again under it.
            if s.execute(pick.limit(1)).first() is None:
                return None
            bulk.writer(s).write_lock()
        # Two statements: PostgreSQL may run an IN (subquery ... LIMIT) more than
        # once inside an UPDATE; the selected rows stay locked until the commit.
        picked = s.execute(pick).scalars().all()
        if not picked:
            return None
        rows = queue.claim(s, picked, worker=self.worker, now=now, columns=COLUMNS)
        if not rows:
            return None
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
            ids = bulk.writer(s).reserve_ids(E, len(new))
            recs = []
            for r, i in zip(new, ids, strict=True):
                company_id, agreement_id, channel = self._campaign(s, r[1])
                recs.append(self.outbound.as_sent(s, r, edr_row(i, r, company_id, agreement_id, channel, now)))
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
        failed_edrs: list[int] = []
        failed_rows: list[int] = []
        for r in rows:
            qid, eid = r[0], edr_of[r[0]]
            if qid in skip:
                queue.settle_reclaimed(s, qid, skip[qid])
                continue
            if eid in refused:
                reason, cid = refused[eid]
                if reason == "insufficient_credit":
                    self.stats.no_credit += 1
                    failed_campaigns.add(cid)
                else:
                    self.stats.not_rated += 1
                s.execute(sa.update(E).where(E.c.id == eid).values(status="failed", failed_at=now))
                queue.fail(s, qid, f"not sent: rating rejected ({reason})", now=now)
                failed_edrs.append(eid)
                failed_rows.append(qid)
                continue
            send.append((r, eid))
        # API messages' callbacks, in this transaction: charged (new EDRs only) or failed
        fresh = {edr_of[r[0]] for r in new}
        callbacks.record_edrs(s, [e for _r, e in send if e in fresh], now=now, status="billed")
        callbacks.record_edrs(s, failed_edrs, now=now, status="failed")
        if failed_rows:
            otp_results.record(s, failed_rows, "FAILED", now=now)
        for cid in sorted(failed_campaigns):
            self._fail_campaign(s, cid, now)
        return len(rows), send

    def _charge(self, s: Session, recs: list[dict], now: datetime) -> None:
        """The submitted event and rating of new EDRs (the ledger's credit check
        applies), rated in memory and inserted with their results and charges
        in one go, as ``edr ingest`` does."""
        conn = self.connection_id
        for r in recs:
            r["status"], r["submitted_at"], r["connection_id"] = "submitted", now, conn
        plans = self.plans()
        events = [event_of(r) for r in recs]
        decisions, charges = charging.Rater(s, plans, now=now).decide_events([r["agreement_id"] for r in recs], events)
        # The vendor cost (the connection's vendor plan, cached with the agreement plans);
        # what rating refused is not sent, so it costs nothing at the vendor.
        sent = ["failed" if d is not None and d.state == "rejected" else "submitted" for d in decisions]
        costs = vendor.costs(plans.vendor, [conn] * len(recs), events, sent)
        for r, d, vc, vcur, vsvc in zip(
            recs, decisions, costs["vendor_cost"], costs["vendor_currency"], costs["vendor_service_id"], strict=True
        ):
            if d is not None:
                r.update(charging.result(d, now))
            r["vendor_cost"], r["vendor_currency"], r["vendor_service_id"] = vc, vcur, vsvc
        bulk.writer(s).insert_rows(E, recs)
        charging.post_charges(s, charges)  # tuples in CHARGE_COLUMNS order (+ row position)
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
            sa.select(*COLUMNS).where(Q.c.campaign_id == campaign_id, Q.c.state == QueueState.QUEUED).order_by(Q.c.id)
        ).all()
        have = set(
            s.execute(sa.select(E.c.external_id).where(E.c.campaign_id == campaign_id, E.c.external_id.isnot(None)))
            .scalars()
            .all()
        )
        left_new = [r for r in left if external_id(r[0]) not in have]
        if left_new:
            company_id, agreement_id, channel = self._campaign(s, campaign_id)
            ids = bulk.writer(s).reserve_ids(E, len(left_new))
            recs = []
            for r, i in zip(left_new, ids, strict=True):
                rec = edr_row(i, r, company_id, agreement_id, channel, now)
                rec.update(
                    status="failed",
                    failed_at=now,
                    rating_state="rejected",
                    rating_reason="insufficient_credit",
                    rating_note="the campaign stopped: credit ran out",
                    rated_at=now,
                )
                recs.append(rec)
            bulk.writer(s).insert_rows(E, recs)
            callbacks.record_edrs(s, ids, now=now, status="failed")
        queue.fail_queued(s, campaign_id, "not sent: insufficient credit", now=now)
        record(
            s,
            action="fail",
            object_type="campaign",
            object_id=campaign_id,
            new={"reason": "insufficient credit while sending", "unsent": len(left)},
        )
        log.warning("campaign #%s failed: insufficient credit (%d messages not sent)", campaign_id, len(left))


def edr_row(edr_id: int, r, company_id: int, agreement_id: int | None, channel: str, now: datetime) -> dict:
    """The new EDR (``prepared``, unrated) of a queue row read with :data:`COLUMNS`
    (or its first eight)."""
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
        # a message sent through the HTTP API: its key and label (SPEC EDR-01)
        "api_key_id": m.get("api_key_id") if m is not None else None,
        "label": m.get("label") if m is not None else None,
        "connection_id": None,
        "vendor_cost": None,
        "vendor_currency": None,
        "vendor_service_id": None,
    }
