"""Starting a campaign: its queue of ``outbound_message`` rows, priced and checked.

Starting checks the stop list again (a number blocked since the draft was
made is dropped and counted), renders one ``outbound_message`` per recipient
(set-based for plain texts, in pages with bulk inserts for personalised ones),
prices the result and checks it against the agreement's available funds
(AMB-22): a campaign that does not fit is marked failed and nothing is queued.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.audit.service import record
from cpaas_cli.callbacks import outbox as callbacks
from cpaas_cli.campaigns import senders
from cpaas_cli.campaigns.estimate import Estimate, Hist, estimate, price_campaign
from cpaas_cli.campaigns.rendering import messages
from cpaas_cli.contacts.stoplist import blocked_phones
from cpaas_cli.db import bulk
from cpaas_cli.errors import Conflict
from cpaas_cli.messaging.segments import encoding_segments
from cpaas_cli.models.campaigns import Campaign, CampaignRecipient, OutboundMessage, SenderId
from cpaas_cli.money import format_micros


@dataclass
class StartOutcome:
    campaign: Campaign
    started: bool
    estimate: Estimate | None = None
    reason: str | None = None


def _recheck_stop_list(session: Session, c: Campaign, sender: str) -> int:
    r = CampaignRecipient.__table__
    blocked = blocked_phones(c.company_id, sender)
    removed = (
        session.connection().execute(sa.delete(r).where(r.c.campaign_id == c.id, r.c.phone.in_(blocked))).rowcount or 0
    )
    if removed:
        c.excluded_stop_list += removed
        c.recipients -= removed
    return removed


def fail(session: Session, c: Campaign, reason: str, now: datetime) -> None:
    c.state = "failed"
    c.failure_reason = reason
    c.finished_at = now
    c.updated_at = now
    session.flush()


def start_now(session: Session, c: Campaign, now: datetime) -> StartOutcome:
    """Materialise the queue and run, or mark the campaign failed for lack of credit."""
    sid = session.get(SenderId, c.sender_id)
    assert sid is not None
    senders.require_gateway(c.channel)  # also a draft made before channels without a gateway were refused
    if sid.status != "active":
        raise Conflict(f"sender ID {sid.sender!r} is {sid.status}; the campaign cannot start")
    if c.from_template and c.template_id is None:
        raise Conflict(f"campaign #{c.id} was made from a template that has been deleted; it cannot start")
    _recheck_stop_list(session, c, sid.sender)
    if c.recipients <= 0:
        raise Conflict(f"campaign #{c.id} has no recipients to send to")
    t = OutboundMessage.__table__
    conn = session.connection()
    common = _queue_common(c, sid, now)
    if not c.personalised and c.text is not None:
        e = estimate(session, c, at=now)
        if not e.fits:
            return _no_credit(session, c, e, now)
        enc, segs = encoding_segments(c.text)
        r = CampaignRecipient.__table__
        consts = {**common, "text": c.text, "encoding": enc, "segments": segs}
        names = list(consts)
        dest = ["phone", "country", "mcc", "mnc", "network"]
        sel = sa.select(*[r.c[k] for k in dest], *[sa.literal(v, t.c[k].type).label(k) for k, v in consts.items()])
        sel = sel.where(r.c.campaign_id == c.id)
        conn.execute(sa.insert(t).from_select([*dest, *names], sel.order_by(r.c.id)))
        c.messages = c.recipients
        c.segments = segs * c.recipients
    else:
        tally: Hist = defaultdict(Counter)
        encodings: Counter = Counter()
        nested = session.begin_nested()
        total_msgs = total_segs = 0
        varying = ["phone", "country", "mcc", "mnc", "network", "text", "encoding", "segments"]
        w = bulk.writer(session)
        for page in messages(session, c):
            batch = []
            for phone, dest, text in page:
                enc, segs = encoding_segments(text)
                tally[dest][segs] += 1
                encodings[enc] += 1
                total_segs += segs
                batch.append((phone, *dest, text, enc, segs))
            n = len(batch)
            total_msgs += n
            if n:
                columns = dict(zip(varying, zip(*batch, strict=True), strict=True))
                w.insert(t, {**columns, **{k: [v] * n for k, v in common.items()}})
        e = price_campaign(session, c, dict(tally), encodings, now)
        if not e.fits:
            nested.rollback()
            return _no_credit(session, c, e, now)
        nested.commit()
        c.messages, c.segments = total_msgs, total_segs
    c.estimated_cost = e.cost
    c.state = "in_progress"
    c.started_at = now
    c.updated_at = now
    session.flush()
    _started(session, c, e, now)
    return StartOutcome(c, True, e)


def _started(
    session: Session, c: Campaign, e: Estimate, now: datetime, *, name: bool = False, prepared: bool | None = None
) -> None:
    """After the queue rows: the API's PREPARED callbacks (``prepared`` False: the caller knows
    the key has no callback URL), and the audit row of the start."""
    if prepared is not False and ((c.sources or {}).get("api") or {}).get("api_key_id") is not None:
        callbacks.record_queued(session, campaign_id=c.id, now=now)  # PREPARED, with the queue rows
    new = {"messages": c.messages, "segments": c.segments, "estimated_cost": format_micros(e.cost)}
    record(
        session,
        action="materialise",
        object_type="campaign",
        object_id=c.id,
        company_id=c.company_id,
        new={"name": c.name, **new} if name else new,
    )


def _queue_common(c: Campaign, sid: SenderId, now: datetime) -> dict[str, Any]:
    """The values every queue row of ``c`` shares."""
    api = (c.sources or {}).get("api") or {}
    return {
        "campaign_id": c.id,
        "sender_id": sid.id,
        "sender": sid.sender,
        "connection_id": sid.connection_id,
        "flash": c.flash,
        "state": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        # sent through the HTTP API (cpaas_cli/sending): the key and label go on every message and EDR,
        # acceptMO on every message (its replies are called back: dispatch/mo_reply.py)
        "api_key_id": api.get("api_key_id"),
        "label": api.get("label"),
        "accept_mo": bool(api.get("accept_mo")),
    }


def start_literal(
    session: Session,
    c: Campaign,
    sid: SenderId,
    rows: list[tuple[str, tuple, str]],
    now: datetime,
    *,
    snaps: list | None = None,
    prepared: bool | None = None,
) -> StartOutcome:
    """Create ``c`` (not yet in the database) already started, its recipients each with a
    literal text of their own: the HTTP API's requests written together (``sending/batch.py``).

    The caller has checked what a start checks before the queue (the sender ID active and
    served, the company not held and not moderating, the stop list); here the rows are priced
    and checked against the agreement's available funds as :func:`start_now` does, and only
    when they fit are the campaign, its recipients and its queue rows written (one
    statement each) — when they do not, nothing is written (``started`` False). ``rows``:
    (E.164 digits, destination, text); ``snaps``: the agreement's rate trees when the caller
    holds them (``catalog.agreement_snapshots``), read here otherwise; ``prepared`` False when the
    caller knows the campaign's API key has no callback URL (no PREPARED rows to look for)."""
    tally: Hist = defaultdict(Counter)
    encodings: Counter = Counter()
    parts = []
    for _phone, dest, text in rows:
        enc, segs = encoding_segments(text)
        tally[dest][segs] += 1
        encodings[enc] += 1
        parts.append((enc, segs))
    e = price_campaign(session, c, dict(tally), encodings, now, snaps=snaps)
    if not e.fits:
        return StartOutcome(c, False, e, credit_reason(e, c.currency))
    c.state, c.started_at, c.created_at, c.updated_at = "in_progress", now, now, now
    c.recipients = c.messages = len(rows)
    c.segments = sum(segs for _enc, segs in parts)
    c.estimated_cost = e.cost
    table = Campaign.__table__
    values = {col.name: getattr(c, col.name) for col in table.columns if col.name != "id"}
    c.id = session.connection().execute(sa.insert(table).values(values).returning(table.c.id)).scalar_one()
    w = bulk.writer(session)
    n = len(rows)
    phones, dests, texts = zip(*rows, strict=True)
    dest_cols = dict(zip(("country", "mcc", "mnc", "network"), zip(*dests, strict=True), strict=True))
    w.insert(
        CampaignRecipient.__table__,
        {"phone": phones, **dest_cols, "values": [None] * n, "text": texts, "campaign_id": [c.id] * n},
    )
    common = _queue_common(c, sid, now)
    encs, segs = zip(*parts, strict=True)
    w.insert(
        OutboundMessage.__table__,
        {"phone": phones, **dest_cols, "text": texts, "encoding": encs, "segments": segs,
         **{k: [v] * n for k, v in common.items()}},
    )  # fmt: skip
    _started(session, c, e, now, name=True, prepared=prepared)
    return StartOutcome(c, True, e)


def _no_credit(session: Session, c: Campaign, e: Estimate, now: datetime) -> StartOutcome:
    reason = credit_reason(e, c.currency)
    c.estimated_cost = e.cost
    fail(session, c, reason, now)
    return StartOutcome(c, False, e, reason)


def credit_reason(e: Estimate, currency: str) -> str:
    """Why an estimate does not fit: the client's funds, or a reseller level's (named)."""
    up = e.short_level()
    if up is not None:
        return (
            f"insufficient credit at level {up.level} (reselling agreement {up.agreement}): estimated "
            f"{format_micros(up.cost)} {up.currency}, available {format_micros(up.available)} {up.currency}"
        )
    return (
        f"insufficient credit: estimated {format_micros(e.cost)} {currency}, "
        f"available {format_micros(e.available)} {currency}"
    )
