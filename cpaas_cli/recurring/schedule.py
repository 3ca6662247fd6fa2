"""When fees fall due: a pure scheduler (no database, no clock).

A rule is either

* ``setup``: one charge, due at the rule's ``effective_from`` (the anchor);
* ``usage``: one charge per fee period. Periods start at local midnight (the
  rule's zone) of day ``start_day`` of each month (a day past a short month's
  end means its last day) or of ISO weekday ``start_day`` (1 = Monday) of each
  week. A period is charged when it starts inside ``[effective_from,
  effective_till)``; the charge is due ``days_before`` days before the period
  starts (but never before ``effective_from``).

Retries: an attempt refused for insufficient funds is tried again
``retry_hours`` after the attempt, at most ``max_retries`` more times; after
that the period is ``failed``. Each call returns at most one attempt per
period, the earliest one due by ``as_of``; periods missed while nothing ran
are all returned (catch-up), oldest first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cpaas_cli.billing.periods import day_in_month, local_midnight

KINDS = ("setup", "usage")
EVERY = ("month", "week")


@dataclass(frozen=True)
class Rule:
    kind: str
    effective_from: datetime
    effective_till: datetime | None = None
    every: str | None = "month"
    start_day: int = 1
    days_before: int = 0
    retry_hours: int = 1
    max_retries: int = 0
    tz: str = "UTC"

    @classmethod
    def of(cls, row) -> Rule:
        return cls(
            kind=row.kind,
            effective_from=row.effective_from,
            effective_till=row.effective_till,
            every=row.every,
            start_day=row.start_day,
            days_before=row.days_before,
            retry_hours=row.retry_hours,
            max_retries=row.max_retries,
            tz=row.tz,
        )


@dataclass(frozen=True)
class RunState:
    status: str  # charged | retrying | failed
    attempts: int
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    period_start: datetime
    at: datetime  # when this attempt is due
    number: int  # 1 = first attempt, 2 = first retry, ...


def problems(rule: Rule) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if rule.kind not in KINDS:
        out.append(("kind", f"must be one of {', '.join(KINDS)}"))
    if rule.kind == "usage":
        if rule.every not in EVERY:
            out.append(("every", f"must be one of {', '.join(EVERY)}"))
        elif rule.every == "month" and not 1 <= rule.start_day <= 31:
            out.append(("start_day", "must be 1-31 for a monthly fee"))
        elif rule.every == "week" and not 1 <= rule.start_day <= 7:
            out.append(("start_day", "must be 1-7 (1 = Monday) for a weekly fee"))
    if rule.days_before < 0 or rule.days_before > 31:
        out.append(("days_before", "must be 0-31"))
    if rule.retry_hours < 1:
        out.append(("retry_hours", "must be 1 or more"))
    if rule.max_retries < 0:
        out.append(("max_retries", "must be 0 or more"))
    if rule.effective_till is not None and rule.effective_till <= rule.effective_from:
        out.append(("effective_till", "must be later than effective_from"))
    return out


def _local(u: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return u.astimezone(ZoneInfo(tz)).date()


def period_starts(rule: Rule) -> Iterator[datetime]:
    """Fee period starts in order (endless when the rule has no end)."""
    if rule.kind == "setup":
        yield rule.effective_from.astimezone(UTC)
        return
    d0 = _local(rule.effective_from, rule.tz)
    if rule.every == "week":
        d = d0 + timedelta(days=(rule.start_day - d0.isoweekday()) % 7)
        step_week = True
    else:
        y, m = d0.year, d0.month
        d = day_in_month(y, m, rule.start_day)
        step_week = False
    while True:
        start = local_midnight(rule.tz, d)
        if rule.effective_till is not None and start >= rule.effective_till:
            return
        if start >= rule.effective_from:
            yield start
        if step_week:
            d = d + timedelta(days=7)
        else:
            y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
            d = day_in_month(y, m, rule.start_day)


def due_at(rule: Rule, period_start: datetime) -> datetime:
    if rule.kind == "setup":
        return period_start
    return max(period_start - timedelta(days=rule.days_before), rule.effective_from.astimezone(UTC))


def due(rule: Rule, as_of: datetime, runs: Mapping[datetime, RunState]) -> list[Attempt]:
    """The attempts due by ``as_of`` given the runs so far (keyed by period start)."""
    out: list[Attempt] = []
    for start in period_starts(rule):
        first = due_at(rule, start)
        if first > as_of:
            break
        st = runs.get(start)
        if st is None:
            out.append(Attempt(start, first, 1))
        elif st.status == "retrying" and st.next_attempt_at is not None and st.next_attempt_at <= as_of:
            out.append(Attempt(start, st.next_attempt_at, st.attempts + 1))
    return out


def after(rule: Rule, attempt: Attempt, *, charged: bool) -> RunState:
    """The state of a period after an attempt."""
    if charged:
        return RunState("charged", attempt.number)
    if attempt.number - 1 < rule.max_retries:
        return RunState("retrying", attempt.number, attempt.at + timedelta(hours=rule.retry_hours))
    return RunState("failed", attempt.number)
