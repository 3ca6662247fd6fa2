"""`cpaas service …`: services (rate plans), their scopes and rate trees."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from cpaas_cli import files
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.cli.context import ForceOpt, OutputOpt, emit, out_target, say, session, state, when
from cpaas_cli.cli.options import CompanyFilterOpt, TzOpt
from cpaas_cli.cli.output import Fmt, terminal_safe
from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.textfile import guarded, load_yaml, read_utf8

app = typer.Typer(no_args_is_help=True)
scope_app = typer.Typer(no_args_is_help=True)
tree_app = typer.Typer(no_args_is_help=True)
app.add_typer(scope_app, name="scope", help="Scopes: validity periods of a service's rate tree.")
app.add_typer(tree_app, name="tree", help="The rate tree of a scope: show, apply a file, export.")
resellers_app = typer.Typer(no_args_is_help=True)
app.add_typer(resellers_app, name="resellers", help="Resellers assigned to reseller plans (TEN-13).")

COLUMNS = ["id", "name", "type", "size", "currency", "channels", "owner", "reseller_plan", "archived_at", "description"]
SCOPE_COLUMNS = ["id", "service_id", "name", "state", "draft", "effective_from", "effective_till"]


class ServiceType(str, Enum):
    payg = "payg"
    unit_pack = "unit-pack"
    monetary_pack = "monetary-pack"
    bundle_initiator = "bundle-initiator"
    bundle_pack = "bundle-pack"
    vendor = "vendor"  # a vendor price plan (attached to a connection: connection update --vendor-plan)


ServiceArg = Annotated[str, typer.Argument(help="Service name or id.")]
ScopeOpt = Annotated[int | None, typer.Option("--scope", help="Scope id; default the current scope (or the only one).")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Service name (unique).")],
    type: Annotated[
        ServiceType,
        typer.Option("--type", help="payg, unit-pack, monetary-pack, bundle-initiator, bundle-pack, vendor."),
    ],
    currency: Annotated[str | None, typer.Option(help="ISO 4217 currency (none for a unit pack).")] = None,
    size: Annotated[
        str | None, typer.Option(help="Units (unit/bundle pack) or amount in the currency (monetary pack).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text (e.g. the packs a price service prices).")] = None,
    owner: CompanyFilterOpt = None,
    reseller_plan: Annotated[
        bool,
        typer.Option(
            "--reseller-plan",
            help="A reseller plan: seen only by its owner and the resellers assigned to it (service resellers).",
        ),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Create a service (rate plan or pack).

    --company: the company that owns and sells it, the system owner (the default) or
    a reseller; only the owner enables it on the agreements it sells."""
    from cpaas_cli.catalog import ownership

    with session(ctx) as s:
        row = catalog.create(
            s,
            name=name,
            type=type.value,
            currency=currency,
            size=size,
            description=description,
            owner_company_id=ownership.resolve_owner(s, owner),
            reseller_plan=reseller_plan,
        )
        data = catalog.service_dict(s, row)
    say(ctx, f"created service {row.name!r} (#{row.id})")
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    type: Annotated[ServiceType | None, typer.Option("--type", help="Only this type.")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived services.")] = False,
    company: CompanyFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """List services: id, name, type, size, currency, owner.

    --company: only the services that company sees; a reseller its own, the reseller
    plans assigned to it and those enabled on its own agreements."""
    from cpaas_cli.catalog import ownership
    from cpaas_cli.tenancy import service as tenancy

    with session(ctx) as s:
        seen = ownership.seen_by_company(s, tenancy.company(s, company)) if company is not None else None
        data = [
            catalog.service_dict(s, r)
            for r in catalog.list_services(s, type=type.value if type else None, archived=archived, seen=seen)
        ]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, service: ServiceArg, output: OutputOpt = None) -> None:
    """Show a service with its scopes and which one is current."""
    with session(ctx) as s:
        data = catalog.service_dict(s, catalog.get(s, service), with_scopes=True)
    emit(ctx, data, output=output)


@app.command("archive")
def archive(ctx: typer.Context, service: ServiceArg, output: OutputOpt = None) -> None:
    """Archive a service: traffic stops on every agreement it is enabled on (listed)."""
    with session(ctx) as s:
        row = catalog.get(s, service)
        lost = catalog.archive(s, row)
        data = catalog.service_dict(s, row)
        data["agreements_losing_it"] = sorted({x["agreement"] for x in lost if x["agreement"]})
        data["enabled_entries"] = [x["enabled_id"] for x in lost]
    if lost:
        say(ctx, f"archived {row.name!r}; traffic stops for: {', '.join(data['agreements_losing_it'])}")
    else:
        say(ctx, f"archived {row.name!r}; it was not enabled on any agreement")
    emit(ctx, data, output=output)


@app.command("clone")
def clone(
    ctx: typer.Context,
    service: ServiceArg,
    name: Annotated[str, typer.Option("--name", help="Name of the copy.")],
    output: OutputOpt = None,
) -> None:
    """Copy a service with all its scopes and rate trees."""
    with session(ctx) as s:
        row = catalog.clone(s, catalog.get(s, service), name=name)
        data = catalog.service_dict(s, row, with_scopes=True)
    emit(ctx, data, output=output)


# -------------------------------------------------------------------- scopes


@scope_app.command("add")
def scope_add(
    ctx: typer.Context,
    service: ServiceArg,
    effective_from: Annotated[str | None, typer.Option("--from", help="Start (ISO 8601, local in --tz).")] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default indefinitely.")] = None,
    tz: TzOpt = "UTC",
    draft: Annotated[bool, typer.Option("--draft", help="A draft: dates set later; never current.")] = False,
    name: Annotated[str | None, typer.Option(help="Scope name.")] = None,
    copy_from: Annotated[
        str | None,
        typer.Option(
            "--copy-from", help="Copy the tree of SERVICE (its current scope), SERVICE:SCOPE_ID or #SCOPE_ID."
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Add a scope (validity period) to a service, optionally copying a rate tree."""
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.scope_add(
            s,
            svc,
            name=name,
            effective_from=when(effective_from, "--from", tz),
            effective_till=when(effective_till, "--till", tz),
            draft=draft,
            copy_from=copy_from,
        )
        data = catalog.scope_dict(sc, current=catalog.current_scope(s, svc))
    emit(ctx, data, output=output)


@scope_app.command("list")
def scope_list(ctx: typer.Context, service: ServiceArg, output: OutputOpt = None) -> None:
    """List a service's scopes with their state (current, future, ended, draft, overlapped)."""
    with session(ctx) as s:
        svc = catalog.get(s, service)
        cur = catalog.current_scope(s, svc)
        data = [catalog.scope_dict(x, current=cur) for x in catalog.scopes(s, svc)]
    emit(ctx, data, output=output, columns=SCOPE_COLUMNS)


@scope_app.command("update")
def scope_update(
    ctx: typer.Context,
    service: ServiceArg,
    scope_id: Annotated[int, typer.Argument(help="Scope id.")],
    effective_from: Annotated[str | None, typer.Option("--from", help="New start.")] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="New end; 'never' = indefinitely.")] = None,
    tz: TzOpt = "UTC",
    draft: Annotated[bool | None, typer.Option("--draft/--no-draft", help="Set or clear the draft flag.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    output: OutputOpt = None,
) -> None:
    """Change a scope's dates, name or draft flag."""
    never = effective_till is not None and effective_till.lower() == "never"
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.scope_update(
            s,
            catalog.scope_get(s, svc, scope_id),
            name=name,
            effective_from=when(effective_from, "--from", tz),
            effective_till=None if never else when(effective_till, "--till", tz),
            clear_till=never,
            draft=draft,
        )
        data = catalog.scope_dict(sc, current=catalog.current_scope(s, svc))
    emit(ctx, data, output=output)


# ---------------------------------------------------------------------- trees


def _read_doc(path: Path):
    if not path.exists():
        raise InvalidInput(f"file {str(path)!r} does not exist")
    text = read_utf8(path, "tree file")
    try:
        if path.suffix.lower() == ".json":
            return guarded(json.loads, text, path.name)
        return load_yaml(text, path.name)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path.name}: cannot parse: {exc}") from exc


@tree_app.command("show")
def tree_show(ctx: typer.Context, service: ServiceArg, scope: ScopeOpt = None, output: OutputOpt = None) -> None:
    """Show a scope's rate tree (table: indented text; json: the tree document and unusable nodes)."""
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.pick_scope(s, svc, scope)
        roots = tr.load(s, sc.id)
        fmt = output or state(ctx).output or Fmt.table
        if fmt.is_table:
            for line in tr.render_text(roots, svc.currency):
                sys.stdout.write(terminal_safe(line) + "\n")
            return
        data = tr.document(roots, service=svc.name, scope=sc.id)
        data["unusable"] = tr.unusable(roots)
    emit(ctx, data, output=output)


class TreeFmt(str, Enum):
    yaml = "yaml"
    json = "json"


@tree_app.command("export")
def tree_export(
    ctx: typer.Context,
    service: ServiceArg,
    scope: ScopeOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (.yaml or .json, by the suffix); default stdout.")
    ] = None,
    force: ForceOpt = False,
    output: Annotated[
        TreeFmt | None, typer.Option("--output", "-o", help="Format on stdout: yaml (the default) or json.")
    ] = None,
) -> None:
    """Write a scope's tree in the format `tree apply` reads (export then apply changes nothing)."""
    if out is not None:
        out_target(ctx, out, force=force)
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.pick_scope(s, svc, scope)
        doc = tr.document(tr.load(s, sc.id), service=svc.name, scope=sc.id)
    if out is not None:
        as_json = out.suffix.lower() == ".json"
    else:  # `-o json` here, or the global `cpaas -o json`
        as_json = output is TreeFmt.json or (output is None and state(ctx).output is Fmt.json)
    text = (
        json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if as_json
        else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    )
    if out is None:
        sys.stdout.write(text)
    else:
        files.atomic_write_text(out, text)
        say(ctx, f"wrote {out}")


@tree_app.command("init")
def tree_init(
    ctx: typer.Context,
    service: ServiceArg,
    template: Annotated[
        str, typer.Option("--template", help="sms-country-network: sms/sms_message with mo free, mt by country.")
    ] = "sms-country-network",
    billing_rule: Annotated[str, typer.Option("--billing-rule", help="submitted or delivered.")] = "submitted",
    quantity_rule: Annotated[str, typer.Option("--quantity-rule", help="messages or segments.")] = "segments",
    scope: ScopeOpt = None,
    output: OutputOpt = None,
) -> None:
    """Build the usual skeleton of a rate tree, ready for `rates import --node sms/sms_message/mt`.

    Refused (exit 5) when the scope already has an sms tree."""
    from cpaas_cli.catalog import templates

    br, qr = templates.check_rules(billing_rule, quantity_rule)
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.pick_scope(s, svc, scope)
        changes = templates.init_tree(s, sc.id, template, billing_rule=br, quantity_rule=qr)
        data = tr.document(tr.load(s, sc.id), service=svc.name, scope=sc.id)
    data["changes"] = changes
    say(ctx, f"built the {template} skeleton in scope #{sc.id}: {len(changes)} nodes")
    fmt = output or state(ctx).output or Fmt.table
    if fmt is Fmt.table:
        for c in changes:
            sys.stdout.write(terminal_safe(f"+ {c['path']}") + "\n")
        return
    emit(ctx, data, output=output)


@tree_app.command("apply")
def tree_apply(
    ctx: typer.Context,
    service: ServiceArg,
    file: Annotated[Path, typer.Argument(help="Tree file (.yaml, .yml or .json).")],
    scope: ScopeOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes, write nothing.")] = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Apply a file that is empty, has no tree or looks cut short."),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Make a scope's tree equal to the file; prints the changes (idempotent).

    A file that parses to nothing, has no top-level `tree`, an empty tree or a
    `children:` with nothing after it (a file cut short) is refused unless
    --allow-empty: applying it would delete the nodes it does not name."""
    doc = _read_doc(file)
    with session(ctx) as s:
        svc = catalog.get(s, service)
        sc = catalog.pick_scope(s, svc, scope)
        data = catalog.tree_apply(s, svc, sc, doc, dry_run=dry_run, allow_empty=allow_empty)
        if dry_run:
            s.rollback()
    n = len(data["changes"])
    say(ctx, f"{'would change' if dry_run else 'changed'} {n} node{'s' if n != 1 else ''}")
    if data.get("refused"):
        say(ctx, f"warning: {data['refused']}")
    for u in data["unusable"]:
        say(ctx, f"warning: {u['path']} is unusable: {u['reason']}")
    fmt = output or state(ctx).output or Fmt.table
    if fmt.is_table:
        for c in data["changes"]:
            sign = {"add": "+", "remove": "-", "change": "~"}[c["op"]]
            line = f"{sign} {c['path']} {json.dumps(c['changes'], ensure_ascii=False, default=str)}"
            sys.stdout.write(terminal_safe(line) + "\n")
        return
    emit(ctx, data, output=output)


# ------------------------------------------------------------ reseller plans

ASSIGN_COLUMNS = ["id", "service", "owner", "reseller"]
PlanArg = Annotated[str, typer.Argument(help="Reseller plan (service name or id).")]
ResellerArg = Annotated[str, typer.Argument(help="Reseller company (name or id).")]


@resellers_app.command("assign")
def resellers_assign(ctx: typer.Context, plan: PlanArg, reseller: ResellerArg, output: OutputOpt = None) -> None:
    """Assign a reseller plan to a reseller directly below the plan's owner (any number of resellers per plan)."""
    from cpaas_cli.catalog import ownership

    with session(ctx) as s:
        svc = catalog.get(s, plan)
        row = ownership.assign(s, svc, reseller)
        data = next(d for d in ownership.assignments(s, svc=svc) if d["id"] == row.id)
    say(ctx, f"assigned reseller plan {data['service']!r} to {data['reseller']!r}")
    emit(ctx, data, output=output)


@resellers_app.command("unassign")
def resellers_unassign(ctx: typer.Context, plan: PlanArg, reseller: ResellerArg, output: OutputOpt = None) -> None:
    """Take a reseller plan away from a reseller (agreements it is enabled on keep it until disabled)."""
    from cpaas_cli.catalog import ownership

    with session(ctx) as s:
        svc = catalog.get(s, plan)
        row = ownership.unassign(s, svc, reseller)
        data = {"id": row.id, "service": svc.name, "reseller_id": row.company_id, "unassigned": True}
    emit(ctx, data, output=output)


@resellers_app.command("list")
def resellers_list(
    ctx: typer.Context,
    plan: Annotated[str | None, typer.Argument(help="Only this reseller plan (service name or id).")] = None,
    output: OutputOpt = None,
) -> None:
    """List the resellers assigned to reseller plans."""
    from cpaas_cli.catalog import ownership

    with session(ctx) as s:
        data = ownership.assignments(s, svc=catalog.get(s, plan) if plan is not None else None)
    emit(ctx, data, output=output, columns=ASSIGN_COLUMNS)
