"""EDR attributes → engine events: the only place that builds an ``engine.Event``.

Every caller (``edr ingest``, the dispatch worker, receipts, refunds, rerate)
builds its events here, so an EDR prices the same whichever path rates it.
The sender type comes from the one rule, ``catalog.vocab.sender_type_of``
(also what `rates lookup --sender` uses). Lookup queries are memoised: events
with equal attributes share one read-only dict (the engine's route memo is
probed by that dict's identity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.models.edr import FINAL_STATUSES
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk

QueryKey = tuple[str, str, str | None, str | None, str | None, str | None]
_QUERIES: dict[tuple, dict[str, Any]] = {}


def memo_map(values: Sequence[Any], fn: Callable[[Any], Any], memo: dict[Any, Any] | None = None) -> list[Any]:
    """``[fn(v) for v in values]`` with ``fn`` called once per distinct value
    (``memo`` keeps the answers for later chunks; a value ``fn`` refuses is not kept)."""
    memo = {} if memo is None else memo
    for v in set(values).difference(memo):
        memo[v] = fn(v)
    return list(map(memo.__getitem__, values))


def query_of(key: QueryKey) -> dict[str, Any]:
    """The lookup query of (channel, direction, mcc, mnc, country, sender type), memoised."""
    q = _QUERIES.get(key)
    if q is None:
        if len(_QUERIES) >= 100_000:
            _QUERIES.clear()
        channel, direction, mcc, mnc, country, kind = key
        q = _QUERIES[key] = lk.query(
            channel=channel,
            direction=direction,
            mccmnc=(mcc + mnc) if mcc and mnc else None,
            mcc=mcc,
            country=country,
            sender_type=kind,
        )
    return q


def query(
    channel: str, direction: str, mcc: str | None, mnc: str | None, country: str | None, sender: str | None
) -> dict[str, Any]:
    """``query_of`` for an EDR's attributes (the sender's type derived by the one rule)."""
    return query_of((channel, direction, mcc, mnc, country, sender_type_of(sender)))


def event_of(row: dict[str, Any]) -> en.Event:
    """The engine event of an EDR row (a dict of EDR columns; ``id`` is the key)."""
    g = row.get
    sender = g("sender")
    return en.Event(
        g("id"),
        row["event_at"],
        query(g("channel") or "sms", g("direction") or "mt", g("mcc"), g("mnc"), g("country"), sender),
        g("segments") or 1,
        sender,
        g("submitted_at"),
        g("delivered_at") or g("seen_at"),
        g("status") in FINAL_STATUSES,
    )


def events_of(ids: Sequence[int], cols: dict[str, list[Any]], memo: dict[Any, Any]) -> list[en.Event]:
    """``event_of`` for EDRs given column by column (``cols[name][i]``), with
    ``memo`` keeping the sender types of a run."""
    senders = cols["sender"]
    kinds = memo_map(senders, sender_type_of, memo)
    keys = list(zip(cols["channel"], cols["direction"], cols["mcc"], cols["mnc"], cols["country"], kinds, strict=True))
    queries = memo_map(keys, query_of)
    delivered, seen = cols["delivered_at"], cols["seen_at"]
    if seen.count(None) != len(seen):
        delivered = [d or s for d, s in zip(delivered, seen, strict=True)]
    final = list(map(FINAL_STATUSES.__contains__, cols["status"]))
    return list(
        map(en.Event, ids, cols["event_at"], queries, cols["segments"], senders, cols["submitted_at"], delivered, final)
    )
