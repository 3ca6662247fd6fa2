"""Agreement plans for the pure engine, loaded from the database once per run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli.agreements import service as agreements
from cpaas_cli.agreements.reselling import Chains
from cpaas_cli.billing.periods import VersionTerms, period_containing
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.charging.vendor import VendorPlans
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk


class Plans:
    """Per-run cache of agreement plans (snapshots loaded once per scope)."""

    def __init__(self, session: Session):
        self.session = session
        self.plans: dict[int, en.Plan | None] = {}
        self.snaps: dict[int, lk.Snapshot] = {}
        # The vendor plans of connections, cached for as long as these plans are.
        self.vendor = VendorPlans(session)
        # The reseller levels above each client agreement (RAT-10), read on first use.
        self.chains = Chains(session)

    def get(self, agreement_id: int) -> en.Plan | None:
        if agreement_id not in self.plans:
            self.plans[agreement_id] = self._load(agreement_id)
        return self.plans[agreement_id]

    def _load(self, agreement_id: int) -> en.Plan | None:
        s = self.session
        ag = s.get(Agreement, agreement_id)
        if ag is None:
            return None
        packs, payg = [], []
        for e, svc in catalog.enabled(s, ag):
            if svc.archived_at is not None:
                continue  # ENS-10: traffic stops
            if svc.type == "payg":
                kind = en.PAYG
            elif svc.type in ("unit-pack", "monetary-pack"):
                kind = en.PACK
            else:
                continue  # bundles are not rated here yet
            scopes = []
            for sc in catalog.scopes(s, svc):
                if sc.draft or sc.effective_from is None:
                    continue
                if sc.id not in self.snaps:
                    self.snaps[sc.id] = lk.Snapshot.of(
                        tr.load(s, sc.id), service_id=svc.id, service=svc.name, scope_id=sc.id, currency=svc.currency
                    )
                scopes.append((sc.effective_from, sc.effective_till, self.snaps[sc.id]))
            entry = en.Entry(e.id, kind, svc.type, e.effective_from, e.effective_till, tuple(scopes), svc.size)
            (packs if kind == en.PACK else payg).append(entry)
        terms = [VersionTerms.of(v) for v in agreements.versions(s, ag)]
        return en.Plan(ag.id, ag.currency, tuple(packs + payg), _period_of(terms))


def _period_of(terms: list[VersionTerms]):
    found: list[Any] = []

    def period_of(at: datetime) -> datetime | None:
        for p in found:
            if p.start <= at < p.end:
                return p.start
        if not terms:
            return None
        p = period_containing(terms, at)
        if p is None:
            return None
        found.append(p)
        return p.start

    return period_of
