"""Vendor cost of EDRs: each connection's vendor plan loaded once per run, priced
by the pure ``rating/vendor.py`` with the same lookup query as the client's charge.

Called where an EDR's charge is computed: the dispatch claim
(``dispatch/claim.py``), `edr ingest` (``edr/ingest.py``), `edr rate`
(``charging/stored.py``); and by `edr cost` (:func:`recost`) after a vendor
price change. `rerate` re-prices the client side only: a vendor cost does not
depend on the client's prices, so it is left as it is (`edr cost` recomputes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.charging.events import event_of
from cpaas_cli.db import bulk
from cpaas_cli.models.catalog import Service
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.edr import FINAL_STATUSES, Edr
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk
from cpaas_cli.rating import vendor as vd

EDR = Edr.__table__
COLUMNS = ("vendor_cost", "vendor_currency", "vendor_service_id")
# A status that says the vendor had the message (even without a submitted_at in a file).
_REACHED = frozenset(("submitted", "delivered", "undelivered", "seen"))


class VendorPlans:
    """Per-run cache: connection id → its vendor plan (None: no plan), snapshots loaded once."""

    def __init__(self, session: Session):
        self.session = session
        self.plans: dict[int, vd.VendorPlan | None] = {}

    def get(self, connection_id: int | None) -> vd.VendorPlan | None:
        if connection_id is None:
            return None
        if connection_id not in self.plans:
            self.plans[connection_id] = self._load(connection_id)
        return self.plans[connection_id]

    def _load(self, connection_id: int) -> vd.VendorPlan | None:
        s = self.session
        conn = s.get(VendorConnection, connection_id)
        if conn is None or conn.vendor_plan_id is None:
            return None
        svc = s.get(Service, conn.vendor_plan_id)
        if svc is None or svc.archived_at is not None:
            return None
        scopes = []
        for sc in catalog.scopes(s, svc):
            if sc.draft or sc.effective_from is None:
                continue
            snap = lk.Snapshot.of(
                tr.load(s, sc.id), service_id=svc.id, service=svc.name, scope_id=sc.id, currency=svc.currency
            )
            scopes.append((sc.effective_from, sc.effective_till, snap))
        return vd.VendorPlan(svc.id, svc.currency, tuple(scopes))


def costs(
    plans: VendorPlans, connection_ids: Sequence[int | None], events: Sequence[en.Event], statuses: Sequence[str]
) -> dict[str, list[Any]]:
    """``COLUMNS`` → one list each: the vendor cost of ``events[i]`` sent through
    ``connection_ids[i]`` (``statuses[i]``: the EDR's status). A chunk without
    any connection costs one pass over its ids."""
    m = len(events)
    if not any(connection_ids):
        return {c: [None] * m for c in COLUMNS}
    one = set(connection_ids)
    if len(one) == 1:  # one connection (dispatch always; a file of one vendor): priced a chunk at a time
        plan = plans.get(one.pop())
        if plan is None:
            return {c: [None] * m for c in COLUMNS}
        ats = [ev.at for ev in events]
        i = vd.one_scope(plan, min(ats), max(ats))
        if i is not None:
            REACHED, FINAL = _REACHED, FINAL_STATUSES
            sent = [
                ev.submitted_at is not None or st in REACHED or st not in FINAL
                for ev, st in zip(events, statuses, strict=True)
            ]
            amounts = vd.amounts(plan, i, [ev.query for ev in events], [ev.segments for ev in events], sent)
            cur, svc = plan.currency, plan.service_id
            return {
                "vendor_cost": amounts,
                "vendor_currency": [None if a is None else cur for a in amounts],
                "vendor_service_id": [None if a is None else svc for a in amounts],
            }
    got = plans.get
    cost, REACHED, FINAL = vd.cost, _REACHED, FINAL_STATUSES
    out = []
    for cid, ev, st in zip(connection_ids, events, statuses, strict=True):
        plan = got(cid) if cid else None
        if plan is None:
            out.append(vd.UNKNOWN)
            continue
        sent = ev.submitted_at is not None or st in REACHED or st not in FINAL
        out.append(cost(plan, ev.at, ev.query, ev.segments, sent))
    return dict(zip(COLUMNS, (list(c) for c in zip(*out, strict=True)), strict=True))


def row_costs(plans: VendorPlans, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """``costs`` for EDR column dicts (``connection_id``, the lookup attributes)."""
    return costs(
        plans, [r.get("connection_id") for r in rows], [event_of(r) for r in rows], [r["status"] for r in rows]
    )


RECOST_CHUNK = 20_000


def recost(
    session: Session,
    *,
    since: datetime,
    till: datetime,
    connection_id: int | None = None,
    chunk: int = RECOST_CHUNK,
) -> dict[str, int]:
    """`edr cost`: compute the vendor cost again for the EDRs of [since, till) that
    went through a connection (or through ``connection_id``), with the vendor plans
    as they are now. Commits per chunk (restartable: a chunk is applied whole)."""
    out = {"edrs": 0, "changed": 0, "known": 0, "unknown": 0}
    vendor = VendorPlans(session)
    where = [EDR.c.event_at >= since, EDR.c.event_at < till, EDR.c.connection_id.isnot(None)]
    if connection_id is not None:
        where.append(EDR.c.connection_id == connection_id)
    last = 0
    cols = [EDR.c[c] for c in ("id", "event_at", "channel", "direction", "mcc", "mnc", "country", "sender",
                                "segments", "status", "submitted_at", "delivered_at", "seen_at", "connection_id",
                                *COLUMNS)]  # fmt: skip
    while True:
        rows = [
            dict(m)
            for m in session.execute(
                sa.select(*cols).where(*where, EDR.c.id > last).order_by(EDR.c.id).limit(chunk)
            ).mappings()
        ]
        if not rows:
            break
        last = rows[-1]["id"]
        new = row_costs(vendor, rows)
        changed = [
            i
            for i, r in enumerate(rows)
            if (r["vendor_cost"], r["vendor_currency"], r["vendor_service_id"])
            != (new["vendor_cost"][i], new["vendor_currency"][i], new["vendor_service_id"][i])
        ]
        if changed:
            bulk.writer(session).update_by_id(
                EDR, [rows[i]["id"] for i in changed], {c: [new[c][i] for i in changed] for c in COLUMNS}
            )
        out["edrs"] += len(rows)
        out["changed"] += len(changed)
        known = sum(1 for v in new["vendor_cost"] if v is not None)
        out["known"] += known
        out["unknown"] += len(rows) - known
        session.commit()
    return out
