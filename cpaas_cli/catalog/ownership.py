"""Who owns (sells) a service, reseller plans and who sees a service (TEN-11, TEN-13, RIM-14).

A service belongs to the system owner (``owner_company_id`` None) or to a
reseller. Only the service's owner enables it on an agreement: the
agreement's seller must be the owner, so a reseller sells its own plans to
its clients and buys the owner's (or its parent reseller's) on its purchase
agreement, whose seller is that parent. A reseller plan is a service that
resellers build their own plans from; it is seen only by its owner and the
resellers assigned to it, and enabled only on an assigned reseller's
agreement.

Services take a Session first and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from cpaas_cli.agreements.reselling import currency_conflict
from cpaas_cli.errors import Conflict, Denied, InvalidInput, NotFound
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.catalog import EnabledService, Service, ServiceReseller
from cpaas_cli.models.tenancy import Company
from cpaas_cli.tenancy import service as tenancy

if TYPE_CHECKING:
    from cpaas_cli.identity.access import Principal


def system_owner(session: Session) -> Company:
    row = session.exec(select(Company).where(Company.kind == "owner").order_by(col(Company.id))).first()
    if row is None:  # pragma: no cover - the first migration creates it
        raise NotFound("the system owner company is missing (cpaas db upgrade)")
    return row


def owner_id(session: Session, svc: Service) -> int:
    """The id of the company that owns ``svc`` (None in the row = the system owner)."""
    return svc.owner_company_id if svc.owner_company_id is not None else system_owner(session).id  # type: ignore[return-value]


def owner_name(session: Session, svc: Service) -> str:
    row = session.get(Company, owner_id(session, svc))
    return row.name if row else str(svc.owner_company_id)


def resolve_owner(session: Session, ref: str | int | None) -> int | None:
    """The value of ``owner_company_id`` for ``--owner REF``: None for the system
    owner (or no REF), the reseller's id; any other company is refused."""
    if ref is None:
        return None
    company = tenancy.company(session, ref)
    if company.kind == "owner":
        return None
    if company.kind != "reseller":
        raise InvalidInput(
            f"owner: {company.name!r} is a {company.kind}; a service belongs to the system owner or a reseller"
        )
    return company.id


# ------------------------------------------------------------ enabling rules


def check_enable(
    session: Session, svc: Service, ag: Agreement, effective_from: datetime, effective_till: datetime | None
) -> None:
    """Conflict unless ``svc`` may be enabled on ``ag`` in [effective_from, effective_till):
    the agreement's seller owns the service; a reseller plan goes only to an assigned
    reseller; a reseller's service only where the seller legal entity buys in the
    agreement's currency."""
    seller = session.get(Company, ag.seller_company_id)
    owner = owner_id(session, svc)
    seller_name = seller.name if seller else f"#{ag.seller_company_id}"
    if owner != ag.seller_company_id:
        raise Conflict(
            f"service {svc.name!r} belongs to {owner_name(session, svc)!r}, but agreement {ag.code!r} is sold by "
            f"{seller_name!r}: only the service's owner enables it on the agreements it sells"
        )
    if svc.reseller_plan and not is_assigned(session, svc, ag.company_id):
        buyer = session.get(Company, ag.company_id)
        raise Conflict(
            f"service {svc.name!r} is a reseller plan not assigned to {buyer.name if buyer else ag.company_id!r} "
            f"(cpaas service resellers assign {svc.name!r} RESELLER)"
        )
    if svc.owner_company_id is not None:
        clash = currency_conflict(session, ag.own_legal_entity_id, ag.currency, effective_from, effective_till)
        if clash:
            raise Conflict(f"service {svc.name!r} on agreement {ag.code!r} in {ag.currency}: {clash}")


# ------------------------------------------------------------ reseller plans


def is_assigned(session: Session, svc: Service, company_id: int) -> bool:
    q = select(ServiceReseller.id).where(ServiceReseller.service_id == svc.id, ServiceReseller.company_id == company_id)
    return session.exec(q).first() is not None


def assign(session: Session, svc: Service, reseller_ref: str | int) -> ServiceReseller:
    """Assign the reseller plan ``svc`` to a reseller below its owner."""
    company = tenancy.company(session, reseller_ref)
    if not svc.reseller_plan:
        raise InvalidInput(
            f"service: {svc.name!r} is not a reseller plan (create it with --reseller-plan); only reseller plans "
            "are assigned to resellers"
        )
    if company.kind != "reseller":
        raise InvalidInput(f"reseller: {company.name!r} is a {company.kind}, not a reseller")
    if company.parent_id != owner_id(session, svc):
        raise InvalidInput(
            f"reseller: {company.name!r} does not buy from {owner_name(session, svc)!r}, the owner of "
            f"{svc.name!r} (a reseller plan goes to the resellers directly below its owner)"
        )
    if is_assigned(session, svc, company.id):  # type: ignore[arg-type]
        raise Conflict(f"reseller plan {svc.name!r} is assigned to {company.name!r} already")
    row = ServiceReseller(service_id=svc.id, company_id=company.id)  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


def unassign(session: Session, svc: Service, reseller_ref: str | int) -> ServiceReseller:
    company = tenancy.company(session, reseller_ref)
    row = session.exec(
        select(ServiceReseller).where(ServiceReseller.service_id == svc.id, ServiceReseller.company_id == company.id)
    ).first()
    if row is None:
        raise NotFound(f"reseller plan {svc.name!r} is not assigned to {company.name!r}")
    session.delete(row)
    session.flush()
    return row


def assignments(session: Session, *, svc: Service | None = None) -> list[dict[str, Any]]:
    q = (
        select(ServiceReseller, Service, Company)
        .join(Service, col(Service.id) == col(ServiceReseller.service_id))
        .join(Company, col(Company.id) == col(ServiceReseller.company_id))
        .order_by(col(Service.name), col(Company.name))
    )
    if svc is not None:
        q = q.where(ServiceReseller.service_id == svc.id)
    return [
        {
            "id": link.id,
            "service_id": plan.id,
            "service": plan.name,
            "owner": owner_name(session, plan),
            "reseller_id": company.id,
            "reseller": company.name,
        }
        for link, plan, company in session.exec(q)
    ]


# ---------------------------------------------------------------- visibility


def seen_by_company(session: Session, company: Company) -> frozenset[int] | None:
    """The ids of the services ``company`` sees; None = every service (the system owner).

    A reseller sees the services it owns, the reseller plans assigned to it and the
    services enabled on its own (purchase) agreements; a client the services
    enabled on its agreements. Never another reseller's own services."""
    if company.kind == "owner":
        return None
    out: set[int] = set()
    if company.kind == "reseller":
        out.update(session.exec(select(Service.id).where(Service.owner_company_id == company.id)))  # type: ignore[arg-type]
        out.update(session.exec(select(ServiceReseller.service_id).where(ServiceReseller.company_id == company.id)))
    out.update(
        session.exec(
            select(EnabledService.service_id)
            .join(Agreement, col(Agreement.id) == col(EnabledService.agreement_id))
            .where(Agreement.company_id == company.id)
        )
    )
    return frozenset(out)


def seen_by(session: Session, principal: Principal | None) -> frozenset[int] | None:
    """The services a user sees (None: all, the owner's users; no principal = the operator)."""
    if principal is None:
        return None
    company = session.get(Company, principal.company_id)
    assert company is not None
    return seen_by_company(session, company)


def may_import(session: Session, principal: Principal | None, svc: Service) -> None:
    """RIM-14: a reseller's user uploads prices only into services its company owns;
    the owner's users into the owner's services. Denied (exit 8) otherwise."""
    if principal is None:
        return
    if owner_id(session, svc) != principal.company_id:
        raise Denied(
            f"user {principal.login!r} may not import rates into {svc.name!r}: it belongs to "
            f"{owner_name(session, svc)!r}"
        )


def may_export(session: Session, principal: Principal | None, ag: Agreement) -> None:
    """A user exports the prices of an agreement of a company it sees: a reseller
    its purchase prices (its own agreement) and its clients' prices. A company it
    does not see is NotFound, as the API answers an object out of scope."""
    if principal is not None and not principal.sees(ag.company_id):
        raise NotFound(f"agreement {ag.code!r} not found")
