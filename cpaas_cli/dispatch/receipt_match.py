"""Receipts to messages, by vendor message id, for one connection.

Keys: the gateway gives each submit_sm_resp id and each receipt id as a key
(``receipts.normalise_message_id``): with a declared format, the number the id
stands for; with ``auto``, the id as written with case and leading zeros
folded. Two distinct ids of one vendor never share a key.

``auto`` and the receipt text: some vendors repeat the submit_sm_resp id in
the receipt text, others write it in the other base (hex in submit_sm_resp,
decimal in ``id:``). That relation is a property of the connection: it is
learned from the first receipts (:class:`IdRelation`), stored on the
connection and then fixed. While it is not known, a receipt id that reads as
two different ids (``10`` is ``10``, or decimal for ``a``) may match a message
either way: when both readings name a message the receipt is ambiguous; when
only the converted reading does, the receipt waits (its own message may simply
not be acknowledged yet) until the relation is learned or a grace period ends.
An ambiguous receipt is never applied: it is stored in ``inbound_message``
with the reason. The receipted_message_id TLV is the submit_sm_resp id by the
SMPP spec: always read as written.

A message is looked up among this worker's messages waiting for receipts,
then in the database among the messages sent over this connection (another
worker of the same connection, or an earlier run).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.charging import stored as charging_stored
from cpaas_cli.db.checks import storable
from cpaas_cli.dispatch import gateway as gw
from cpaas_cli.dispatch import queue
from cpaas_cli.dispatch.aftercrash import FINAL
from cpaas_cli.dispatch.multipart import Awaiting, Finished, close
from cpaas_cli.dispatch.queue import Q, QueueState
from cpaas_cli.dispatch.receipts import DELIVERED, ENROUTE
from cpaas_cli.models.dispatch import InboundMessage, VendorConnection
from cpaas_cli.models.edr import Edr

log = logging.getLogger("cpaas.serve")

E = Edr.__table__
IN = InboundMessage.__table__
VC = VendorConnection.__table__

SAME, CONVERTED = "same", "converted"
RELATIONS = (SAME, CONVERTED)
LEARN_AFTER = 3  # receipts matched by one reading only (and none the other way) fix the relation
DEC_AFTER = 32  # digits-only submit ids with no hex letter: the vendor's ids are decimal
_HEX_LETTERS = re.compile(r"[0-9a-f]*[a-f][0-9a-f]*")


def other_base(key: str) -> str | None:
    """A folded id read in the other base: digits as a decimal number written
    in hex, hex digits with a letter as a hex number written in decimal; None
    when there is no other reading or it is the same text (0-9)."""
    if key.isdigit():
        alt = format(int(key), "x")
    elif _HEX_LETTERS.fullmatch(key):
        alt = str(int(key, 16))
    else:
        return None
    return None if alt == key else alt


class IdRelation:
    """``auto``: do receipt text ids repeat the submit_sm_resp id (``same``) or
    write it in the other base (``converted``)? Learned, then fixed.

    Fixed at once by a receipt id with a hex letter (it cannot be decimal: the
    same as hex submit ids, converted from decimal ones); otherwise after
    ``LEARN_AFTER`` receipts that only one reading matched, with none matched
    only the other way.
    """

    def __init__(self, learned: str | None = None):
        self.fixed = learned if learned in RELATIONS else None
        self.newly_fixed = False
        self.submit_letters = False
        self.submit_digits = 0
        self.votes: Counter = Counter()

    def saw_submit(self, key: str) -> None:
        if not key:
            return
        if key.isdigit():
            self.submit_digits += 1
        elif _HEX_LETTERS.fullmatch(key):
            self.submit_letters = True

    def _fix(self, relation: str) -> None:
        if self.fixed is None:
            self.fixed, self.newly_fixed = relation, True

    def readings(self, key: str, from_tlv: bool) -> list[tuple[str, str]]:
        """The keys a receipt id may stand for, each with its relation."""
        alt = None if from_tlv else other_base(key)
        if alt is None or self.fixed == SAME:
            return [(key, SAME)]
        if self.fixed == CONVERTED:
            return [(alt, CONVERTED)]
        if not key.isdigit():  # a hex letter: the receipt writes hex
            if self.submit_letters:
                self._fix(SAME)
                return [(key, SAME)]
            if self.submit_digits >= DEC_AFTER:
                self._fix(CONVERTED)
                return [(alt, CONVERTED)]
        return [(key, SAME), (alt, CONVERTED)]

    def vote(self, relation: str) -> None:
        self.votes[relation] += 1
        other = CONVERTED if relation == SAME else SAME
        if self.votes[relation] >= LEARN_AFTER and not self.votes[other]:
            self._fix(relation)


@dataclass
class _Held:
    receipt: gw.DeliveryReceipt
    since: float
    voted: bool = False


Finals = dict[int, tuple[int | None, str, str | None]]  # edr id -> (queue id, status, vendor error)


class ReceiptMatcher:
    """One per worker. ``learn`` (an :class:`IdRelation`) only for ``auto`` connections."""

    GRACE = 10.0  # seconds a receipt may wait for its submit_sm_resp (or for the relation to be learned)

    def __init__(self, connection_id: int | None, *, default_route: bool = False, learn: IdRelation | None = None):
        self.connection_id = connection_id
        self.default_route = default_route
        self.learn = learn
        self.awaiting: dict[str, Awaiting] = {}
        self.finished = Finished()  # part ids of messages final already (their receipts may still come)
        self.pending: list[_Held] = []
        self.matched = 0
        self.unmatched = 0
        self.ambiguous = 0
        self.extra = 0  # receipts of other parts of a message already final (multipart_final any)
        self.statuses: Counter = Counter()

    def expect(self, waiting: Awaiting) -> None:
        """A message accepted by the SMSC: the keys of its parts that asked for a
        receipt wait for one (``multipart.settle`` says which, and how many make it final)."""
        for key in waiting.ids:
            if key:
                self.awaiting[key] = waiting
                if self.learn is not None:
                    self.learn.saw_submit(key)

    # ------------------------------------------------------------ matching

    def _readings(self, r: gw.DeliveryReceipt) -> list[tuple[str, str]]:
        if not r.message_id:
            return []
        if self.learn is None:
            return [(r.message_id, SAME)]
        return self.learn.readings(r.message_id, r.id_from_tlv)

    def _stored(self, s: Session, keys: set[str]) -> dict[str, set[tuple[int, int]]]:
        """key -> {(edr id, queue id)} of messages sent over this connection."""
        found: dict[str, set[tuple[int, int]]] = {}
        ks = sorted(keys)
        for start in range(0, len(ks), 5000):
            rows = s.execute(
                sa.select(E.c.id, E.c.vendor_message_id, E.c.external_id).where(
                    E.c.vendor_message_id.in_(ks[start : start + 5000]), E.c.direction == "mt"
                )
            ).all()
            by_q = {int(ext[3:]): (eid, vid) for eid, vid, ext in rows if ext and ext.startswith("om:")}
            if not by_q:
                continue
            route = Q.c.connection_id == self.connection_id
            if self.default_route:
                route = sa.or_(route, Q.c.connection_id.is_(None))
            for (qid,) in s.execute(sa.select(Q.c.id).where(Q.c.id.in_(list(by_q)), route)):
                eid, vid = by_q[qid]
                found.setdefault(vid, set()).add((eid, qid))
        return found

    def match(self, s: Session, receipts: list[gw.DeliveryReceipt], now: datetime, final: bool = False) -> Finals:
        """Final statuses of the messages these receipts (and the held ones)
        complete; what cannot be attributed is stored with its reason. No commit."""
        mono = time.monotonic()
        batch = self.pending + [_Held(r, mono) for r in receipts if r.status != ENROUTE]
        self.pending = []
        readings = {id(h): self._readings(h.receipt) for h in batch}
        # One reading: the database only for ids not waiting here. Two readings: every
        # message either names counts, wherever it is (another worker, an earlier run).
        need = {k for rs in readings.values() for k, _ in rs if len(rs) > 1 or k not in self.awaiting}
        stored = self._stored(s, need) if need else {}

        def hits(key: str) -> set[int]:
            got = {e for e, _q in stored.get(key, ())}
            if key in self.awaiting:
                got.add(self.awaiting[key].edr_id)
            return got

        # Votes first: a batch may teach the relation its own receipts need.
        if self.learn is not None and self.learn.fixed is None:
            for h in batch:
                rs = readings[id(h)]
                if h.voted or len(rs) < 2:
                    continue
                by_rel = {rel: hits(k) for k, rel in rs}
                matched = [rel for rel, e in by_rel.items() if e]
                if len(matched) == 1:
                    self.learn.vote(matched[0])
                    h.voted = True
        if self.learn is not None and self.learn.fixed is not None:
            readings = {i: [(k, rel) for k, rel in rs if rel == self.learn.fixed] or rs for i, rs in readings.items()}

        out: Finals = {}
        lost: list[tuple[gw.DeliveryReceipt, str]] = []
        done: set[str] = set()  # keys whose message this batch completed or counted
        for h in batch:
            r, rs = h.receipt, readings[id(h)]
            expired = final or mono - h.since >= self.GRACE
            if not rs:
                lost.append((r, "the receipt carries no message id"))
                continue
            by_rel = {rel: (k, hits(k)) for k, rel in rs}
            edrs = set().union(*(e for _k, e in by_rel.values()))
            if not edrs and any(self.finished.take(k) for k, _ in rs):
                self.extra += 1
                continue
            if not edrs and any(k in done for k, _ in rs):
                lost.append((r, f"a second receipt for message id {r.message_id}"))
                continue
            if not edrs:
                if expired:
                    lost.append((r, f"no message with id {r.message_id} was sent over this connection"))
                else:
                    self.pending.append(h)
                continue
            if len(edrs) > 1:
                if self.learn is not None and self.learn.fixed is None and not expired:
                    self.pending.append(h)
                    continue
                self.ambiguous += 1
                names = "; ".join(
                    f"{'as written' if rel == SAME else 'in the other base'} {k!r} is EDR #{', #'.join(map(str, sorted(e)))}"
                    for rel, (k, e) in by_rel.items()
                    if e
                )
                lost.append((r, f"ambiguous id {r.message_id}: {names}"))
                continue
            rels = [rel for rel, (_k, e) in by_rel.items() if e]
            rel = SAME if SAME in rels else rels[0]  # one message either way: as written
            if rel == CONVERTED and self.learn is not None and self.learn.fixed is None and not expired:
                self.pending.append(h)  # its own message may not be acknowledged yet
                continue
            key = by_rel[rel][0]
            (edr_id,) = edrs
            status = "delivered" if r.status == DELIVERED else "undelivered"
            w = self.awaiting.get(key)
            done.add(key)
            if w is not None and w.edr_id == edr_id:
                del self.awaiting[key]
                if w.count(r.status, r.err):
                    out[edr_id] = (w.queue_id, w.worst, w.err)
                    close(self.awaiting, self.finished, w, key)
                continue
            if edr_id in out:
                lost.append((r, f"a second receipt for message id {r.message_id}"))
                continue
            qid = next(q for e, q in stored[key] if e == edr_id)
            out[edr_id] = (qid, status, r.err)
        if lost:
            self._store(s, lost, now)
        self._learned(s)
        for _q, st, _err in out.values():
            self.statuses[st] += 1
        self.matched += len(out)
        return out

    def match_counted(
        self, s: Session, receipts: list[gw.DeliveryReceipt], now: datetime, final: bool, stats: Any
    ) -> Finals:
        """:meth:`match`, adding what it counted to a worker's ``stats`` (``dispatch.stats.WorkerStats``)."""
        before = (self.matched, self.unmatched, self.ambiguous, self.extra, Counter(self.statuses))
        out = self.match(s, receipts, now, final)
        stats.receipts += self.matched - before[0]
        stats.receipts_unmatched += self.unmatched - before[1]
        stats.receipts_ambiguous += self.ambiguous - before[2]
        stats.receipts_extra += self.extra - before[3]
        stats.statuses.update(self.statuses - before[4])
        return out

    def _store(self, s: Session, lost: list[tuple[gw.DeliveryReceipt, str]], now: datetime) -> None:
        self.unmatched += len(lost)
        s.execute(
            sa.insert(IN),
            [
                {
                    "kind": "receipt",
                    "connection_id": self.connection_id,
                    "source": storable(r.source[:32]),
                    "destination": storable(r.destination[:32]),
                    "text": storable(r.raw),  # as received, NUL aside (PostgreSQL refuses it)
                    "data_coding": 0,
                    "message_id": storable((r.message_id or "")[:100]) or None,
                    "status": storable(r.status[:16]),
                    "reason": reason[:300],
                    "received_at": now,
                }
                for r, reason in lost
            ],
        )

    def _learned(self, s: Session) -> None:
        """Store a newly learned relation on the connection (the first one stored wins)."""
        if self.learn is None or not self.learn.newly_fixed:
            return
        self.learn.newly_fixed = False
        s.execute(
            sa.update(VC)
            .where(VC.c.id == self.connection_id, VC.c.message_id_learned.is_(None))
            .values(message_id_learned=self.learn.fixed)
        )
        log.info("connection #%s: receipt ids %s the submit_sm_resp ids", self.connection_id, _say(self.learn.fixed))


def _say(relation: str | None) -> str:
    return "repeat" if relation == SAME else "convert the base of"


# ---------------------------------------------------------------- housekeeping


def expire_receipts(session: Session, *, older_than: float, now: datetime | None = None) -> int:
    """Close as undelivered (vendor error ``no_receipt``) the messages submitted
    more than ``older_than`` seconds ago whose receipt never came. No commit."""
    now = now or clock.now()
    cutoff = now - timedelta(seconds=older_than)
    rows = (
        session.execute(sa.select(Q.c.id).where(Q.c.state == QueueState.SUBMITTED, Q.c.updated_at <= cutoff))
        .scalars()
        .all()
    )
    if not rows:
        return 0
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        exts = [queue.external_id(q) for q in chunk]
        session.execute(
            sa.update(E)
            .where(E.c.external_id.in_(exts), E.c.status.notin_(FINAL))
            .values(status="undelivered", undelivered_at=now, vendor_error="no_receipt")
        )
        callbacks.record_edrs(session, external_ids=exts, now=now, status="undelivered", changed=True)
        queue.expire(session, chunk)
        ids = session.execute(
            sa.select(E.c.id).where(E.c.external_id.in_(exts), E.c.rating_state == "unrated")
        ).scalars()
        ids = list(ids)
        if ids:
            charging_stored.rate_and_charge(session, ids, at=now)
    log.info("closed %d messages without a receipt after %gs", len(rows), older_than)
    return len(rows)
