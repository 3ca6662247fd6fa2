"""The price of a campaign before it is sent: pure functions over a tally.

A tally counts messages per destination and per segment count
(``{(country, mcc, mnc, carrier): {segments: messages}}``, see
`destinations.destination`). Each destination is looked up in the
agreement's enabled services (packs first, then pay-as-you-go) as
`catalog.service.resolve_for_agreement` does for one event: by its MCC/MNC
when the carrier of the number range was recognised as one network (a
network leaf of the tree applies), otherwise through the country row (MCC).
Then:

* flat price: each message is one rated event, rounded on its own
  (``money.round_event``), so a destination costs
  ``sum(messages_k * round(price * quantity_k))`` where the quantity is the
  segments (quantity rule ``segments``) or 1 (``messages``);
* scale price: the quantities of every destination that lands on the same rate
  node are added up and priced once over that counter (tier or
  back-to-first, `rating.scales.total`), then shared between those
  destinations in proportion to their quantity;
* free or included in a pack: zero;
* blocked, no rate, unusable tree, or a rate in another currency: no price;
  those messages are reported as unpriced and left out of the total.

The figure is an upper bound for delivered-billed rates (it assumes every
message is billed) and ignores pack balances (an included message costs 0).

`estimate` builds the tally of a stored campaign (grouped in SQL for a plain
text, rendered page by page for a personalised one, nothing stored) and
prices it against the agreement's available funds (AMB-22).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.campaigns import funds
from cpaas_cli.campaigns.destinations import NETWORK_NOTE, mcc_of, network_for
from cpaas_cli.campaigns.rendering import messages
from cpaas_cli.catalog.service import agreement_snapshots, resolve_for_agreement
from cpaas_cli.messaging.segments import GSM7, UCS2, encoding_segments
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import Campaign, CampaignRecipient
from cpaas_cli.money import format_micros, round_event
from cpaas_cli.rating import lookup as lk
from cpaas_cli.rating import scales

Key = tuple[str | None, str | None, str | None, str | None]  # (country, mcc, mnc, carrier)
Tally = Mapping[Key, Mapping[int, int]]
LEGACY_NOTE = "network not looked up (recipients stored before networks were); priced for the country"


def _quantity(rule: str | None, hist: Mapping[int, int]) -> int:
    if rule == "segments":
        return sum(k * n for k, n in hist.items())
    return sum(hist.values())


def _order(key: Key) -> tuple:
    country, mcc, mnc, carrier = key
    return (country is None, country or "", mnc is None, mcc or "", mnc or "", carrier is None, carrier or "")


def destination_row(key: Key) -> dict[str, Any]:
    """The descriptive part of an estimate row: country, network and whether it was recognised."""
    country, mcc, mnc, carrier = key
    net = network_for(country, carrier)
    note = net.note
    if mnc is not None:
        note = None
    elif mcc is None and mcc_of(country) is not None:
        mcc, note = mcc_of(country), LEGACY_NOTE
    return {
        "country": country,
        "mcc": mcc,
        "mnc": mnc,
        "mccmnc": (mcc + mnc) if mcc and mnc else None,
        "network": (net.name if mnc is not None and net.name else None) or carrier,
        "carrier": carrier,
        "network_recognised": mnc is not None,
        "network_note": note,
    }


def price_tally(
    snaps: list[tuple[str, lk.Snapshot]], tally: Tally, *, channel: str, currency: str
) -> tuple[list[dict[str, Any]], int, int]:
    """(rows per country and network, total cost in micro-units, unpriced messages)."""
    rows: list[dict[str, Any]] = []
    scale_groups: dict[tuple, list[tuple[dict[str, Any], int]]] = defaultdict(list)
    scale_of: dict[tuple, dict] = {}
    for key in sorted(tally, key=_order):
        hist = tally[key]
        messages = sum(hist.values())
        segments = sum(k * n for k, n in hist.items())
        row = destination_row(key)
        q = lk.query(channel=channel, mccmnc=row["mccmnc"], mcc=row["mcc"], country=row["country"])
        kind, res = resolve_for_agreement(snaps, q)
        row.update(
            {
                "recipients": messages,
                "messages": messages,
                "segments": segments,
                "status": res.status,
                "source": kind,
                "matched": "/".join(p["value"] + ("*" if p["others"] else "") for p in res.path),
                "quantity_rule": res.quantity_rule,
                "unit_price": None,
                "cost": None,
                "reason": res.reason,
            }
        )
        rows.append(row)
        if res.status in (lk.FREE, lk.INCLUDED):
            row["cost"] = 0
            row["unit_price"] = 0
            continue
        if res.status != lk.RATE:
            continue
        if res.currency and res.currency != currency:
            row["status"] = "other_currency"
            row["reason"] = f"priced in {res.currency}, the agreement is in {currency}"
            continue
        qty_per = (lambda k: k) if res.quantity_rule == "segments" else (lambda k: 1)
        if res.price_type == "scale" and res.scale:
            key = (res.service_id, res.scope_id, row["matched"], res.counter_group)
            scale_of[key] = res.scale
            scale_groups[key].append((row, _quantity(res.quantity_rule, hist)))
            continue
        price = res.price or 0
        row["unit_price"] = price
        row["cost"] = sum(n * round_event(price * qty_per(k), currency) for k, n in hist.items())
    for key, members in scale_groups.items():
        sc = scale_of[key]
        steps = [(None if u is None else int(u), int(p)) for u, p in sc["steps"]]
        qty = sum(q for _, q in members)
        total = scales.total(sc["type"], steps, qty)
        left = total
        for i, (row, q) in enumerate(members):
            share = left if i == len(members) - 1 else (total * q // qty if qty else 0)
            left -= share
            row["cost"] = share
            row["unit_price"] = (share // q) if q else 0
    total = sum(r["cost"] for r in rows if r["cost"] is not None)
    unpriced = sum(r["messages"] for r in rows if r["cost"] is None)
    return rows, total, unpriced


def shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Money fields as decimal text for output."""
    out = []
    for r in rows:
        r = dict(r)
        r["unit_price"] = format_micros(r["unit_price"]) if r["unit_price"] is not None else None
        r["cost"] = format_micros(r["cost"]) if r["cost"] is not None else None
        out.append(r)
    return out


# ---------------------------------------------------------------- a stored campaign


Hist = dict[Key, Counter]


def _tally_plain(session: Session, c: Campaign) -> Hist:
    r = CampaignRecipient.__table__
    _enc, segs = encoding_segments(c.text or "")
    dest = (r.c.country, r.c.mcc, r.c.mnc, r.c.network)
    q = sa.select(*dest, sa.func.count()).where(r.c.campaign_id == c.id).group_by(*dest)
    return {(k0, k1, k2, k3): Counter({segs: n}) for k0, k1, k2, k3, n in session.connection().execute(q)}


@dataclass
class LevelFunds:
    """A reseller level's estimate: what the messages cost it at its own prices, and its funds."""

    level: int
    agreement: str
    currency: str
    cost: int
    available: int | None

    @property
    def fits(self) -> bool:
        return self.available is None or self.cost <= self.available


@dataclass
class Estimate:
    tally: Hist
    encodings: Counter
    rows: list[dict[str, Any]]
    cost: int
    unpriced: int
    available: int | None
    levels: list[LevelFunds] = field(default_factory=list)  # the reseller levels above (RAT-10)

    @property
    def fits(self) -> bool:
        return (self.available is None or self.cost <= self.available) and all(x.fits for x in self.levels)

    def short_level(self) -> LevelFunds | None:
        """The first reseller level whose funds the messages do not fit (the client's do)."""
        if self.available is not None and self.cost > self.available:
            return None
        return next((x for x in self.levels if not x.fits), None)


def price_campaign(
    session: Session, c: Campaign, tally: Hist, encodings: Counter, at: datetime, *, snaps: list | None = None
) -> Estimate:
    ag = session.get(Agreement, c.agreement_id)
    assert ag is not None
    if snaps is None:
        snaps = agreement_snapshots(session, ag, at)
    rows, cost, unpriced = price_tally(snaps, tally, channel=c.channel, currency=c.currency)
    levels = []
    for n, up in enumerate(funds.levels_above(session, ag, at), 1):
        _rows, up_cost, _unpriced = price_tally(
            agreement_snapshots(session, up, at), tally, channel=c.channel, currency=up.currency
        )
        levels.append(LevelFunds(n, up.code, up.currency, up_cost, funds.available(session, up, at)))
    return Estimate(tally, encodings, rows, cost, unpriced, funds.available(session, ag, at), levels)


def estimate(session: Session, c: Campaign, *, at: datetime | None = None) -> Estimate:
    """Count (rendering personalised texts, nothing stored) and price the campaign as it stands."""
    at = at or clock.now()
    if not c.personalised and c.text is not None:
        enc = encoding_segments(c.text)[0]
        tally = _tally_plain(session, c)
        return price_campaign(session, c, tally, Counter({enc: sum(sum(h.values()) for h in tally.values())}), at)
    tally: Hist = defaultdict(Counter)
    encodings: Counter = Counter()
    for page in messages(session, c):
        for _phone, dest, text in page:
            enc, segs = encoding_segments(text)
            tally[dest][segs] += 1
            encodings[enc] += 1
    return price_campaign(session, c, dict(tally), encodings, at)


def unpriced_summary(e: Estimate, *, most: int = 5) -> str | None:
    """ "5 messages have no price: ES Movistar (no_rate) 3, FR (other_currency) 2", or None when all are priced."""
    if not e.unpriced:
        return None
    groups: Counter = Counter()
    for r in e.rows:
        if r["cost"] is None:
            where = " ".join(x for x in (r.get("country"), r.get("network")) if x) or r.get("mccmnc") or "unknown"
            groups[f"{where} ({r['status']})"] += r["messages"]
    parts = [f"{k} {n:,}" for k, n in groups.most_common(most)]
    if len(groups) > most:
        parts.append(f"and {len(groups) - most} more destinations")
    noun = "message has" if e.unpriced == 1 else "messages have"
    return f"{e.unpriced:,} {noun} no price: {', '.join(parts)}"


def _countries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-country sums of the destination rows (cost None when some messages are unpriced)."""
    out: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(
            r["country"], {"country": r["country"], "recipients": 0, "messages": 0, "segments": 0, "cost": 0}
        )
        for k in ("recipients", "messages", "segments"):
            d[k] += r[k]
        d["cost"] = None if d["cost"] is None or r["cost"] is None else d["cost"] + r["cost"]
    return [{**d, "cost": format_micros(d["cost"]) if d["cost"] is not None else None} for d in out.values()]


def estimate_dict(c: Campaign, e: Estimate) -> dict[str, Any]:
    hist: Counter = Counter()
    for h in e.tally.values():
        hist.update(h)
    messages_ = sum(hist.values())
    return {
        "campaign_id": c.id,
        "recipients": {
            "total": c.recipients + c.excluded_stop_list + c.excluded_invalid + c.excluded_duplicate,
            "sendable": c.recipients,
            "excluded": {
                "stop_list": c.excluded_stop_list,
                "invalid": c.excluded_invalid,
                "duplicate": c.excluded_duplicate,
            },
        },
        "messages": messages_,
        "segments": sum(k * n for k, n in hist.items()),
        "segment_histogram": {str(k): hist[k] for k in sorted(hist)},
        "encoding": {GSM7: e.encodings.get(GSM7, 0), UCS2: e.encodings.get(UCS2, 0)},
        "destinations": shown(e.rows),
        "countries": _countries(e.rows),
        "network_note": NETWORK_NOTE,
        "currency": c.currency,
        "estimated_cost": format_micros(e.cost),
        "unpriced_messages": e.unpriced,
        "available": format_micros(e.available) if e.available is not None else None,
        "unlimited_credit": e.available is None,
        "fits": e.fits,
        # The reseller levels above the client (RAT-10): each pays its own price for the same messages.
        "reseller_levels": [
            {
                "level": x.level,
                "agreement": x.agreement,
                "estimated_cost": format_micros(x.cost),
                "available": format_micros(x.available) if x.available is not None else None,
                "fits": x.fits,
            }
            for x in e.levels
        ],
    }
