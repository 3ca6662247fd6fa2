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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from cpaas_cli.campaigns.destinations import mcc_of, network_for
from cpaas_cli.catalog.service import resolve_for_agreement
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
