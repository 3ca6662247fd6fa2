"""`cpaas agreement …`: agreements and their versions."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.agreements import views
from cpaas_cli.cli.agreement_reselling import app as reselling_app
from cpaas_cli.cli.context import OutputOpt, confirm, emit, say, session, when
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt, TzOpt
from cpaas_cli.cli.periods import periods_cmd
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.models.agreements import EMAIL_KINDS
from cpaas_cli.timeutil import TimeError, in_zone, iso, parse_date

app = typer.Typer(no_args_is_help=True)
version_app = typer.Typer(no_args_is_help=True)
app.add_typer(version_app, name="version", help="Versions: terms (credit limit, invoicing) that change over time.")
app.add_typer(
    reselling_app, name="reselling", help="Reselling agreements: the purchase agreement of a reseller's legal entity."
)

LIST_COLUMNS = [
    "id",
    "code",
    "company",
    "seller",
    "direction",
    "currency",
    "effective_from",
    "effective_till",
    "status",
    "credit_limit",
    "billing_period",
    "billing_tz",
]
VERSION_COLUMNS = [
    "id",
    "code",
    "effective_from",
    "effective_till",
    "state",
    "credit_limit",
    "billing_period",
    "billing_day",
    "split_by_month",
    "billing_tz",
    "days_for_payment",
]


class Period(str, Enum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


CodeArg = Annotated[str, typer.Argument(help="Agreement code (or id).")]
SellerOpt = Annotated[
    str | None, typer.Option("--seller", help="Seller company, when the code is used by several sellers.")
]
CreditOpt = Annotated[
    str | None,
    typer.Option("--credit-limit", help="Credit limit in the agreement currency; 'unlimited' or empty = unlimited."),
]
PeriodOpt = Annotated[Period | None, typer.Option("--billing-period", help="daily, weekly, monthly or quarterly.")]
DayOpt = Annotated[
    int | None, typer.Option("--billing-day", help="weekly: 1-7 (1 = Monday); monthly/quarterly: 1-31; daily: none.")
]
SplitOpt = Annotated[
    bool | None, typer.Option("--split-by-month/--no-split-by-month", help="Split daily/weekly periods at month ends.")
]
BillingTzOpt = Annotated[str | None, typer.Option("--billing-tz", help="IANA zone of the billing periods.")]
DaysOpt = Annotated[int | None, typer.Option("--days-for-payment", help="Days to pay an invoice (due date).")]
EmailOpt = Annotated[
    list[str] | None,
    typer.Option("--email", help=f"KIND=ADDR[,ADDR…], kinds: {', '.join(EMAIL_KINDS)}. Repeatable."),
]


def _emails(values: list[str] | None) -> dict[str, list[str]] | None:
    if not values:
        return None
    out: dict[str, list[str]] = {}
    problems = []
    for item in values:
        kind, sep, addrs = item.partition("=")
        kind = kind.strip().replace("-", "_")
        if not sep or not addrs.strip():
            problems.append(Problem("--email", f"expected KIND=ADDR, got {item!r}"))
            continue
        out.setdefault(kind, []).extend(a.strip() for a in addrs.split(",") if a.strip())
    if problems:
        raise InvalidInput.from_problems(problems)
    return out


TaxOpt = Annotated[str | None, typer.Option("--tax-rate", help="Tax rate in percent (e.g. 20 or 7.5); default 0.")]


def _terms(
    credit_limit, billing_period, billing_day, split_by_month, billing_tz, days_for_payment, email, tax_rate=None
) -> agreements.Terms:
    return agreements.Terms(
        tax_rate=tax_rate,
        credit_limit=credit_limit,
        billing_period=billing_period.value if billing_period else None,
        billing_day=billing_day,
        split_by_month=split_by_month,
        billing_tz=billing_tz,
        days_for_payment=days_for_payment,
        emails=_emails(email),
    )


def _date(text: str | None, field: str):
    if text is None:
        return None
    try:
        return parse_date(text)
    except TimeError as exc:
        raise InvalidInput(f"{field}: {exc}") from exc


@app.command("create")
def create(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Agreement code, unique per seller.")],
    company: CompanyOpt,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code.")],
    direction: Annotated[str, typer.Option(help="CLIENT (VENDOR is not available yet).")] = "CLIENT",
    legal_entity: Annotated[str | None, typer.Option(help="The company's legal entity; default its default.")] = None,
    own_legal_entity: Annotated[
        str | None, typer.Option(help="The seller's legal entity; default the company's own legal entity.")
    ] = None,
    bank_account: Annotated[str | None, typer.Option(help="The company's bank account.")] = None,
    own_bank_account: Annotated[str | None, typer.Option(help="The seller's bank account.")] = None,
    agreement_date: Annotated[
        str | None, typer.Option("--date", help="Agreement date YYYY-MM-DD; default the start date.")
    ] = None,
    effective_from: Annotated[
        str | None, typer.Option("--from", help="Start (ISO 8601; local time in --tz); default now.")
    ] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default indefinitely.")] = None,
    tz: TzOpt = "UTC",
    till_tz: Annotated[str | None, typer.Option("--till-tz", help="IANA zone of --till.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    version_code: Annotated[str | None, typer.Option(help="Code of the first version.")] = None,
    credit_limit: CreditOpt = None,
    billing_period: PeriodOpt = None,
    billing_day: DayOpt = None,
    split_by_month: SplitOpt = None,
    billing_tz: BillingTzOpt = None,
    days_for_payment: DaysOpt = None,
    email: EmailOpt = None,
    tax_rate: TaxOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create an agreement (and its first version) between a company and its seller."""
    with session(ctx) as s:
        row, _ = agreements.create(
            s,
            company_ref=company,
            code=code,
            currency=currency,
            direction=direction,
            legal_entity_ref=legal_entity,
            own_legal_entity_ref=own_legal_entity,
            bank_account_ref=bank_account,
            own_bank_account_ref=own_bank_account,
            agreement_date=_date(agreement_date, "--date"),
            effective_from=when(effective_from, "--from", tz),
            effective_from_tz=tz,
            effective_till=when(effective_till, "--till", till_tz or tz, "--till-tz" if till_tz else "--tz"),
            effective_till_tz=till_tz,
            description=description,
            version_code=version_code,
            terms=_terms(
                credit_limit, billing_period, billing_day, split_by_month, billing_tz, days_for_payment, email, tax_rate
            ),
        )
        data = views.agreement_dict(s, row, with_versions=True)
    say(
        ctx,
        f"created agreement {data['code']!r} (#{data['id']}) for {data['company']!r}, "
        f"effective from {data['effective_from_local']} {data['effective_from_tz']} ({data['effective_from']})"
        + (
            f" till {data['effective_till_local']} {data['effective_till_tz']} ({data['effective_till']})"
            if data["effective_till"]
            else ""
        ),
    )
    emit(ctx, data, output=output)


def _flat(item: dict) -> dict:
    v = item.get("version") or {}
    return {
        **{k: val for k, val in item.items() if k != "version"},
        "credit_limit": "unlimited" if v.get("unlimited_credit") else v.get("credit_limit"),
        "billing_period": v.get("billing_period"),
        "billing_tz": v.get("billing_tz"),
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    seller: Annotated[str | None, typer.Option(help="Only agreements sold by this company.")] = None,
    currency: Annotated[str | None, typer.Option(help="Only this currency.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Only agreements in force at this time.")] = None,
    output: OutputOpt = None,
) -> None:
    """List agreements with the terms in force now."""
    with session(ctx) as s:
        rows = agreements.list_agreements(
            s, company_ref=company, seller_ref=seller, currency=currency, active_at=when(at, "--at")
        )
        data = [_flat(views.agreement_dict(s, r)) for r in rows]
    emit(ctx, data, output=output, columns=LIST_COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context,
    code: CodeArg,
    seller: SellerOpt = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Show the version in force at this time (default now).")
    ] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Show an agreement, the version in force at --at, and all versions."""
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        data = views.agreement_dict(s, row, at=when(at, "--at", tz) or clock.now(), with_versions=True)
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    code: CodeArg,
    seller: SellerOpt = None,
    legal_entity: Annotated[str | None, typer.Option()] = None,
    own_legal_entity: Annotated[str | None, typer.Option()] = None,
    bank_account: Annotated[str | None, typer.Option()] = None,
    own_bank_account: Annotated[str | None, typer.Option()] = None,
    agreement_date: Annotated[str | None, typer.Option("--date")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    currency: Annotated[str | None, typer.Option(help="Only while the agreement has no charge.")] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="New end; 'never' = indefinitely.")] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Change agreement fields (company never; currency only before the first charge)."""
    changes: dict = {
        "legal_entity": legal_entity,
        "own_legal_entity": own_legal_entity,
        "bank_account": bank_account,
        "own_bank_account": own_bank_account,
        "agreement_date": _date(agreement_date, "--date"),
        "description": description,
        "currency": currency,
    }
    if effective_till is not None:
        changes["effective_till"] = (
            None if effective_till.lower() in ("never", "") else when(effective_till, "--till", tz)
        )
    with session(ctx) as s:
        row = agreements.update(s, agreements.get(s, code, seller=seller), changes)
        if effective_till is not None:
            row.effective_till_tz = tz
        data = views.agreement_dict(s, row, with_versions=True)
    emit(ctx, data, output=output)


@app.command("close")
def close(
    ctx: typer.Context,
    code: CodeArg,
    seller: SellerOpt = None,
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    tz: TzOpt = "UTC",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """End an agreement; no traffic is charged to it after the end."""
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        confirm(ctx, f"Close agreement {row.code!r}?", yes)
        agreements.close(s, row, at=when(at, "--at", tz))
        data = views.agreement_dict(s, row, with_versions=True)
    emit(ctx, data, output=output)


@version_app.command("add")
def version_add(
    ctx: typer.Context,
    code: CodeArg,
    effective_from: Annotated[str, typer.Option("--from", help="Start of the version (local time in --tz).")],
    seller: SellerOpt = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default the agreement's end.")] = None,
    tz: TzOpt = "UTC",
    version_code: Annotated[str | None, typer.Option("--code", help="Version code.")] = None,
    credit_limit: CreditOpt = None,
    billing_period: PeriodOpt = None,
    billing_day: DayOpt = None,
    split_by_month: SplitOpt = None,
    billing_tz: BillingTzOpt = None,
    days_for_payment: DaysOpt = None,
    email: EmailOpt = None,
    tax_rate: TaxOpt = None,
    output: OutputOpt = None,
) -> None:
    """Add a version. Terms not given are copied from the version before it;
    an open-ended version before it is cut at the new start."""
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        start = when(effective_from, "--from", tz)
        assert start is not None
        version, cut = agreements.add_version(
            s,
            row,
            effective_from=start,
            effective_till=when(effective_till, "--till", tz),
            tz=tz,
            code=version_code,
            terms=_terms(
                credit_limit, billing_period, billing_day, split_by_month, billing_tz, days_for_payment, email, tax_rate
            ),
        )
        data = views.version_dict(version)
        if cut is not None:
            local = in_zone(cut.effective_till, cut.tz)
            data["previous_cut"] = {
                "id": cut.id,
                "effective_till": iso(cut.effective_till),
                "effective_till_local": local,
            }
            say(ctx, f"version #{cut.id} now ends at {local} {cut.tz} ({iso(cut.effective_till)})")
    emit(ctx, data, output=output)


@version_app.command("list")
def version_list(ctx: typer.Context, code: CodeArg, seller: SellerOpt = None, output: OutputOpt = None) -> None:
    """List the versions of an agreement, oldest first."""
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        data = [views.version_dict(v) for v in agreements.versions(s, row)]
    emit(ctx, data, output=output, columns=VERSION_COLUMNS)


@version_app.command("delete")
def version_delete(
    ctx: typer.Context,
    code: CodeArg,
    version_id: Annotated[int, typer.Argument(help="Version id.")],
    seller: SellerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Delete a version that has not started yet (never the only one)."""
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        gone = agreements.delete_version(s, row, version_id)
        data = views.version_dict(gone)
        data["deleted"] = True
    emit(ctx, data, output=output)


# ------------------------------------------------- enabled services and packs

ENABLED_COLUMNS = [
    "id",
    "agreement",
    "service",
    "type",
    "effective_from",
    "effective_till",
    "hidden",
    "billing",
    "cost",
    "currency",
    "status",
]
enabled_app = typer.Typer(no_args_is_help=True)
app.add_typer(enabled_app, name="enabled", help="Services and packs enabled (purchased) on agreements.")


@app.command("enable")
def enable(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service or pack (name or id).")],
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code (or id).")],
    effective_from: Annotated[str, typer.Option("--from", help="Purchase date: start (local time in --tz).")],
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default indefinitely.")] = None,
    tz: TzOpt = "UTC",
    hidden: Annotated[bool, typer.Option("--hidden", help="Do not show it to the client.")] = False,
    charge: Annotated[
        bool | None,
        typer.Option(
            "--charge/--free",
            help="Packs (required for them): charge the pack price, written off on --from, or give it free.",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Enable a service or pack on an agreement (enabled = purchased, even when it starts later)."""
    from cpaas_cli.catalog import service as catalog

    with session(ctx) as s:
        row = catalog.enable(
            s,
            service_ref=service,
            agreement_ref=agreement,
            effective_from=when(effective_from, "--from", tz),
            effective_till=when(effective_till, "--till", tz),
            hidden=hidden,
            charge=charge,
        )
        data = next(d for d in catalog.list_enabled(s) if d["id"] == row.id)
    say(ctx, f"enabled {data['service']!r} on {data['agreement']!r} (#{row.id})")
    emit(ctx, data, output=output)


@enabled_app.command("list")
def enabled_list(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Only this agreement.")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Only this service type (payg, unit-pack, ...).")] = None,
    output: OutputOpt = None,
) -> None:
    """List enabled services and packs with their period, billing, cost and status."""
    from cpaas_cli.catalog import service as catalog

    with session(ctx) as s:
        data = catalog.list_enabled(s, agreement_ref=agreement, type=type)
    emit(ctx, data, output=output, columns=ENABLED_COLUMNS)


@app.command("disable")
def disable(
    ctx: typer.Context,
    entry_id: Annotated[int, typer.Argument(help="Enabled-service id (see `agreement enabled list`).")],
    output: OutputOpt = None,
) -> None:
    """End an enabled service now (one that has not started yet is removed)."""
    from cpaas_cli.catalog import service as catalog

    with session(ctx) as s:
        row, what = catalog.disable(s, entry_id)
        data = {
            "id": row.id,
            "effective_from": iso(row.effective_from),
            "effective_till": iso(row.effective_till),
            "result": what,
        }
    emit(ctx, data, output=output)


app.command("periods")(periods_cmd)  # the command lives in cli/periods.py
