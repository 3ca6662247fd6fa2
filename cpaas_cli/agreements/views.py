"""Agreements and their versions as the commands show them (JSON-ready dicts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.models.agreements import Agreement, AgreementVersion
from cpaas_cli.models.tenancy import BankAccount, Company, LegalEntity
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import in_zone, iso


def version_dict(v: AgreementVersion, *, now: datetime | None = None) -> dict[str, Any]:
    at = now or clock.now()
    if v.effective_from > at:
        state = "upcoming"
    elif v.effective_till is not None and v.effective_till <= at:
        state = "expired"
    else:
        state = "current"
    return {
        "id": v.id,
        "agreement_id": v.agreement_id,
        "code": v.code,
        "effective_from": iso(v.effective_from),
        "effective_till": iso(v.effective_till),
        "tz": v.tz,
        "effective_from_local": in_zone(v.effective_from, v.tz),
        "effective_till_local": in_zone(v.effective_till, v.tz),
        "state": state,
        "credit_limit": format_micros(v.credit_limit),
        "unlimited_credit": v.credit_limit is None,
        "billing_period": v.billing_period,
        "billing_day": v.billing_day,
        "split_by_month": v.split_by_month,
        "billing_tz": v.billing_tz,
        "days_for_payment": v.days_for_payment,
        "emails": v.emails or {},
        "tax_rate": format_micros(v.tax_rate or 0),
    }


def agreement_dict(
    session: Session, row: Agreement, *, at: datetime | None = None, with_versions: bool = False
) -> dict[str, Any]:
    client = session.get(Company, row.company_id)
    seller = session.get(Company, row.seller_company_id)
    le = session.get(LegalEntity, row.legal_entity_id)
    own_le = session.get(LegalEntity, row.own_legal_entity_id)
    bank = session.get(BankAccount, row.bank_account_id) if row.bank_account_id else None
    own_bank = session.get(BankAccount, row.own_bank_account_id) if row.own_bank_account_id else None
    when = at or clock.now()
    current = agreements.version_at(session, row, when)
    status = (
        "closed"
        if row.closed_at is not None
        else (
            "upcoming"
            if row.effective_from > when
            else ("ended" if row.effective_till is not None and row.effective_till <= when else "active")
        )
    )
    out: dict[str, Any] = {
        "id": row.id,
        "code": row.code,
        "company_id": row.company_id,
        "company": client.name if client else None,
        "seller_company_id": row.seller_company_id,
        "seller": seller.name if seller else None,
        "direction": row.direction,
        "legal_entity": le.name if le else None,
        "own_legal_entity": own_le.name if own_le else None,
        "bank_account": bank.name if bank else None,
        "own_bank_account": own_bank.name if own_bank else None,
        "agreement_date": row.agreement_date.isoformat(),
        "currency": row.currency,
        "effective_from": iso(row.effective_from),
        "effective_from_tz": row.effective_from_tz,
        "effective_from_local": in_zone(row.effective_from, row.effective_from_tz),
        "effective_till": iso(row.effective_till),
        "effective_till_tz": row.effective_till_tz,
        "effective_till_local": in_zone(row.effective_till, row.effective_till_tz),
        "status": status,
        "closed_at": iso(row.closed_at),
        "description": row.description,
        "at": iso(when),
        "version": version_dict(current, now=when) if current else None,
    }
    if with_versions:
        out["versions"] = [version_dict(v, now=when) for v in agreements.versions(session, row)]
    return out
