"""Reseller provisioning (TEN-12, SID-15, PAY-08): the tenant's steps for a new
reseller, from one YAML document, in the caller's transaction.

The steps, numbered as the BackOffice guide numbers them:

1. the company, of type reseller, under the system owner or a reseller that may
   create resellers (``parent``), sold to by the parent's legal entity
   ``own_legal_entity`` (default the parent's default one);
2. its own legal entity (``legal_entity``: a registration number is required,
   as for every seller);
3. its purchase agreement (``agreement``): company = the reseller, seller = the
   parent, with the currency and the terms of its first version;
4. the reselling agreement: that agreement attached to the reseller's legal
   entity (``reselling``: default from the agreement's start, no end);
5. the parent's services enabled on the purchase agreement (``services``; a pack
   needs ``billing: charge`` or ``free``);
6. a BackOffice user of the reseller with the Admin role (every permission),
   invited: disabled until it is activated with the one-time token returned;
7. and 8. the portal: the legal entity's ``portal`` field (no portal objects exist);
9. the opening payment on the purchase agreement (``payment``, confirmed unless
   told otherwise), written before the services so a charged pack can be paid;
10. sender IDs delegated to the reseller (``sender_ids``, see ``campaigns/senders.delegate``).

:func:`read` parses the file, ``provision_check.check`` names every bad field
before anything is written, :func:`write` does the steps. Nothing commits
here: the command owns the transaction (and rolls it back for ``--dry-run``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from cpaas_cli.agreements import reselling
from cpaas_cli.agreements import service as agreements
from cpaas_cli.errors import CpaasError, InvalidInput, NotFound, Problem
from cpaas_cli.imports.textfile import load_yaml, read_utf8
from cpaas_cli.money import format_micros
from cpaas_cli.tenancy import provision_check
from cpaas_cli.tenancy import service as tenancy
from cpaas_cli.timeutil import iso

MAX_BYTES = 1_000_000  # a reseller document is a page of YAML


@dataclass
class Created:
    """One object the provisioning made (or would make)."""

    step: int
    object: str
    id: int | None
    name: str
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "object": self.object, "id": self.id, "name": self.name, "detail": self.detail}


@dataclass
class Result:
    created: list[Created]
    company_id: int
    agreement_id: int
    activation_token: str | None


def read(path: str | Path) -> Any:
    """The YAML document of ``path``; InvalidInput naming the file when it cannot be read or parsed."""
    import yaml

    p = Path(path)
    if p.is_file() and p.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"--from-file: {p.name} is larger than {MAX_BYTES:,} bytes")
    text = read_utf8(p, "--from-file")
    try:
        return load_yaml(text, p.name)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{p.name}: cannot parse: {exc}") from exc


@contextmanager
def _at(path: str) -> Iterator[None]:
    """A step's InvalidInput (or a name not found) with its fields named by their path in the document."""
    try:
        yield
    except InvalidInput as exc:
        problems = [Problem(f"{path}.{p.field}" if p.field else path, p.message, p.row) for p in exc.problems]
        raise InvalidInput.from_problems(problems or [Problem(path, exc.message)], "the reseller document") from exc
    except NotFound as exc:
        raise InvalidInput.from_problems([Problem(path, exc.message)], "the reseller document") from exc
    except CpaasError as exc:
        exc.message = f"{path}: {exc.message}"
        raise


def create(session: Session, name: str, doc: Any) -> Result:
    """Check the document (every bad field named, nothing written), then write every step."""
    plan = provision_check.check(session, name, doc)
    return write(session, plan)


def write(session: Session, plan: provision_check.Plan) -> Result:
    from cpaas_cli.billing import payments
    from cpaas_cli.campaigns import senders
    from cpaas_cli.catalog import service as catalog
    from cpaas_cli.identity import users

    out: list[Created] = []
    with _at("name"):
        company = tenancy.create_company(
            session,
            name=plan.name,
            kind="reseller",
            parent=plan.parent.id,
            own_legal_entity=plan.own_legal_entity.id,
            description=plan.description,
            creator_of_resellers=plan.creator_of_resellers,
        )
    kind = "reseller, creator of resellers" if company.creator_of_resellers else "reseller"
    out.append(Created(1, "company", company.id, company.name, f"{kind} under {plan.parent.name}"))
    with _at("legal_entity"):
        le = tenancy.insert_legal_entity(session, company, plan.legal_entity)
    out.append(Created(2, "legal_entity", le.id, le.name, f"{le.legal_name}, {le.country}"))
    with _at("agreement"):
        ag, version = agreements.create(
            session,
            company_ref=company.id,  # type: ignore[arg-type]
            code=plan.code,
            currency=plan.currency,
            legal_entity_ref=le.id,
            effective_from=plan.effective_from,
            effective_from_tz=plan.tz,
            description=plan.agreement_description,
            terms=plan.terms,
        )
    limit = format_micros(version.credit_limit) if version.credit_limit is not None else "unlimited"
    out.append(
        Created(
            3,
            "agreement",
            ag.id,
            ag.code,
            f"{ag.currency}, seller {plan.parent.name}, credit limit {limit}, from {iso(ag.effective_from)}",
        )
    )
    with _at("reselling"):
        link = reselling.add(session, le, ag, effective_from=plan.link_from, effective_till=plan.link_till)
    till = iso(link.effective_till) if link.effective_till else "no end"
    out.append(
        Created(4, "reselling_agreement", link.id, f"{le.name} / {ag.code}", f"{iso(link.effective_from)} - {till}")
    )
    if plan.legal_entity.portal:
        out.append(Created(8, "portal", le.id, plan.legal_entity.portal, f"assigned to legal entity {le.name}"))
    if plan.payment is not None:
        pay = plan.payment
        with _at("payment"):
            row = payments.add(
                session,
                agreement_ref=f"#{ag.id}",
                reference=pay["reference"],
                amount=pay["amount"],
                paid_at=pay["paid_at"],
                confirmed=pay["confirmed"],
                confirm_before=pay["confirm_before"],
                description=pay["description"],
            )
        state = "confirmed" if row.confirmed else f"unconfirmed until {iso(row.confirm_before)}"
        out.append(Created(9, "payment", row.id, row.reference, f"{format_micros(row.amount)} {row.currency}, {state}"))
    for pick in plan.services:
        with _at(pick.path):
            entry = catalog.enable(
                session,
                service_ref=f"#{pick.service.id}",
                agreement_ref=f"#{ag.id}",
                effective_from=plan.effective_from,
                hidden=pick.hidden,
                charge=pick.charge,
            )
        billing = "" if pick.charge is None else (", charge" if pick.charge else ", free")
        out.append(Created(5, "enabled_service", entry.id, pick.service.name, f"{pick.service.type}{billing}"))
    with _at("admin"):
        user, token, _emailed = users.invite(
            session,
            company=company.id,  # type: ignore[arg-type]
            data=plan.admin,
            department_name=None,
            roles=[provision_check.ADMIN_ROLE],
        )
    out.append(
        Created(
            6, "user", user.id, user.login, f"BackOffice, role {provision_check.ADMIN_ROLE}, disabled until activated"
        )
    )
    for i, pick in enumerate(plan.senders):
        with _at(f"sender_ids[{i}]"):
            sid = senders.delegate(
                session,
                reseller=company,
                agreement=ag,
                sender=pick.sender,
                channel=pick.channel,
                kind=pick.kind,
                name=pick.name,
                active=pick.active,
                description=pick.description,
            )
        out.append(Created(10, "sender_id", sid.id, sid.sender, f"{sid.channel} {sid.kind}, {sid.status}, delegated"))
    out.sort(key=lambda c: c.step)
    return Result(out, company.id, ag.id, token)  # type: ignore[arg-type]
