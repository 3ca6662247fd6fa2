"""Reselling agreements (TEN-06) and the chain of agreements a message is charged on (RAT-10).

A reseller buys what it resells on an agreement with the company above it
(its *purchase* agreement: company = the reseller, seller = its parent).
That agreement is attached to the reseller's legal entity for a period: a
*reselling agreement*. A client agreement whose seller legal entity
(``own_legal_entity_id``) is that legal entity is charged one level up on the
reselling agreement in force at the message's time, and so on up to the
system owner. The periods of one legal entity never overlap, so at any time
there is at most one agreement per level.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.db import dated
from cpaas_cli.errors import Conflict, NotFound, Problem, require
from cpaas_cli.models.agreements import Agreement, ResellingAgreement
from cpaas_cli.models.tenancy import Company, LegalEntity
from cpaas_cli.timeutil import iso

RA = ResellingAgreement.__table__
AG = Agreement.__table__
CO = Company.__table__
LE = LegalEntity.__table__
_EVER = datetime(1, 1, 1, tzinfo=UTC)
MAX_DEPTH = 8  # owner → resellers → client: deeper chains are refused, never looped


def _overlaps(a_from: datetime, a_till: datetime | None, b_from: datetime, b_till: datetime | None) -> bool:
    return (b_till is None or a_from < b_till) and (a_till is None or b_from < a_till)


def add(
    session: Session,
    legal_entity: LegalEntity,
    agreement: Agreement,
    *,
    effective_from: datetime | None = None,
    effective_till: datetime | None = None,
) -> ResellingAgreement:
    """Attach ``agreement`` (the reseller's purchase agreement) to the reseller's
    ``legal_entity`` for a period (default: from now, no end)."""
    start = effective_from or clock.now()
    problems: list[Problem] = []
    company = session.get(Company, legal_entity.company_id)
    assert company is not None
    if company.kind != "reseller":
        problems.append(
            Problem(
                "legal_entity", f"{legal_entity.name!r} belongs to {company.name!r}, a {company.kind}, not a reseller"
            )
        )
    if agreement.company_id != company.id:
        buyer = session.get(Company, agreement.company_id)
        problems.append(
            Problem(
                "agreement",
                f"agreement {agreement.code!r} is with {buyer.name if buyer else agreement.company_id!r}; "
                f"a reselling agreement of {company.name!r} must be one where {company.name!r} buys",
            )
        )
    if agreement.direction != "CLIENT":
        problems.append(Problem("agreement", f"agreement {agreement.code!r} is a {agreement.direction} agreement"))
    if effective_till is not None and effective_till <= start:
        problems.append(Problem("effective_till", "must be later than effective_from"))
    if agreement.effective_from > start or (
        agreement.effective_till is not None and (effective_till is None or effective_till > agreement.effective_till)
    ):
        problems.append(
            Problem(
                "effective_from",
                f"the period must lie within agreement {agreement.code!r}'s own "
                f"({iso(agreement.effective_from)} – {iso(agreement.effective_till) if agreement.effective_till else '∞'})",
            )
        )
    require(problems, "the reselling agreement")
    for sold in client_agreements(session, legal_entity.id, start, effective_till):
        if sold.currency != agreement.currency:
            raise Conflict(
                f"agreement {agreement.code!r} is in {agreement.currency}, but client agreement {sold.code!r} "
                f"sold from legal entity {legal_entity.name!r} is in {sold.currency} "
                "(no currency conversion between reseller levels)"
            )
    for other in session.exec(select(ResellingAgreement).where(ResellingAgreement.legal_entity_id == legal_entity.id)):
        if _overlaps(start, effective_till, other.effective_from, other.effective_till):
            raise Conflict(
                f"legal entity {legal_entity.name!r} has reselling agreement #{other.id} in an overlapping period "
                f"({iso(other.effective_from)} – {iso(other.effective_till) if other.effective_till else '∞'})"
            )
    row = ResellingAgreement(
        legal_entity_id=legal_entity.id, agreement_id=agreement.id, effective_from=start, effective_till=effective_till
    )
    session.add(row)
    session.flush()
    return row


def client_agreements(
    session: Session, legal_entity_id: int, start: datetime, till: datetime | None
) -> list[Agreement]:
    """The agreements sold from ``legal_entity_id`` (their seller legal entity) in force
    at some time of [start, till)."""
    q = select(Agreement).where(Agreement.own_legal_entity_id == legal_entity_id).order_by(Agreement.id)
    return [a for a in session.exec(q) if _overlaps(start, till, a.effective_from, a.effective_till)]


def currency_conflict(
    session: Session, legal_entity_id: int, currency: str | None, start: datetime, till: datetime | None
) -> str | None:
    """Why an agreement in ``currency`` sold from ``legal_entity_id`` in [start, till) cannot be
    charged one level up: a reselling agreement of that legal entity in that period is in another
    currency (no conversion between levels). None when there is no such link."""
    if currency is None:
        return None
    q = (
        select(ResellingAgreement, Agreement)
        .join(Agreement, Agreement.id == ResellingAgreement.agreement_id)
        .where(ResellingAgreement.legal_entity_id == legal_entity_id)
        .order_by(ResellingAgreement.effective_from)
    )
    for link, up in session.exec(q):
        if up.currency != currency and _overlaps(start, till, link.effective_from, link.effective_till):
            le = session.get(LegalEntity, legal_entity_id)
            return (
                f"legal entity {le.name if le else legal_entity_id!r} buys on reselling agreement #{link.id} "
                f"(agreement {up.code!r}) in {up.currency}, not {currency} (no currency conversion between "
                "reseller levels)"
            )
    return None


def end(session: Session, link_id: int, *, at: datetime | None = None) -> tuple[ResellingAgreement, str]:
    """End a reselling agreement now (``at``); one that has not started is deleted."""
    row = session.get(ResellingAgreement, link_id)
    if row is None:
        raise NotFound(f"reselling agreement #{link_id} not found")
    return row, dated.end_now(session, row, f"reselling agreement #{link_id}", at=at)


def rows(session: Session, *, company_id: int | None = None) -> list[dict[str, Any]]:
    """Reselling agreements as plain rows (of one reseller when given)."""
    q = (
        sa.select(
            RA.c.id,
            CO.c.name.label("reseller"),
            LE.c.name.label("legal_entity"),
            AG.c.code.label("agreement"),
            AG.c.currency,
            RA.c.legal_entity_id,
            LE.c.company_id,
            RA.c.agreement_id,
            RA.c.effective_from,
            RA.c.effective_till,
        )
        .select_from(RA.join(LE, LE.c.id == RA.c.legal_entity_id).join(CO, CO.c.id == LE.c.company_id))
        .join(AG, AG.c.id == RA.c.agreement_id)
        .order_by(CO.c.name, LE.c.name, RA.c.effective_from)
    )
    if company_id is not None:
        q = q.where(LE.c.company_id == company_id)
    return [dict(m) for m in session.execute(q).mappings()]


# ------------------------------------------------------------------ chains


@dataclass(frozen=True, slots=True)
class Missing:
    """Why a chain could not be completed at a time: the level and what is missing."""

    level: int
    reason: str  # no_reselling_agreement | currency_mismatch | chain_too_deep
    note: str


class Chains:
    """The upper levels of client agreements at a time, read as a run needs them.

    ``above(agreement_id, at)`` gives the agreement ids of levels 1, 2, …
    (empty when the seller is the system owner), or a :class:`Missing`.
    Agreements are read when first asked for (``seller_kinds`` reads a batch:
    one query for a chunk of the owner's own traffic); the reselling agreements
    and legal-entity names only once a reseller sells. A run kept long (the
    dispatch worker's plans) reads the links again, at most once a second,
    when it meets a missing one.
    """

    def __init__(self, session: Session):
        self.s = session
        self._ag: dict[int, tuple[str, int, str, str]] = {}  # id → (seller kind, seller LE, currency, code)
        self._links: dict[int, list[tuple[datetime, datetime | None, int]]] | None = None
        self._le_names: dict[int, str] = {}
        self._loaded_at = 0.0

    def _fetch(self, ids: Any) -> None:
        """Read the agreements of ``ids`` not read yet, with their sellers' kinds."""
        want = sorted(set(ids).difference(self._ag))
        seller = CO.alias("seller")
        for i in range(0, len(want), 5_000):
            q = sa.select(AG.c.id, AG.c.own_legal_entity_id, AG.c.currency, AG.c.code, seller.c.kind).join(
                seller, seller.c.id == AG.c.seller_company_id
            )
            for r in self.s.execute(q.where(AG.c.id.in_(want[i : i + 5_000]))):
                self._ag[r.id] = (r.kind, r.own_legal_entity_id, r.currency, r.code)

    def _get(self, agreement_id: int) -> tuple[str, int, str, str] | None:
        if agreement_id not in self._ag:
            self._fetch([agreement_id])
        return self._ag.get(agreement_id)

    def _load_links(self) -> None:
        self._loaded_at = time.monotonic()
        links: dict[int, list[tuple[datetime, datetime | None, int]]] = {}
        for le_id, ag_id, start, till in self.s.execute(
            sa.select(RA.c.legal_entity_id, RA.c.agreement_id, RA.c.effective_from, RA.c.effective_till)
        ):
            links.setdefault(le_id, []).append((start, till, ag_id))
        self._links = links
        self._le_names = dict(self.s.execute(sa.select(LE.c.id, LE.c.name)).tuples().all())

    def _stale_links(self) -> bool:
        """Read the links again, at most once a second; whether it did."""
        if time.monotonic() - self._loaded_at < 1.0:
            return False
        self._load_links()
        return True

    def seller_kinds(self, ids: Any) -> dict[int, str | None]:
        """Agreement id → the kind of its seller (owner or reseller), for a batch."""
        self._fetch(ids)
        return {a: (self._ag[a][0] if a in self._ag else None) for a in ids}

    def above(self, agreement_id: int, at: datetime) -> tuple[int, ...] | Missing:
        return self.above_span(agreement_id, at)[0]

    def above_span(
        self, agreement_id: int, at: datetime
    ) -> tuple[tuple[int, ...] | Missing, datetime, datetime | None]:
        """``above`` and the span [from, till) around ``at`` over which the answer
        holds (the reselling agreements in force do not change within it)."""
        cur = self._get(agreement_id)
        if cur is None or cur[0] != "reseller":
            return (), _EVER, None  # sold by the system owner (or no such agreement): no level above
        if self._links is None:
            self._load_links()
        got = self._walk(agreement_id, at)
        if isinstance(got[0], Missing) and self._stale_links():
            got = self._walk(agreement_id, at)
        return got

    def code(self, agreement_id: int) -> str:
        got = self._get(agreement_id)
        return got[3] if got else f"#{agreement_id}"

    def _walk(self, agreement_id: int, at: datetime) -> tuple[tuple[int, ...] | Missing, datetime, datetime | None]:
        links = self._links or {}
        out: list[int] = []
        lo, hi = _EVER, None  # the span the answer holds over: where every link used (or missed) stays
        cur = self._get(agreement_id)
        while cur is not None and cur[0] == "reseller":
            level = len(out) + 1
            if level > MAX_DEPTH:
                return (
                    Missing(level, "chain_too_deep", f"more than {MAX_DEPTH} reseller levels above the client"),
                    at,
                    at,
                )
            kind, le_id, currency, code = cur
            found = None
            for start, till, up in links.get(le_id, ()):
                if start <= at and (till is None or at < till):
                    found = up
                    lo = max(lo, start)
                    hi = till if hi is None else (hi if till is None else min(hi, till))
                    break
            if found is None:
                missing = Missing(
                    level,
                    "no_reselling_agreement",
                    f"level {level}: legal entity {self._le_names.get(le_id, le_id)!r} (the seller of agreement "
                    f"{code!r}) has no reselling agreement in force at {iso(at)}",
                )
                return missing, at, at  # not memoised: a link may start any time
            up_row = self._get(found)
            if up_row is None:  # pragma: no cover - a foreign key keeps it
                return Missing(level, "no_reselling_agreement", f"level {level}: agreement #{found} not found"), at, at
            if up_row[2] != currency:
                return (
                    Missing(
                        level,
                        "currency_mismatch",
                        f"level {level}: agreement {up_row[3]!r} is in {up_row[2]}, agreement {code!r} in {currency} "
                        "(no conversion between levels)",
                    ),
                    at,
                    at,
                )
            out.append(found)
            cur = up_row
        return tuple(out), lo, hi


def agreements_above(session: Session, agreement: Agreement, at: datetime) -> list[Agreement]:
    """The reselling agreements a message on ``agreement`` is also charged on at ``at``
    (level 1 first; none when the system owner sells it). A broken chain is a Conflict
    naming the level: the rater would refuse every such message."""
    seller = session.get(Company, agreement.seller_company_id)
    if seller is None or seller.kind != "reseller":
        return []
    got = Chains(session).above(agreement.id, at)  # type: ignore[arg-type]
    if isinstance(got, Missing):
        raise Conflict(f"the messages cannot be charged: {got.note}")
    out = []
    for ag_id in got:
        row = session.get(Agreement, ag_id)
        assert row is not None
        out.append(row)
    return out
