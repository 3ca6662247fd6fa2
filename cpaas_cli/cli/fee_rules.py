"""`cpaas fee-rules …`: recurring and one-time fee rules (e.g. sender ID fees) and the fee run.

The group was `cpaas fees` (with the rules under `fees rule`), one letter from
`cpaas fee` (one-off additional fees): ``legacy_app`` keeps that spelling for a
release, hidden, with a deprecation warning on stderr."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, when
from cpaas_cli.cli.options import TzOpt
from cpaas_cli.recurring import service as fees

app = typer.Typer(no_args_is_help=True)

RULE_COLUMNS = ["id", "agreement", "subject_kind", "subject_ref", "kind", "every", "start_day", "amount",
                "effective_from", "effective_till"]  # fmt: skip
RUN_COLUMNS = [
    "rule_id",
    "agreement",
    "subject",
    "period_start",
    "at",
    "attempt",
    "amount",
    "status",
    "next_attempt_at",
]


class Kind(str, Enum):
    setup = "setup"
    usage = "usage"


class Every(str, Enum):
    month = "month"
    week = "week"


@app.command("add")
def rule_add(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code or id that pays the fee.")],
    subject_kind: Annotated[str, typer.Option("--subject-kind", help="What the fee is for, e.g. sender_id.")],
    subject_ref: Annotated[str, typer.Option("--subject-ref", help="Which one (e.g. the sender ID's id).")],
    kind: Annotated[Kind, typer.Option("--kind", help="setup (once) or usage (every period).")],
    effective_from: Annotated[str, typer.Option("--from", help="Start (setup fee: when it is charged).")],
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default indefinitely.")] = None,
    every: Annotated[Every, typer.Option("--every", help="Usage fee period: month or week.")] = Every.month,
    start_day: Annotated[int, typer.Option("--start-day", help="Month day 1-31, or weekday 1-7 (Monday = 1).")] = 1,
    days_before: Annotated[int, typer.Option("--days-before", help="Charge N days before the period starts.")] = 0,
    retry_hours: Annotated[int, typer.Option("--retry-hours", help="On insufficient funds, retry every H hours.")] = 1,
    max_retries: Annotated[int, typer.Option("--max-retries", help="At most M retries, then the period fails.")] = 0,
    tz: TzOpt = "UTC",
    description: Annotated[str | None, typer.Option("--description")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Fee amount in the agreement currency.")] = None,
    output: OutputOpt = None,
) -> None:
    """Add a fixed-amount fee rule for a subject on an agreement (sender ID fees: `cpaas sender fee-rule`)."""
    with session(ctx) as s:
        row = fees.add_rule(
            s,
            agreement_ref=agreement,
            subject_kind=subject_kind,
            subject_ref=subject_ref,
            kind=kind.value,
            amount=amount,
            effective_from=when(effective_from, "--from", tz),
            effective_till=when(effective_till, "--till", tz),
            every=every.value,
            start_day=start_day,
            days_before=days_before,
            retry_hours=retry_hours,
            max_retries=max_retries,
            tz=tz,
            description=description,
        )
        data = fees.rule_dict(row, agreement)
    emit(ctx, data, output=output)


@app.command("list")
def rule_list(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement")] = None,
    subject_kind: Annotated[str | None, typer.Option("--subject-kind")] = None,
    subject_ref: Annotated[str | None, typer.Option("--subject-ref")] = None,
    output: OutputOpt = None,
) -> None:
    """List fee rules."""
    with session(ctx) as s:
        data = fees.list_rules(s, agreement_ref=agreement, subject_kind=subject_kind, subject_ref=subject_ref)
    emit(ctx, data, output=output, columns=RULE_COLUMNS)


@app.command("end")
def rule_end(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument(help="Fee rule id.")],
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    output: OutputOpt = None,
) -> None:
    """End a fee rule: no period starting at or after the end is charged."""
    with session(ctx) as s:
        data = fees.rule_dict(fees.end_rule(s, rule_id, at=when(at, "--at")))
    emit(ctx, data, output=output)


@app.command("run")
def run(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Charge what is due by this time (default now).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the attempts; write nothing.")] = False,
    output: OutputOpt = None,
) -> None:
    """Charge every fee due (and retries due); safe to run again."""
    with session(ctx) as s:
        res = fees.run(s, as_of=when(as_of, "--as-of"), dry_run=dry_run)
    say(ctx, f"charged {res['charged']}, retrying {res['retrying']}, failed {res['failed']}")
    emit(ctx, res["attempts"], output=output, columns=RUN_COLUMNS)


@app.command("runs")
def runs(
    ctx: typer.Context,
    rule_id: Annotated[int | None, typer.Option("--rule", help="Only this rule.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="charged, retrying or failed.")] = None,
    output: OutputOpt = None,
) -> None:
    """List fee periods with their state (charged, retrying, failed)."""
    with session(ctx) as s:
        data = fees.list_runs(s, rule_id=rule_id, status=status)
    emit(ctx, data, output=output)


# ---------------------------------------------------------------- the old spelling

LEGACY_WARNING = (
    "warning: `cpaas fees` is deprecated and will be removed; use `cpaas fee-rules` "
    "(`fees rule add|list|end` is `fee-rules add|list|end`, `fees run|runs` is `fee-rules run|runs`)"
)

legacy_app = typer.Typer(no_args_is_help=True)
_legacy_rules = typer.Typer(no_args_is_help=True)
legacy_app.add_typer(_legacy_rules, name="rule", help="Fee rules: what is charged, how often, with which retries.")
_legacy_rules.command("add")(rule_add)
_legacy_rules.command("list")(rule_list)
_legacy_rules.command("end")(rule_end)
legacy_app.command("run")(run)
legacy_app.command("runs")(runs)


@legacy_app.callback()
def _deprecated(ctx: typer.Context) -> None:
    say(ctx, LEGACY_WARNING)
