"""Reseller CDRs a client's rerate creates (RAT-10, RR-04): no half-charged message.

A client EDR refused at ingest because of its chain (no reselling agreement in
force at its time, a level with no price, another currency) has no reseller
CDR and no charge at any level. When the operator mends the chain and a client
unit (``loop.py``) turns such an EDR rated, the rerate rates the chain above
the client agreement at the EDR's event time as the ingest does, with the
rater's own level code (``charging.rater.Rater.charge_above``): each level at
its own prices, packs and scales, its counters and pack usage moved, one
reseller CDR and its ledger rows (kind ``edr``, ``scale_adjustment`` for a
back-to-first step; details name the level and the task) per level, each
level's balance moved, in the unit's transaction. They count as reseller CDRs
created (``cdr_created``, also in ``cdr_processed``).

Decided here:

- Which EDRs: those the unit turns rated from another rating state. The rater
  charges every level or none, so an EDR rated before carries its reseller
  CDRs. An EDR that has a reseller CDR already (rated once, rejected by a later
  rerate, rated again) gets none created: the reselling agreements' units
  re-rate the CDRs they have.
- A level that refuses it (no reselling agreement in force, another currency,
  no price, the level's agreement not in force) refuses the EDR, as at ingest:
  it stays (or becomes) rejected with the level named, and the client is not
  charged either. A level whose billing event has not come leaves it unrated,
  as at ingest. Nothing ends half-charged.
- No credit check at any level: a rerate records what is owed (``loop.py``).
- The opposite case: an EDR rated before and rejected now keeps its reseller
  CDRs and their charges. The message was sent and each level bought it at its
  own price; a rerate of the reselling agreement re-prices those CDRs. Only
  the client's side is given back (its ``rerate`` row).
- A created CDR is priced as the ingest prices a late event: on the level's
  stored counters and pack usage. A rerate of the level's unit then re-prices
  its period in event order.

I/O happens in :meth:`Creator.prepare` (per chunk, before the chunk's rating
and before the previous chunk's writes start, which on PostgreSQL run in a
second thread) and :meth:`Creator.finish`; :meth:`Creator.decide`, called from
the rating loop, only computes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.agreements.reselling import Missing
from cpaas_cli.billing import ledger
from cpaas_cli.billing.periods import Period
from cpaas_cli.charging import levels
from cpaas_cli.charging.plans import Plans
from cpaas_cli.charging.rater import AgreementRun, Rater, post_charges
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.rating import engine as en
from cpaas_cli.rerate.rows import R_AT, R_DESC, R_ID, unpacked
from cpaas_cli.rerate.units import STRADDLE_LAG

LEVEL = levels.LEVEL
IN_CHUNK = 5_000
_WAIT = en.Decision(en.PENDING)


class Creator:
    """The reseller CDRs one client unit creates (see the module docstring)."""

    def __init__(self, session: Session, task_id: int, ag: Agreement, p: Period, plans: Plans, *, now: datetime,
                 write: bool):  # fmt: skip
        self.s, self.task_id, self.ag_id, self.write = session, task_id, ag.id, write
        self.plans = plans
        self.rater = Rater(session, plans, now=now)
        self.earliest = p.start - STRADDLE_LAG  # no event of the unit is earlier
        self.runs: dict[int, AgreementRun] = {}
        self.charges: list[tuple] = []
        self.ups: dict[int, tuple[int, ...] | Missing] = {}  # candidate EDR → the chain above it
        self.created = 0
        self._states: dict[Any, str] = {}

    @classmethod
    def of(cls, session: Session, task_id: int, ag: Agreement, p: Period, plans: Plans, *, now: datetime,
           write: bool) -> Creator | None:  # fmt: skip
        """A creator for a unit of ``ag``; None when no reseller sells ``ag`` (nothing to create)."""
        assert ag.id is not None
        if plans.chains.seller_kinds([ag.id]).get(ag.id) != "reseller":
            return None
        return cls(session, task_id, ag, p, plans, now=now, write=write)

    def prepare(self, rows: list[tuple], parse: Callable[[Any], datetime | None]) -> None:
        """Before a chunk is rated: the chain above each EDR not rated before that has no
        reseller CDR, and the runs of those levels (locked first when writing)."""
        states = self._states
        if len(states) > 10_000:
            states.clear()
        cand: list[tuple] = []
        for r in rows:
            st = states.get(r[R_DESC])
            if st is None:
                st = states[r[R_DESC]] = unpacked(r[R_DESC])[0]
            if st != en.RATED:
                cand.append(r)
        self.ups = {}
        if not cand:
            return
        ids = [r[R_ID] for r in cand]
        have: set[int] = set()
        for i in range(0, len(ids), IN_CHUNK):
            q = sa.select(LEVEL.c.edr_id).where(LEVEL.c.edr_id.in_(ids[i : i + IN_CHUNK])).distinct()
            have.update(self.s.execute(q).scalars())
        chains, new = self.plans.chains, set()
        for r in cand:
            if r[R_ID] in have:
                continue
            at = parse(r[R_AT])
            assert at is not None
            up = chains.above(self.ag_id, at)
            if not up:
                continue
            self.ups[r[R_ID]] = up
            if not isinstance(up, Missing):
                new.update(a for a in up if a not in self.runs)
        if new:
            if self.write:
                ledger.lock(self.s, sorted(new))  # after the client's, level by level, as the rater locks
            for a in sorted(new):
                plan = self.plans.get(a)
                since = plan.period_of(self.earliest) if plan else None
                self.runs[a] = self.rater.load_run(a, since, credit=False)

    def decide(self, ev: en.Event, d: en.Decision) -> en.Decision:
        """The EDR's decision once the levels above are rated (``d`` rated at the client):
        ``d`` (every level charged, its CDRs queued), a refusal naming the level, or
        pending (a level waits for its event). Pure: :meth:`prepare` did the reading."""
        up = self.ups.get(ev.key)
        if up is None:
            return d
        got = self.rater.charge_above(ev, d, up, self.runs, self.charges)
        if got is d:
            assert not isinstance(up, Missing)  # a missing link always refuses
            self.created += len(up)
            return d
        return _WAIT if got is None else got

    def finish(self) -> set[int]:
        """Write the created CDRs, their charges and the levels' counters, pack usage and
        balances (no commit); the level agreements charged."""
        if not self.write or not self.runs:
            return set()
        self.rater.write_state(self.runs)
        task = self.task_id
        charges = [(*c[:7], {**c[7], "task": task}, c[8]) for c in self.charges]
        post_charges(self.s, charges)
        return {c[0] for c in charges}
