"""`cpaas rates …`: import rate sheets, look prices up, export coverage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.catalog import compare as rate_compare
from cpaas_cli.catalog import coverage, importer, rate_diff
from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.cli.context import ForceOpt, OutputOpt, confirm, emit, out_target, say, session, state, when
from cpaas_cli.cli.options import TzOpt
from cpaas_cli.cli.output import Fmt, terminal_safe
from cpaas_cli.errors import ExitCode, InvalidInput, NotFound, Problem
from cpaas_cli.exports.writers import COVERAGE_FORMATS, write_table
from cpaas_cli.rating import lookup as lk
from cpaas_cli.timeutil import iso

app = typer.Typer(no_args_is_help=True)

HISTORY_COLUMNS = [
    "id",
    "at",
    "actor",
    "service",
    "scope_id",
    "node_path",
    "file_name",
    "sha256",
    "rows_read",
    "rows_imported",
    "rows_skipped",
]


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Rate sheet (.csv, .xlsx).")],
    service: Annotated[str, typer.Option("--service", help="Service name or id.")],
    node: Annotated[str, typer.Option("--node", help="Target node path, e.g. sms/sms_message/mt.")],
    map_: Annotated[
        list[str],
        typer.Option(
            "--map",
            "-m",
            help=(
                "ATTR=COLUMN; ATTR: country, network, mccmnc, mcc, mnc, price, billing_rule, quantity_rule. "
                "MCC and MNC in two columns: --map mcc=MCC --map mnc=MNC."
            ),
        ),
    ],
    scope: Annotated[int | None, typer.Option("--scope", help="Scope id; default current (or only) scope.")] = None,
    header_row: Annotated[
        int | None,
        typer.Option(
            "--header-row",
            help="Row holding the column names (data follows it); default the first row naming every mapped column.",
        ),
    ] = None,
    duplicates: Annotated[
        str,
        typer.Option(
            "--duplicates",
            help="Rows for one destination with different prices or rules: first, last or error. "
            "Rows repeated with the same price and rules are ignored.",
        ),
    ] = "error",
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="merge: add or update the destinations in the sheet, keep the others (a rate change notice). "
            "replace: the subtree becomes the sheet; destinations it does not name are removed (asks; --yes).",
        ),
    ] = "merge",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before --mode replace removes destinations.")
    ] = False,
    create_node: Annotated[
        bool,
        typer.Option(
            "--create-node",
            help="Build --node if missing, as the sms-country-network template does (DOMAIN/RESOURCE/mt|mo).",
        ),
    ] = False,
    billing_rule: Annotated[
        str, typer.Option("--billing-rule", help="With --create-node: submitted or delivered.")
    ] = "submitted",
    quantity_rule: Annotated[
        str, typer.Option("--quantity-rule", help="With --create-node: messages or segments.")
    ] = "segments",
    sheet: Annotated[str | None, typer.Option("--sheet", help="Worksheet name (XLSX); default the first.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the destinations added, removed and changed; write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some are invalid.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Import a rate sheet under --node and print the change per destination.

    The table output is a diff: "+ ES/21401 (Vodafone Spain): 0.04", "~ path:
    old → new", "- path: old", then counts per country; -o json gives the
    whole result (changes, summary, by_country, errors), -o csv the changes.

    Example: cpaas rates import notice.xlsx --service "SMS service" --node sms/sms_message/mt
    --map country=Country --map mcc=MCC --map mnc=MNC --map price=Rate --dry-run
    """
    maps = importer.parse_maps(map_)

    def confirm_removal(n: int) -> None:
        say(ctx, f"--mode replace removes {n} destination{'s' if n != 1 else ''} that the sheet does not name")
        confirm(ctx, f"Remove {n} destination{'s' if n != 1 else ''} under {node}?", yes)

    with session(ctx) as s:
        result = importer.run(
            s,
            path=file,
            service_ref=service,
            scope_id=scope,
            node_path=node,
            maps=maps,
            header_row=header_row,
            duplicates=duplicates,
            sheet=sheet,
            mode=mode,
            create_node=create_node,
            billing_rule=billing_rule,
            quantity_rule=quantity_rule,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            confirm_removal=confirm_removal,
            actor=state(ctx).settings.actor,
        )
        if not result.written:
            s.rollback()
        currency = catalog.get(s, service).currency
    _report(ctx, result, currency, output)
    if result.errors and not result.written and not skip_invalid:
        raise typer.Exit(int(ExitCode.INVALID_INPUT))


def _report(ctx: typer.Context, result: importer.ImportResult, currency: str | None, output: Fmt | None) -> None:
    """The diff on stdout (table: lines; json: the result; csv/tsv/jsonl: the changes), the rest on stderr."""
    if result.header_row is not None:
        how = "the first row naming the mapped columns" if result.header_detected else "as given"
        say(ctx, f"header: row {result.header_row} ({how})")
    for path in result.created_nodes:
        say(ctx, f"{'created' if result.written else 'would create'} node {path}")
    fmt = output or state(ctx).output or Fmt.table
    if fmt is Fmt.table:
        for c in result.changes:
            sys.stdout.write(terminal_safe(rate_diff.change_line(c, currency)) + "\n")
        for r in result.by_country:
            if r["added"] or r["changed"] or r["removed"]:
                sys.stdout.write(terminal_safe(rate_diff.count_line(r)) + "\n")
    elif fmt is Fmt.json:
        emit(ctx, result.as_dict(), output=fmt)
    else:
        emit(ctx, result.changes, output=fmt, columns=rate_diff.CHANGE_COLUMNS)
    for e in result.errors:
        say(ctx, f"row {e['row']}, column {e['column']!r}, value {e['value']!r}: {e['reason']}")
    repeated = f", {result.rows_repeated} repeated rows ignored" if result.rows_repeated else ""
    say(
        ctx,
        f"{result.rows_read} rows read, {result.rows_imported} imported, {result.rows_skipped} skipped{repeated}, "
        f"{len(result.errors)} errors; {'written (import #' + str(result.import_id) + ')' if result.written else 'nothing written'}",
    )
    t = result.summary
    if t and result.mode == "replace" and t["removed"] and not result.written:
        say(ctx, f"warning: --mode replace would remove {t['removed']} destinations that the sheet does not name")
    if t:
        verb = ("added", "changed", "removed") if result.written else ("would add", "would change", "would remove")
        say(
            ctx,
            f"{result.mode}: {verb[0]} {t['added']}, {verb[1]} {t['changed']}, {verb[2]} {t['removed']} "
            f"destination{'s' if t['removed'] != 1 else ''} ({t['unchanged']} unchanged)",
        )


@app.command("import-history")
def import_history(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option("--service", help="Only imports into this service.")] = None,
    output: OutputOpt = None,
) -> None:
    """Every rate import: file, hash, rows, actor, time."""
    with session(ctx) as s:
        names = {x.id: x.name for x in catalog.list_services(s, archived=True)}
        data = [
            {
                "id": r.id,
                "at": iso(r.at),
                "actor": r.actor,
                "service": names.get(r.service_id),
                "scope_id": r.scope_id,
                "node_path": r.node_path,
                "file_name": r.file_name,
                "sha256": r.sha256,
                "rows_read": r.rows_read,
                "rows_imported": r.rows_imported,
                "rows_skipped": r.rows_skipped,
            }
            for r in importer.import_history(s, service_ref=service)
        ]
    emit(ctx, data, output=output, columns=HISTORY_COLUMNS)


@app.command("lookup")
def lookup(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code (or id).")],
    mccmnc: Annotated[str, typer.Option("--mccmnc", help="Destination MCCMNC (3 digits = the country).")],
    channel: Annotated[str, typer.Option("--channel", help="Service domain: sms, rcs, whatsapp, ...")] = "sms",
    resource: Annotated[str | None, typer.Option("--resource", help="Resource; default CHANNEL_message.")] = None,
    direction: Annotated[str, typer.Option("--direction", help="mt or mo.")] = "mt",
    sender: Annotated[str | None, typer.Option("--sender", "-s", help="Sender ID (its type is derived).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Time of the event (default now).")] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Price of one message: price, currency, rules and the path that matched. No rate → exit 3."""
    try:
        m = dic.normalise_mccmnc(mccmnc)
    except dic.MccmncError as exc:
        raise InvalidInput(str(Problem("--mccmnc", str(exc)))) from exc
    when_ = when(at, "--at", tz) or clock.now()
    with session(ctx) as s:
        ag = agreements.get(s, agreement)
        snaps = catalog.agreement_snapshots(s, ag, when_)
    q = lk.query(
        channel=channel.lower(),
        resource=resource,
        direction=direction.lower(),
        mccmnc=m.key if m.mnc else None,
        mcc=m.mcc,
        country=dic.mcc_country(m.mcc),
        sender_type=sender_type_of(sender),
    )
    kind, res = catalog.resolve_for_agreement(snaps, q)
    data = catalog.result_dict(kind, res)
    data.update({"agreement": ag.code, "at": iso(when_), "mccmnc": m.key, "country": q["country"]})
    emit(ctx, data, output=output)
    if not res.found:
        say(ctx, f"no rate: {res.reason}")
        raise typer.Exit(int(ExitCode.NOT_FOUND))


@app.command("compare")
def compare(
    ctx: typer.Context,
    plan_a: Annotated[str, typer.Argument(help="Plan A (service name or id), e.g. the sale plan.")],
    plan_b: Annotated[str, typer.Argument(help="Plan B (service name or id), e.g. a vendor plan.")],
    at: Annotated[
        str | None, typer.Option("--at", help="Compare the scopes in force at this time (default now).")
    ] = None,
    differences: Annotated[
        bool, typer.Option("--differences", help="Only destinations whose prices differ or that one plan lacks.")
    ] = False,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Price per destination in two plans: price A, price B, difference (A − B),
    how each plan matched (exact leaf, fallback to a country row or others, none),
    the plan a destination is only in, and negative (A below B: with a sale plan
    and a vendor plan, the destinations sold below cost; red in a terminal).

    Example: cpaas rates compare "SMS service" "Vendor X costs" --differences -o json
    """
    when_ = when(at, "--at", tz) or clock.now()
    with session(ctx) as s:
        snaps = []
        for ref in (plan_a, plan_b):
            svc = catalog.get(s, ref)
            sc = catalog.current_scope(s, svc, when_)
            if sc is None:
                raise NotFound(f"service {svc.name!r} has no scope in force at {iso(when_)}")
            snaps.append(catalog.snapshot(s, svc, sc))
    rows = rate_compare.compare(*snaps)
    if differences:
        rows = [r for r in rows if r["only_in"] or r["price_a"] != r["price_b"]]
    if snaps[0].currency != snaps[1].currency:
        say(ctx, f"the plans are in {snaps[0].currency} and {snaps[1].currency}: no difference is computed")
    neg = sum(1 for r in rows if r["negative"])
    if neg:
        say(ctx, f"{neg} destination{'s' if neg != 1 else ''} priced lower in A than in B")
    emit(ctx, rows, output=output, columns=rate_compare.COLUMNS, row_style=_negative)


def _negative(row: dict) -> str | None:
    return "bold red" if row.get("negative") else None


@app.command("export")
def export(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code (or id).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write .csv or .xlsx; default stdout.")] = None,
    channel: Annotated[str, typer.Option("--channel", help="Service domain.")] = "sms",
    at: Annotated[str | None, typer.Option("--at", help="Prices in force at this time (default now).")] = None,
    tz: TzOpt = "UTC",
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Coverage and price per destination (every MCC and known network) for an agreement."""
    if out is not None:
        out_target(ctx, out, force=force)
    when_ = when(at, "--at", tz) or clock.now()
    with session(ctx) as s:
        ag = agreements.get(s, agreement)
        rows = coverage.rows(s, ag, when_, channel)
    if out is not None:
        write_table(out, rows, coverage.EXPORT_COLUMNS, sheet=f"Coverage {ag.code}", formats=COVERAGE_FORMATS)
        say(ctx, f"wrote {len(rows)} destinations to {out}")
        return
    emit(ctx, rows, output=output or Fmt.csv, columns=coverage.EXPORT_COLUMNS)
