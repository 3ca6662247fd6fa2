"""Services (rate plans), scopes, trees, enabled services and agreement lookups.

Services take a Session first and never commit (the command owns the transaction).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.catalog import ownership, tree_guard
from cpaas_cli.catalog import tree as tr
from cpaas_cli.db import dated
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, UsageError, require
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.catalog import SERVICE_TYPES, EnabledService, RateNode, Service, ServiceScope
from cpaas_cli.money import MoneyError, check_currency, format_micros, to_micros
from cpaas_cli.rating import lookup as lk
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import iso

SIZED_TYPES = ("unit-pack", "monetary-pack", "bundle-pack")
# Where a pay-as-you-go tree prices a pack: service_purchase/<resource>/<pack name>.
# A monetary pack priced under unit_pack (before monetary_pack was read) is still found.
PACK_PRICE_RESOURCES = {
    "unit-pack": ("unit_pack",),
    "monetary-pack": ("monetary_pack", "unit_pack"),
    "bundle-pack": ("bundle_pack",),
}


# ----------------------------------------------------------------- services


def get(session: Session, ref: str | int, *, seen: frozenset[int] | None = None) -> Service:
    """``seen``: the ids a user sees (``ownership.seen_by``); another service is not found."""
    row = by_ref(session, Service, ref, what="service")
    if seen is not None and row.id not in seen:
        raise NotFound(f"service {str(ref)!r} not found")
    return row


def create(
    session: Session,
    *,
    name: str,
    type: str,
    currency: str | None = None,
    size: str | None = None,
    description: str | None = None,
    owner_company_id: int | None = None,
    reseller_plan: bool = False,
) -> Service:
    """``owner_company_id``: a reseller's id, None = the system owner (see ``ownership``)."""
    problems: list[Problem] = []
    name = (name or "").strip()
    if not name:
        problems.append(Problem("name", "must not be empty"))
    if type not in SERVICE_TYPES:
        problems.append(Problem("type", f"must be one of {', '.join(SERVICE_TYPES)}"))
    cur = None
    if type == "unit-pack":
        if currency:
            problems.append(Problem("currency", "a unit pack has no currency"))
    else:
        try:
            cur = check_currency(currency or "")
        except MoneyError as exc:
            problems.append(Problem("currency", str(exc)))
    size_value = None
    if type in SIZED_TYPES:
        if size is None or str(size).strip() == "":
            problems.append(Problem("size", f"a {type} needs a size"))
        elif type == "monetary-pack":
            try:
                size_value = to_micros(size)
                if size_value <= 0:
                    problems.append(Problem("size", "must be more than zero"))
            except MoneyError as exc:
                problems.append(Problem("size", str(exc)))
        elif not str(size).strip().isdigit() or int(size) <= 0:
            problems.append(Problem("size", f"a {type} size is a whole number of units above zero"))
        else:
            size_value = int(size)
    elif size is not None:
        problems.append(Problem("size", f"a {type} service has no size"))
    require(problems, "the service")
    if session.exec(select(Service).where(Service.name == name)).first():
        raise Conflict(f"a service named {name!r} exists already")
    row = Service(name=name, type=type, currency=cur, size=size_value, description=description)
    row.owner_company_id, row.reseller_plan = owner_company_id, reseller_plan
    session.add(row)
    session.flush()
    return row


def list_services(
    session: Session, *, type: str | None = None, archived: bool = False, seen: frozenset[int] | None = None
) -> list[Service]:
    q = select(Service).order_by(col(Service.id))
    if seen is not None:
        q = q.where(col(Service.id).in_(seen))
    if type:
        q = q.where(Service.type == type)
    if not archived:
        q = q.where(col(Service.archived_at).is_(None))
    return list(session.exec(q))


def size_text(s: Service) -> str | None:
    if s.size is None:
        return None
    return format_micros(s.size) if s.type == "monetary-pack" else str(s.size)


def service_dict(session: Session, s: Service, *, with_scopes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id,
        "name": s.name,
        "type": s.type,
        "size": size_text(s),
        "currency": s.currency,
        "description": s.description,
        "archived_at": iso(s.archived_at),
        "channels": sorted(channels(session, s)),
        "owner": ownership.owner_name(session, s),
        "reseller_plan": s.reseller_plan,
    }
    if with_scopes:
        cur = current_scope(session, s)
        out["current_scope"] = cur.id if cur else None
        out["scopes"] = [scope_dict(x, current=cur) for x in scopes(session, s)]
    return out


def channels(session: Session, s: Service) -> set[str]:
    """The service domains its trees cover (over every scope)."""
    q = (
        select(RateNode.value)
        .join(ServiceScope, col(ServiceScope.id) == col(RateNode.scope_id))
        .where(ServiceScope.service_id == s.id, col(RateNode.parent_id).is_(None))
    )
    return set(session.exec(q))


def archive(session: Session, s: Service, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """Archive a service; returns the enabled entries (agreements) that lose it."""
    if s.archived_at is not None:
        raise Conflict(f"service {s.name!r} is archived already")
    now = at or clock.now()
    s.archived_at = now
    session.add(s)
    lost = []
    for e in session.exec(select(EnabledService).where(EnabledService.service_id == s.id)):
        if e.effective_till is None or e.effective_till > now:
            ag = session.get(Agreement, e.agreement_id)
            lost.append({"enabled_id": e.id, "agreement": ag.code if ag else None})
    return lost


def clone(session: Session, s: Service, *, name: str) -> Service:
    row = create(
        session,
        name=name,
        type=s.type,
        currency=s.currency,
        size=size_text(s),
        description=s.description,
        owner_company_id=s.owner_company_id,
        reseller_plan=s.reseller_plan,
    )
    for sc in scopes(session, s):
        new = ServiceScope(
            service_id=row.id,
            name=sc.name,
            draft=sc.draft,
            effective_from=sc.effective_from,
            effective_till=sc.effective_till,
        )
        session.add(new)
        session.flush()
        tr.save(session, new.id, tr.load(session, sc.id))
    return row


# ------------------------------------------------------------------- scopes


def scopes(session: Session, s: Service) -> list[ServiceScope]:
    return list(
        session.exec(select(ServiceScope).where(ServiceScope.service_id == s.id).order_by(col(ServiceScope.id)))
    )


def _covers(sc: ServiceScope, at: datetime) -> bool:
    if sc.draft or sc.effective_from is None:
        return False
    return sc.effective_from <= at and (sc.effective_till is None or at < sc.effective_till)


def current_scope(session: Session, s: Service, at: datetime | None = None) -> ServiceScope | None:
    """The one current scope: not draft, covering ``at``; when scopes overlap the
    earliest created stays current (SRV-04)."""
    at = at or clock.now()
    return next((sc for sc in scopes(session, s) if _covers(sc, at)), None)


def scope_state(sc: ServiceScope, current: ServiceScope | None, at: datetime | None = None) -> str:
    at = at or clock.now()
    if sc.draft or sc.effective_from is None:
        return "draft"
    if current is not None and sc.id == current.id:
        return "current"
    if sc.effective_till is not None and sc.effective_till <= at:
        return "ended"
    if sc.effective_from > at:
        return "future"
    return "overlapped"


def scope_dict(sc: ServiceScope, *, current: ServiceScope | None = None) -> dict[str, Any]:
    return {
        "id": sc.id,
        "service_id": sc.service_id,
        "name": sc.name,
        "draft": sc.draft,
        "effective_from": iso(sc.effective_from),
        "effective_till": iso(sc.effective_till),
        "state": scope_state(sc, current),
    }


def scope_get(session: Session, s: Service, scope_id: int) -> ServiceScope:
    sc = session.get(ServiceScope, scope_id)
    if sc is None or sc.service_id != s.id:
        raise NotFound(f"service {s.name!r} has no scope #{scope_id}")
    return sc


def pick_scope(session: Session, s: Service, scope_id: int | None) -> ServiceScope:
    """The scope given, else the current one, else the only one."""
    if scope_id is not None:
        return scope_get(session, s, scope_id)
    cur = current_scope(session, s)
    if cur is not None:
        return cur
    all_ = scopes(session, s)
    if len(all_) == 1:
        return all_[0]
    if not all_:
        raise NotFound(f"service {s.name!r} has no scope yet (cpaas service scope add)")
    raise InvalidInput(
        f"service {s.name!r} has no current scope; give --scope (ids: {', '.join(str(x.id) for x in all_)})"
    )


def _check_period(start: datetime | None, till: datetime | None, draft: bool, problems: list[Problem]) -> None:
    if not draft and start is None:
        problems.append(Problem("effective_from", "required unless the scope is a draft"))
    if start is not None and till is not None and till <= start:
        problems.append(Problem("effective_till", "must be later than effective_from"))


def scope_add(
    session: Session,
    s: Service,
    *,
    name: str | None = None,
    effective_from: datetime | None = None,
    effective_till: datetime | None = None,
    draft: bool = False,
    copy_from: str | None = None,
) -> ServiceScope:
    """Add a scope; ``copy_from`` is ``SERVICE`` (its current scope) or ``SERVICE:SCOPE_ID``
    or ``#SCOPE_ID`` of this service."""
    problems: list[Problem] = []
    _check_period(effective_from, effective_till, draft, problems)
    require(problems, "the scope")
    source: ServiceScope | None = None
    if copy_from:
        text = copy_from.strip()
        if text.startswith("#") and text[1:].isdigit():
            source = scope_get(session, s, int(text[1:]))
        else:
            ref, _, sid = text.partition(":")
            other = get(session, ref)
            source = scope_get(session, other, int(sid)) if sid else pick_scope(session, other, None)
    sc = ServiceScope(
        service_id=s.id,
        name=name,
        draft=draft,
        effective_from=effective_from,
        effective_till=effective_till,
    )
    session.add(sc)
    session.flush()
    if source is not None:
        tr.save(session, sc.id, tr.load(session, source.id))
    return sc


def scope_update(
    session: Session,
    sc: ServiceScope,
    *,
    name: str | None = None,
    effective_from: datetime | None = None,
    effective_till: datetime | None = None,
    clear_till: bool = False,
    draft: bool | None = None,
) -> ServiceScope:
    start = effective_from or sc.effective_from
    till = None if clear_till else (effective_till or sc.effective_till)
    is_draft = sc.draft if draft is None else draft
    problems: list[Problem] = []
    _check_period(start, till, is_draft, problems)
    require(problems, "the scope")
    if name is not None:
        sc.name = name
    sc.effective_from, sc.effective_till, sc.draft = start, till, is_draft
    session.add(sc)
    session.flush()
    return sc


# --------------------------------------------------------------------- trees


def snapshot(session: Session, s: Service, sc: ServiceScope) -> lk.Snapshot:
    return lk.Snapshot.of(tr.load(session, sc.id), service_id=s.id, service=s.name, scope_id=sc.id, currency=s.currency)


def tree_apply(
    session: Session, s: Service, sc: ServiceScope, doc: Any, *, dry_run: bool = False, allow_empty: bool = False
) -> dict[str, Any]:
    """Make the scope's tree equal to ``doc``. A document that is empty or looks
    cut short (see ``tree_guard``) and would remove nodes is refused unless
    ``allow_empty``; a dry run shows its changes with the reason in ``refused``."""
    empty = tree_guard.looks_empty(doc)
    new = tr.parse_document(tree_guard.as_document(doc))
    old = tr.load(session, sc.id)
    removed = sum(1 for c in tr.diff(old, new) if c["op"] == "remove") if empty else 0
    if removed and not allow_empty and not dry_run:
        raise InvalidInput(
            f"{empty}: applying it would remove {removed} node{'s' if removed != 1 else ''} of the tree of "
            f"scope {sc.id}; nothing was written (see --dry-run; pass --allow-empty if that is meant)"
        )
    changes = tr.diff(old, new) if dry_run else tr.save(session, sc.id, new)
    data = {"service": s.name, "scope": sc.id, "dry_run": dry_run, "changes": changes, "unusable": tr.unusable(new)}
    if removed and not allow_empty:  # a dry run: say that the real apply would be refused
        data["refused"] = f"{empty}; without --allow-empty the apply is refused"
    return data


# ------------------------------------------------------------ enabled services


def _overlaps(a_from: datetime, a_till: datetime | None, b_from: datetime, b_till: datetime | None) -> bool:
    return (b_till is None or a_from < b_till) and (a_till is None or b_from < a_till)


def pack_price(session: Session, agreement: Agreement, pack: Service, at: datetime) -> tuple[int, Service] | None:
    """The price of ``pack`` from a pay-as-you-go price service enabled on the
    agreement in its currency (SRV-15/16), effective at ``at``: the leaf
    ``service_purchase/<unit_pack|monetary_pack|bundle_pack>/<pack name>``."""
    for _e, svc in enabled(session, agreement, at=at):
        if svc.type != "payg" or svc.currency != agreement.currency or svc.archived_at is not None:
            continue
        sc = current_scope(session, svc, at)
        if sc is None:
            continue
        snap = snapshot(session, svc, sc)
        for resource in PACK_PRICE_RESOURCES.get(pack.type, ()):
            res = lk.resolve(snap, {"domain": "service_purchase", "resource": resource, "pack": pack.name})
            if res.status == lk.RATE and res.price is not None and not any(p["others"] for p in res.path[2:]):
                return res.price, svc
    return None


def enabled(
    session: Session, agreement: Agreement, *, at: datetime | None = None
) -> list[tuple[EnabledService, Service]]:
    """Entries of the agreement (effective at ``at`` when given), oldest
    association first: in the order they were enabled, whatever their start
    (ENS-05: of two packs, the one associated earlier is used first)."""
    q = (
        select(EnabledService, Service)
        .join(Service, col(Service.id) == col(EnabledService.service_id))
        .where(EnabledService.agreement_id == agreement.id)
        .order_by(col(EnabledService.id))
    )
    out = []
    for e, svc in session.exec(q):
        if at is not None and not (e.effective_from <= at and (e.effective_till is None or at < e.effective_till)):
            continue
        out.append((e, svc))
    return out


def enable(
    session: Session,
    *,
    service_ref: str,
    agreement_ref: str,
    effective_from: datetime,
    effective_till: datetime | None = None,
    hidden: bool = False,
    charge: bool | None = None,
) -> EnabledService:
    svc = get(session, service_ref)
    ag = agreements.get(session, agreement_ref)
    problems: list[Problem] = []
    if svc.archived_at is not None:
        raise Conflict(f"service {svc.name!r} is archived")
    if svc.type == "vendor":
        raise Conflict(
            f"{svc.name!r} is a vendor price plan: attach it to a vendor connection "
            "(connection update NAME --vendor-plan PLAN), it is not enabled on agreements"
        )
    if effective_till is not None and effective_till <= effective_from:
        problems.append(Problem("effective_till", "must be later than effective_from"))
    if svc.type in ("payg", "monetary-pack") and svc.currency != ag.currency:
        problems.append(
            Problem("service", f"{svc.name!r} is in {svc.currency}, agreement {ag.code!r} in {ag.currency}")
        )
    if charge is not None and svc.type not in SIZED_TYPES:
        problems.append(Problem("charge", "--charge/--free apply to packs only"))
    require(problems, "the enabled service")
    ownership.check_enable(session, svc, ag, effective_from, effective_till)
    if charge is None and svc.type in SIZED_TYPES:
        raise UsageError(f"{svc.name!r} is a {svc.type}: give its billing, --charge or --free")
    if svc.type == "payg":
        mine = channels(session, svc) - {"service_purchase"}
        for e, other in enabled(session, ag):
            if other.type != "payg" or not _overlaps(
                effective_from, effective_till, e.effective_from, e.effective_till
            ):
                continue
            shared = mine & (channels(session, other) - {"service_purchase"})
            if shared:
                raise Conflict(
                    f"pay-as-you-go service {other.name!r} (enabled #{e.id}) already covers "
                    f"{', '.join(sorted(shared))} on {ag.code!r} in an overlapping period"
                )
    is_charged = bool(charge) and svc.type in SIZED_TYPES
    row = EnabledService(
        agreement_id=ag.id,
        service_id=svc.id,
        effective_from=effective_from,
        effective_till=effective_till,
        hidden=hidden,
        charge=is_charged,
    )
    if is_charged and pack_price(session, ag, svc, effective_from) is None:
        raise NotFound(
            f"rate not found: no pay-as-you-go price service in {ag.currency} enabled on {ag.code!r} "
            f"prices pack {svc.name!r} at {iso(effective_from)}"
        )
    session.add(row)
    session.flush()
    if is_charged and effective_from <= clock.now():
        from cpaas_cli.billing import packs  # billing builds on the catalog, not the other way round

        packs.charge_due(session, agreement_ids=[ag.id])  # ENS-06: written off on its start
    return row


def disable(session: Session, entry_id: int, *, at: datetime | None = None) -> tuple[EnabledService, str]:
    """End an entry now; one that has not started yet is deleted."""
    row = session.get(EnabledService, entry_id)
    if row is None:
        raise NotFound(f"enabled service #{entry_id} not found")
    return row, dated.end_now(session, row, f"enabled service #{entry_id}", at=at)


def enabled_dict(session: Session, e: EnabledService, svc: Service, ag: Agreement) -> dict[str, Any]:
    """One entry; ``purchase`` is a charged pack's purchase charge once written."""
    from cpaas_cli.billing import packs

    now = clock.now()
    if svc.archived_at is not None:
        status = f"missed option {svc.name}"
    elif e.effective_from > now:
        status = "future"
    elif e.effective_till is not None and e.effective_till <= now:
        status = "ended"
    else:
        status = "active"
    cost = None
    if e.charge:
        found = pack_price(session, ag, svc, now if status == "active" else e.effective_from)
        cost = format_micros(found[0]) if found else "rate not found"
    return {
        "id": e.id,
        "agreement": ag.code,
        "service": svc.name,
        "service_id": svc.id,
        "type": svc.type,
        "effective_from": iso(e.effective_from),
        "effective_till": iso(e.effective_till),
        "hidden": e.hidden,
        "billing": ("charge" if e.charge else "free") if svc.type in SIZED_TYPES else None,
        "cost": cost,
        "currency": ag.currency,
        "status": status,
        "purchase": packs.purchase(session, e.id) if e.charge else None,
    }


def list_enabled(
    session: Session, *, agreement_ref: str | None = None, type: str | None = None
) -> list[dict[str, Any]]:
    q = (
        select(EnabledService, Service, Agreement)
        .join(Service, col(Service.id) == col(EnabledService.service_id))
        .join(Agreement, col(Agreement.id) == col(EnabledService.agreement_id))
        .order_by(col(EnabledService.id))
    )
    if agreement_ref:
        q = q.where(EnabledService.agreement_id == agreements.get(session, agreement_ref).id)
    if type:
        q = q.where(Service.type == type)
    return [enabled_dict(session, e, svc, ag) for e, svc, ag in session.exec(q)]


# -------------------------------------------------------- agreement lookups


def agreement_snapshots(session: Session, ag: Agreement, at: datetime) -> list[tuple[str, lk.Snapshot]]:
    """(kind, snapshot) in resolution order: packs first (oldest association
    first), then pay-as-you-go (ENS-04/05). Archived services are skipped."""
    packs, payg = [], []
    for _e, svc in enabled(session, ag, at=at):
        if svc.archived_at is not None:
            continue
        sc = current_scope(session, svc, at)
        if sc is None:
            continue
        snap = snapshot(session, svc, sc)
        if svc.type == "payg":
            payg.append(("pay-as-you-go", snap))
        elif svc.type in ("unit-pack", "monetary-pack", "bundle-initiator", "bundle-pack"):
            packs.append(("pack", snap))
    return packs + payg


def resolve_for_agreement(snaps: list[tuple[str, lk.Snapshot]], q: dict[str, Any]) -> tuple[str | None, lk.Result]:
    """Pure: the first snapshot that gives an answer. A pack answers only with
    ``included``; ``not_included`` moves on to the next tree."""
    last: lk.Result | None = None
    for kind, snap in snaps:
        res = lk.resolve(snap, q)
        if kind == "pack":
            if res.status == lk.INCLUDED:
                return kind, res
            continue
        if res.status == lk.NOT_INCLUDED:
            last = res
            continue
        return kind, res
    if last is not None:
        return None, lk.Result(status=lk.NO_RATE, reason="not included in any enabled service", path=last.path)
    if not snaps:
        return None, lk.Result(status=lk.NO_RATE, reason="no service with a current scope is enabled on the agreement")
    return None, lk.Result(status=lk.NO_RATE, reason="no enabled service prices this event")


def result_dict(kind: str | None, res: lk.Result) -> dict[str, Any]:
    d = asdict(res)
    d["source"] = kind
    d["price"] = format_micros(res.price) if res.price is not None else None
    d["scale"] = tr.scale_text(res.scale)
    d["matched"] = "/".join(p["value"] + ("*" if p["others"] else "") for p in res.path)
    return d
