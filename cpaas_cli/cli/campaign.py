"""`cpaas campaign …`: templates, create, estimate, send/schedule and the lifecycle."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.campaigns import drafts, lifecycle, materialise, recipients, recovery, views
from cpaas_cli.campaigns import estimate as pricing
from cpaas_cli.campaigns import senders as campaign_senders
from cpaas_cli.campaigns import templates as saved
from cpaas_cli.cli.context import OutputOpt, confirm, emit, one_more, say, session
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt, DefaultCountryOpt, TzOpt, TzOrKnownOpt
from cpaas_cli.errors import Conflict, InsufficientCredit

app = typer.Typer(no_args_is_help=True)
template_app = typer.Typer(no_args_is_help=True)
app.add_typer(template_app, name="template", help="Saved message templates (channel, sender ID, text).")

LIST_COLUMNS = ["id", "name", "channel", "sender", "state", "recipients", "progress", "estimated_cost", "cost"]
TEMPLATE_COLUMNS = ["id", "name", "channel", "sender", "text"]

CampaignArg = Annotated[str, typer.Argument(help="Campaign id (or name).")]


# ---------------------------------------------------------------- templates


@template_app.command("add")
def template_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Template name, unique in the company.")],
    company: CompanyOpt,
    sender: Annotated[str, typer.Option("--sender", "-s", help="An active sender ID of the company.")],
    text: Annotated[str, typer.Option("--text", help="Message text; {{ variable }} personalises it.")],
    channel: Annotated[str | None, typer.Option("--channel", help="Channel (default: the sender's).")] = None,
    output: OutputOpt = None,
) -> None:
    """Save a message template."""
    with session(ctx) as s:
        row = saved.add(s, company=company, name=name, sender=sender, text=text, channel=channel)
        data = saved.template_dict(s, row)
    say(ctx, f"saved template {data['name']!r} (#{data['id']})")
    emit(ctx, data, output=output)


@template_app.command("list")
def template_list(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    output: OutputOpt = None,
) -> None:
    """List message templates."""
    with session(ctx) as s:
        data = [saved.template_dict(s, r) for r in saved.list_templates(s, company=company, channel=channel)]
    emit(ctx, data, output=output, columns=TEMPLATE_COLUMNS)


@template_app.command("show")
def template_show(
    ctx: typer.Context, template: Annotated[str, typer.Argument(help="Template id or name.")], output: OutputOpt = None
) -> None:
    """Show a template and the variables it uses."""
    with session(ctx) as s:
        data = saved.template_dict(s, saved.get(s, template))
    emit(ctx, data, output=output)


@template_app.command("delete")
def template_delete(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a template; refused (exit 5, naming them) while a scheduled, waiting or running campaign uses it.

    Drafts made from it can then no longer start."""
    with session(ctx) as s:
        row = saved.get(s, template)
        saved.check_deletable(s, row)
        confirm(ctx, f"Delete template {row.name!r}?", yes)
        saved.delete(s, row)
    say(ctx, "template deleted")


# ---------------------------------------------------------------- create


@app.command("create")
def create(
    ctx: typer.Context,
    company: CompanyOpt,
    sender: Annotated[str, typer.Option("--sender", "-s", help="An active sender ID of the company.")],
    text: Annotated[str | None, typer.Option("--text", help="Message; {{ variable }} personalises it.")] = None,
    template: Annotated[str | None, typer.Option("--template", help="A saved template instead of --text.")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Contact group (repeatable).")] = None,
    file: Annotated[
        list[str] | None, typer.Option("--file", help="Recipients file CSV/XLSX/JSONL (repeatable).")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            "-m",
            help="VAR=COLUMN for files: phone=COL (default the first column), text=COL (each row's own message), "
            "or a template variable. Without variable maps every other column is a variable.",
        ),
    ] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="XLSX sheet name (default the first).")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Phone number(s), comma-separated (repeatable).")] = None,
    default_country: DefaultCountryOpt = None,
    flash: Annotated[bool, typer.Option("--flash", help="Flash SMS (shown at once, not stored).")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Name (default: 'Campaign' + date and time).")] = None,
    output: OutputOpt = None,
) -> None:
    """Create a draft campaign from groups, files and numbers (combined, de-duplicated)."""
    maps = recipients.parse_maps(map_ or [])
    files = [recipients.FileSource(path=f, maps=maps, sheet=sheet) for f in file or []]
    with session(ctx) as s:
        row = drafts.create(
            s,
            company=company,
            sender=sender,
            text=text,
            template=template,
            groups=group or [],
            files=files,
            numbers=to or [],
            flash=flash,
            name=name,
            default_country=default_country,
        )
        data = views.campaign_dict(s, row)
    ex = data["excluded"]
    say(
        ctx,
        f"created draft campaign #{data['id']}: {data['recipients']} recipients "
        f"({ex['stop_list']} stop-listed, {ex['invalid']} invalid, {ex['duplicate']} duplicates left out)",
    )
    emit(ctx, data, output=output)


@app.command("estimate")
def estimate(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Recipients, exclusions, destinations, segments, encoding, estimated cost and whether credit suffices."""
    with session(ctx) as s:
        c = views.get(s, campaign)
        data = pricing.estimate_dict(c, pricing.estimate(s, c))
    emit(ctx, data, output=output)


# ---------------------------------------------------------------- lifecycle


def _started(ctx: typer.Context, outcome: materialise.StartOutcome, data: dict, output) -> None:
    if outcome.started:
        say(ctx, f"campaign #{data['id']} started: {data['messages']} messages queued")
    elif outcome.reason and data["state"] != "failed":
        say(ctx, f"campaign #{data['id']} is {data['state']} ({outcome.reason})")
    emit(ctx, data, output=output)
    if data["state"] == "failed" and outcome.estimate is not None and not outcome.estimate.fits:
        raise InsufficientCredit(f"campaign #{data['id']} failed: {outcome.reason}")


@app.command("send")
def send(
    ctx: typer.Context,
    campaign: CampaignArg,
    allow_unpriced: Annotated[
        bool,
        typer.Option("--allow-unpriced", help="Send even when some messages have no price (no rate, blocked)."),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Start a draft now (companies with moderation: it waits for approval).

    Refused (exit 5, nothing changed) when some messages have no price, naming
    the destinations, unless --allow-unpriced.
    """
    with session(ctx) as s:
        row = views.get(s, campaign)
        # what refuses a send whatever the prices, first (the state, a channel without a gateway)
        lifecycle.check_action(row, "send")
        campaign_senders.require_gateway(row.channel)
        unpriced = pricing.unpriced_summary(pricing.estimate(s, row))
        if unpriced and not allow_unpriced:
            raise Conflict(f"campaign #{row.id}: {unpriced}; add the rates, or give --allow-unpriced")
        if unpriced:
            say(ctx, f"{unpriced} (sent anyway: --allow-unpriced)")
        outcome = lifecycle.send(s, row)
        data = views.campaign_dict(s, outcome.campaign)
    _started(ctx, outcome, data, output)


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    campaign: CampaignArg,
    at: Annotated[str, typer.Option("--at", help="Local start time, e.g. '2026-12-01 09:00'.")],
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Schedule a draft for a future time in a time zone."""
    with session(ctx) as s:
        row = lifecycle.schedule(s, views.get(s, campaign), at=at, tz=tz)
        data = views.campaign_dict(s, row)
    _say_schedule(ctx, data)
    emit(ctx, data, output=output)


def _say_schedule(ctx: typer.Context, data: dict) -> None:
    local = f"{data['scheduled_at_local']} {data['schedule_tz']}, " if data.get("scheduled_at_local") else ""
    say(ctx, f"campaign #{data['id']} is {data['state']} for {local}{data['scheduled_at']} UTC")


@app.command("reschedule")
def reschedule(
    ctx: typer.Context,
    campaign: CampaignArg,
    at: Annotated[str, typer.Option("--at", help="New local start time, e.g. '2026-12-01 09:00'.")],
    tz: TzOrKnownOpt = None,
    output: OutputOpt = None,
) -> None:
    """Move a scheduled campaign to another future time (without --tz, --at is read
    in the zone the campaign was scheduled in)."""
    with session(ctx) as s:
        row = recovery.reschedule(s, views.get(s, campaign), at=at, tz=tz)
        data = views.campaign_dict(s, row)
    _say_schedule(ctx, data)
    emit(ctx, data, output=output)


@app.command("unschedule")
def unschedule(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Take a scheduled campaign back to a draft (send or schedule it again later)."""
    with session(ctx) as s:
        row = recovery.unschedule(s, views.get(s, campaign))
        data = views.campaign_dict(s, row)
    say(ctx, f"campaign #{data['id']} is {data['state']}")
    emit(ctx, data, output=output)


@app.command("retry")
def retry(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Start again a campaign that failed for insufficient credit (after a payment or a higher limit).

    Still short of credit, it stays failed and the command exits 7.
    """
    with session(ctx) as s:
        outcome = recovery.retry(s, views.get(s, campaign))
        data = views.campaign_dict(s, outcome.campaign)
    _started(ctx, outcome, data, output)


@app.command("start")
def start(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Start a scheduled campaign now."""
    with session(ctx) as s:
        outcome = lifecycle.start(s, views.get(s, campaign))
        data = views.campaign_dict(s, outcome.campaign)
    _started(ctx, outcome, data, output)


@app.command("approve")
def approve(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Approve a campaign waiting for moderation (it starts, or waits for its schedule)."""
    with session(ctx) as s:
        outcome = lifecycle.approve(s, views.get(s, campaign))
        data = views.campaign_dict(s, outcome.campaign)
    _started(ctx, outcome, data, output)


@app.command("reject")
def reject(
    ctx: typer.Context,
    campaign: CampaignArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the campaign).")] = None,
    output: OutputOpt = None,
) -> None:
    """Reject a campaign waiting for moderation (it becomes failed)."""
    with session(ctx) as s:
        row = lifecycle.reject(s, views.get(s, campaign), reason=reason)
        data = views.campaign_dict(s, row)
    emit(ctx, data, output=output)


def _simple(ctx: typer.Context, campaign: str, action: str, output) -> None:
    with session(ctx) as s:
        row = getattr(lifecycle, action)(s, views.get(s, campaign))
        data = views.campaign_dict(s, row, views.progress(s, [row.id]).get(row.id))
    say(ctx, f"campaign #{data['id']} is {data['state']}")
    emit(ctx, data, output=output)


@app.command("pause")
def pause(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Pause a running campaign."""
    _simple(ctx, campaign, "pause", output)


@app.command("resume")
def resume(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Resume a paused campaign."""
    _simple(ctx, campaign, "resume", output)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    campaign: CampaignArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    output: OutputOpt = None,
) -> None:
    """Cancel a paused or scheduled campaign (it cannot be resumed, only repeated).

    Off a terminal it needs --yes (exit 2 without).
    """
    with session(ctx) as s:
        row = views.get(s, campaign)
        lifecycle.check_action(row, "cancel", lock=False)
        confirm(ctx, f"Cancel campaign #{row.id} {row.name!r}? Its queued messages are dropped.", yes)
    _simple(ctx, campaign, "cancel", output)


def _held(ctx: typer.Context, campaign: str, action: str, output) -> None:
    from cpaas_cli.dispatch import aftercrash

    with session(ctx) as s:
        row = views.get(s, campaign)
        data = getattr(aftercrash, action)(s, row.id)
        data["queue"] = views.progress(s, [row.id]).get(row.id, {})
    done = data.get("released", data.get("failed"))
    say(ctx, f"campaign #{row.id}: {done} held message(s) {'released' if action == 'release_unknown' else 'failed'}")
    emit(ctx, data, output=output)


@app.command("release-unknown")
def release_unknown(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Send again the messages held as unknown after a crash (connection --after-crash hold).

    They may have reached the handset already: a release accepts possible duplicates. Not charged again.
    """
    _held(ctx, campaign, "release_unknown", output)


@app.command("fail-unknown")
def fail_unknown(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Fail the messages held as unknown after a crash: never sent again, their charge given back."""
    _held(ctx, campaign, "fail_unknown", output)


@app.command("repeat")
def repeat(
    ctx: typer.Context,
    campaign: CampaignArg,
    name: Annotated[str | None, typer.Option("--name", help="Name of the copy.")] = None,
    output: OutputOpt = None,
) -> None:
    """Copy a finished (completed, failed or canceled) campaign into a new draft."""
    with session(ctx) as s:
        row = lifecycle.repeat(s, views.get(s, campaign), name=name)
        data = views.campaign_dict(s, row)
    say(ctx, f"created draft campaign #{data['id']} from #{campaign}")
    emit(ctx, data, output=output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    campaign: CampaignArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a campaign that is not running, with its recipients and queued messages."""
    with session(ctx) as s:
        row = views.get(s, campaign)
        lifecycle.check_action(row, "delete", lock=False)
        confirm(ctx, f"Delete campaign #{row.id} {row.name!r}?", yes)
        cid = row.id
        data = {"id": cid, "deleted": True, **lifecycle.delete(s, row)}
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    state: Annotated[str | None, typer.Option("--state", help="Only campaigns in this state.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many (newest first).")] = None,
    output: OutputOpt = None,
) -> None:
    """List campaigns, newest first, with state, progress, recipients and cost."""
    with session(ctx) as s:
        rows = views.list_campaigns(s, company=company, state=state, limit=one_more(limit))
        counts = views.progress(s, [r.id for r in rows if r.id is not None])
        data = [views.campaign_dict(s, r, counts.get(r.id or 0)) for r in rows]
    emit(ctx, data, output=output, columns=LIST_COLUMNS, limit=limit)


@app.command("show")
def show(ctx: typer.Context, campaign: CampaignArg, output: OutputOpt = None) -> None:
    """Show one campaign: state, progress, recipients, queue and cost."""
    with session(ctx) as s:
        row = views.get(s, campaign)
        counts = views.progress(s, [row.id or 0]).get(row.id or 0)
        data = views.campaign_dict(s, row, counts)
    emit(ctx, data, output=output)
