"""`cpaas report …`: traffic summaries, charts, campaign reports and saved SQL reports."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.cli.context import ForceOpt, OutputOpt, emit, one_more, out_target, say, session, state, when
from cpaas_cli.cli.options import CompanyFilterOpt, TzOpt
from cpaas_cli.cli.output import terminal_safe
from cpaas_cli.db.engine import get_engine
from cpaas_cli.edr.export import EdrFilter
from cpaas_cli.errors import InvalidInput, NotFound
from cpaas_cli.imports.textfile import read_utf8
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref
from cpaas_cli.reports import charts, sandbox, saved
from cpaas_cli.reports import margin as mg
from cpaas_cli.reports import summary as sm

app = typer.Typer(no_args_is_help=True)

FromOpt = Annotated[str | None, typer.Option("--from", help="Events at or after this time (read in --tz).")]
TillOpt = Annotated[str | None, typer.Option("--till", help="Events before this time (read in --tz).")]
AgreementOpt = Annotated[str | None, typer.Option("--agreement", help="Agreement code or id.")]
StatusOpt = Annotated[list[str] | None, typer.Option("--status", help="Only these statuses (repeatable).")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Only this channel, e.g. sms.")]


def _filter(ctx, s, *, from_, till, company, agreement, status, channel, tz, campaign=None, window=True) -> EdrFilter:
    return EdrFilter(
        since=when(from_, "--from", tz),
        till=when(till, "--till", tz),
        company_id=by_ref(s, Company, company, what="company").id if company else None,
        agreement_id=agreements.get(s, agreement).id if agreement else None,
        campaign_id=campaign,
        statuses=list(status or []),
        channel=channel,
    ).check(window=window)


@app.command("summary")
def summary_cmd(
    ctx: typer.Context,
    from_: FromOpt = None,
    till: TillOpt = None,
    company: CompanyFilterOpt = None,
    agreement: AgreementOpt = None,
    status: StatusOpt = None,
    channel: ChannelOpt = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help=f"Group by (comma-separated or repeated): {', '.join(sm.DIMENSIONS)}."),
    ] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Traffic summary: messages and parts counted apart, outcome shares, cost per currency.

    delivered includes seen; pending is every status that is not final yet.
    The shares are percentages of messages (not parts).
    """
    dims = sm.parse_by(by)
    with session(ctx) as s:
        flt = _filter(
            ctx, s, from_=from_, till=till, company=company, agreement=agreement, status=status, channel=channel, tz=tz
        )
        rows = sm.summary(s.connection(), flt, by=dims, tz=tz)
    emit(ctx, rows, output=output, columns=sm.columns(dims))


@app.command("margin")
def margin_cmd(
    ctx: typer.Context,
    from_: FromOpt = None,
    till: TillOpt = None,
    by: Annotated[
        str | None, typer.Option("--by", help=f"Group by one of: {', '.join(mg.BY)} (default: one row per currency).")
    ] = None,
    company: CompanyFilterOpt = None,
    agreement: AgreementOpt = None,
    channel: ChannelOpt = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Revenue (client charges), vendor cost and margin per group, exact from micro-units.

    cost_unknown counts messages whose vendor cost is unknown (no vendor plan on
    the connection, no vendor price for the destination, no connection): they are
    never counted as zero, and the margin covers the messages of known cost only.
    negative marks a margin below zero (red in a terminal's table). Messages that
    never left (failed without a submit) are not counted.

    Example: cpaas report margin --from 2026-03-01 --till 2026-04-01 --by country -o json
    """
    dim = mg.check_by(by)
    with session(ctx) as s:
        flt = _filter(
            ctx, s, from_=from_, till=till, company=company, agreement=agreement, status=None, channel=channel, tz=tz
        )
        rows = mg.margin(s.connection(), flt, by=dim)
    bad = sum(1 for r in rows if r["negative"])
    if bad:
        say(ctx, f"{bad} group{'s' if bad != 1 else ''} with a negative margin")
    emit(ctx, rows, output=output, columns=mg.columns(dim), row_style=mg.negative)


@app.command("chart")
def chart_cmd(
    ctx: typer.Context,
    metric: Annotated[
        str, typer.Option("--metric", help="count (messages), parts, cost, or otp-conversion (with --integration).")
    ] = "count",
    by: Annotated[str, typer.Option("--by", help="day, week, month or another summary dimension.")] = "day",
    from_: FromOpt = None,
    till: TillOpt = None,
    company: CompanyFilterOpt = None,
    agreement: AgreementOpt = None,
    status: StatusOpt = None,
    channel: ChannelOpt = None,
    tz: TzOpt = "UTC",
    out: Annotated[
        str | None, typer.Option("--out", help="Also write the chart to an image file (.png, .svg or .pdf).")
    ] = None,
    width: Annotated[int | None, typer.Option("--width", min=20, help="Terminal chart width in columns.")] = None,
    integration: Annotated[
        str | None, typer.Option("--integration", help="2FA integration id or name (--metric otp-conversion).")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Draw messages or cost over days (or another dimension) in the terminal, and optionally to a file.

    Without --from/--till the last 30 days up to now are drawn. --metric otp-conversion draws
    the share of a 2FA integration's sent codes that were verified, by day (`otp stats --by day`).
    """
    if metric == OTP_CONVERSION or integration is not None:
        _otp_chart(ctx, integration, metric, by, from_, till, tz, out, width, force)
        return
    dims = sm.parse_by([by])
    if len(dims) != 1:
        raise InvalidInput("--by: one dimension for a chart")
    if metric not in charts.METRICS:
        raise InvalidInput(f"--metric: choose one of {', '.join(charts.METRICS)}")
    if out:
        charts.check_suffix(out)
        out_target(ctx, out, force=force)
    with session(ctx) as s:
        flt = _filter(
            ctx,
            s,
            from_=from_,
            till=till,
            company=company,
            agreement=agreement,
            status=status,
            channel=channel,
            tz=tz,
            window=False,
        )
        if flt.till is None:
            flt.till = clock.now()
        if flt.since is None:
            flt.since = when("today", "--from", tz) - timedelta(days=29)
        flt.check()
        rows = sm.summary(s.connection(), flt, by=dims, tz=tz)
    labels, data = charts.series(rows, by=dims[0], metric=metric)
    heading = charts.title(metric, dims[0])
    chart = charts.terminal(labels, data, heading=heading, width=width)
    sys.stdout.write("\n".join(terminal_safe(line) for line in chart.split("\n")))
    if out:
        charts.image(labels, data, out, heading=heading)
        say(ctx, f"chart written to {out}")


OTP_CONVERSION = "otp-conversion"


def _otp_chart(ctx, integration, metric, by, from_, till, tz, out, width, force) -> None:
    """`report chart --metric otp-conversion --integration X`: conversion by local day (issue 28 item 6)."""
    from cpaas_cli.otp import integrations
    from cpaas_cli.otp import stats as otp_stats

    if metric != OTP_CONVERSION or integration is None:
        raise InvalidInput("--metric otp-conversion and --integration go together")
    if by != "day":
        raise InvalidInput("--by: otp-conversion is drawn by day")
    if out:
        charts.check_suffix(out)
        out_target(ctx, out, force=force)
    till_at = when(till, "--till", tz) or clock.now()
    since = when(from_, "--from", tz) or when("today", "--from", tz) - timedelta(days=29)
    with session(ctx) as s:
        row = integrations.get(s, integration)
        rows = otp_stats.stats(s.connection(), row, since=since, till=till_at, by="day", tz=tz)
    labels, data = otp_stats.conversion_series(rows)
    heading = f"2FA conversion % by day ({row.name})"
    chart = charts.terminal(labels, data, heading=heading, width=width)
    sys.stdout.write("\n".join(terminal_safe(line) for line in chart.split("\n")))
    if out:
        charts.image(labels, data, out, heading=heading, ymax=100)
        say(ctx, f"chart written to {out}")


@app.command("campaign")
def campaign_cmd(
    ctx: typer.Context,
    campaign_id: Annotated[int, typer.Argument(help="Campaign id (as recorded on its EDRs).")],
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """One campaign: totals, status breakdown, cost, and per-country figures."""
    with session(ctx) as s:
        flt = EdrFilter(since=None, till=None, campaign_id=campaign_id).check(window=False)
        conn = s.connection()
        total = sm.summary(conn, flt, by=[], tz=tz)
        by_status = sm.summary(conn, flt, by=["status"], tz=tz)
        by_country = sm.summary(conn, flt, by=["country"], tz=tz)
    if not total:
        raise NotFound(f"no EDRs for campaign {campaign_id}")
    data = {
        "campaign_id": campaign_id,
        "totals": total,
        "by_status": [{k: r[k] for k in ("status", "messages", "parts", "cost", "currency")} for r in by_status],
        "by_country": by_country,
    }
    fmt = output or state(ctx).output
    if fmt is None or fmt.value == "table":
        emit(ctx, total, output=output, columns=sm.columns([]))
        emit(ctx, data["by_status"], output=output, columns=["status", "messages", "parts", "cost", "currency"])
        emit(ctx, by_country, output=output, columns=sm.columns(["country"]))
        return
    emit(ctx, data, output=output)


# ------------------------------------------------------------ saved SQL reports


@app.command("define")
def define_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Report name.")],
    sql: Annotated[Path, typer.Option("--sql", help="File with one SELECT (or WITH … SELECT); binds as :name.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="name:type[:default] (types: text, int, number, date, datetime, bool, ident; name! = required; "
            "x_ names are identifiers from the schema).",
        ),
    ] = None,
    category: Annotated[str, typer.Option("--category", help="traffic, finance or audit.")] = "traffic",
    description: Annotated[str | None, typer.Option("--description", help="What the report shows.")] = None,
    client_visible: Annotated[
        bool, typer.Option("--client-visible/--internal", help="Also offered to clients (default: internal).")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Change an existing report of that name.")] = False,
    output: OutputOpt = None,
) -> None:
    """Save a SQL report template with typed parameters."""
    text = read_utf8(sql, "--sql")
    with session(ctx) as s:
        data = saved.define(
            s,
            name=name,
            sql=text,
            params=list(param or []),
            category=category,
            description=description,
            client_visible=client_visible,
            replace=replace,
        )
    emit(ctx, data, output=output)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option("--category", help="traffic, finance or audit.")] = None,
    client: Annotated[
        bool | None,
        typer.Option("--client-visible/--internal", help="Only client-visible (or only internal) reports."),
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="Part of the name.")] = None,
    output: OutputOpt = None,
) -> None:
    """List saved reports by category and name."""
    with session(ctx) as s:
        rows = saved.list_reports(s, category=category, client_visible=client, search=search)
    emit(ctx, rows, output=output, columns=["id", "name", "category", "client_visible", "description"])


@app.command("show")
def show_cmd(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Report name or id.")], output: OutputOpt = None
) -> None:
    """Show a saved report: SQL and parameters."""
    with session(ctx) as s:
        data = saved.as_dict(saved.get(s, name))
    emit(ctx, data, output=output)


@app.command("delete")
def delete_cmd(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Report name or id.")], output: OutputOpt = None
) -> None:
    """Delete a saved report."""
    with session(ctx) as s:
        data = saved.delete(s, name)
    emit(ctx, data, output=output)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Report name or id.")],
    param: Annotated[list[str] | None, typer.Option("--param", help="name=value (repeatable).")] = None,
    tz: TzOpt = "UTC",
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="At most this many rows (default and maximum: [report] max_rows)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Stop the query after this many seconds (default and maximum: [report] timeout)."
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Run a saved report in the read-only sandbox with its parameters; -o csv for a CSV file.

    The report sees no secret column, runs as one statement, stops at the time
    limit (exit 4) and returns at most the row cap (a note on stderr says when
    rows were left out).
    """
    given: dict[str, str] = {}
    for p in param or []:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            raise InvalidInput(f"--param {p!r}: write name=value")
        given[k.strip()] = v
    settings = state(ctx).settings
    caps = sandbox.limits(settings)
    if limit is not None and limit > caps.max_rows:
        raise InvalidInput(f"--limit: at most {caps.max_rows} rows ([report] max_rows)")
    if timeout is not None and timeout > caps.timeout:
        raise InvalidInput(f"--timeout: at most {caps.timeout:g} s ([report] timeout)")
    with session(ctx) as s:
        report = saved.get(s, name)
        s.expunge(report)
    engine = get_engine(settings.database_url)
    url = sandbox.report_url(settings) if engine.dialect.name == "postgresql" else None
    shown = limit or caps.max_rows
    cols, rows, _more = saved.run(
        engine,
        report,
        given,
        tz=tz,
        limit=one_more(shown),
        timeout=timeout or caps.timeout,
        report_url=url,
    )
    at_cap = f"no report shows more than {caps.max_rows:,} rows ([report] max_rows)"
    emit(ctx, rows, output=output, columns=cols, limit=shown, limit_hint=at_cap if shown == caps.max_rows else None)
