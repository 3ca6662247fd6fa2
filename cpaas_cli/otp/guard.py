"""The OTP fraud guard (issue 28, item 4): SMS pumping is stopped before anything is sent.

``otp.requests.guard`` calls :func:`check` for every send, after its own checks
(the integration's state, the per-number limit of ``max_sends``) and before
anything is written; a refused send therefore costs nothing. In this order:

1. the country allow-list (none: every country) → ``Denied``, HTTP 403
   ``otp-country-not-allowed``;
2. a blocked prefix → ``Denied``, 403 ``otp-prefix-blocked``;
3. the conversion alarm (platform-side integrations only; a client-side one
   never sees a verification): over the last ``window_s`` seconds, when the
   number's prefix had at least ``min_sends`` counted sends and fewer than
   ``min_conversion`` of them were verified, the prefix is blocked (a row of
   ``otp_guard_block`` with the figures, an audit row, a log warning and an
   e-mail to the account addresses of the company's agreements) and this send
   is refused as in 2. A send counts once it is verified, closed (expired,
   cancelled, locked) or older than ``grace_s`` seconds: a code just sent has
   had no time to come back. A failed send (the vendor refused it) never counts.
4. sends per hour to the number, to its prefix, to its country → ``TooMany``,
   exit 5, HTTP 429 ``otp-number-hour-limit`` / ``otp-prefix-hour-limit`` /
   ``otp-country-hour-limit`` with ``retryAfter``.

An e-mail integration (channel ``email``) has only the per-number limit, counted per
e-mail address: an address has no prefix and no country, so the allow-list, the
prefix blocks, the conversion alarm and the prefix and country limits do not apply.

A prefix is the country calling code and the first ``prefix_digits`` national
digits (6 by default: 34 620 000 for +34 620 000 123), so a prefix is a block of
numbers of the same size whatever the country's code length.

The refused send's own transaction is rolled back by its caller, so what the
guard must keep (the block, the count of refused sends and the cost they
saved) is written in a transaction of its own (:func:`_write`). When the send
is one of a group written in one transaction (the HTTP API, ``otp/group.py``),
the group's session carries a list under :data:`DEFERRED`: the writes go there
instead, and the group runs them in its own transaction once the refused send's
savepoint is rolled back (a second transaction would wait for the group's own
write lock on SQLite); the e-mail of a block then goes after the group's commit
(:data:`AFTER_COMMIT`), never inside the writer. The cost saved
is counted in integer micro-units: each send refused for a blocked prefix adds
the price the rate tree gives the prefix's first refused number (the agreement
of the integration's sender, the integration's segments), as `campaign
estimate` prices a message.

The e-mail goes through ``mail.py`` with the ``[smtp]`` settings of the
environment (``CPAAS_SMTP_HOST``…, or the config file of ``CPAAS_CONFIG`` /
``./cpaas.toml``). When it cannot go (no SMTP server, no address, the server
refused it), the block row's ``notice`` says why and a warning is logged:
nothing is dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from phonenumbers import phonenumberutil as pnu
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.campaigns.destinations import destination
from cpaas_cli.db import groupcommit
from cpaas_cli.db.engine import session_scope
from cpaas_cli.errors import CpaasError, Denied, InvalidInput, NotFound, Problem, TooMany, refusal
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.models.otp_guard import OtpGuard, OtpGuardBlock
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

log = logging.getLogger("cpaas.otp.guard")

R = OtpRequest.__table__
B = OtpGuardBlock.__table__
HOUR = 3600


@dataclass(frozen=True)
class Limits:
    """One integration's guard settings (the defaults when it has no ``otp_guard`` row)."""

    per_number_hour: int = 10
    per_prefix_hour: int = 200
    per_country_hour: int = 0
    countries: tuple[str, ...] = ()
    prefix_digits: int = 6
    min_sends: int = 20
    min_conversion_bp: int = 2000
    window_s: int = 3600
    grace_s: int = 60


DEFAULTS = Limits()
BOUNDS = {  # field → (least, most)
    "per_number_hour": (0, 1_000_000),
    "per_prefix_hour": (0, 1_000_000),
    "per_country_hour": (0, 100_000_000),
    "prefix_digits": (1, 12),
    "min_sends": (1, 1_000_000),
    "min_conversion_bp": (0, 10_000),
    "window_s": (60, 7 * 86_400),
    "grace_s": (0, 3_600),
}
OPTION = {  # field → the CLI option that sets it (problems name the option)
    "per_number_hour": "--per-number-hour",
    "per_prefix_hour": "--per-prefix-hour",
    "per_country_hour": "--per-country-hour",
    "countries": "--countries",
    "prefix_digits": "--prefix-digits",
    "min_sends": "--min-sends",
    "min_conversion_bp": "--min-conversion",
    "window_s": "--alarm-window",
    "grace_s": "--grace",
}


# ---- settings -------------------------------------------------------------------------------


def limits_of(session: Session, integration_id: int) -> Limits:
    row = session.get(OtpGuard, integration_id)
    if row is None:
        return DEFAULTS
    values = {f.name: getattr(row, f.name) for f in fields(Limits) if f.name != "countries"}
    return Limits(**values, countries=tuple(c for c in (row.countries or "").split(",") if c))


def parse_conversion(text: str) -> int:
    """'0.2' or '20%' → 2000 basis points; InvalidInput otherwise."""
    raw = text.strip()
    try:
        value = Decimal(raw[:-1]) / 100 if raw.endswith("%") else Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not 0 <= value <= 1 or (value * 10_000) % 1:
        problem = Problem("--min-conversion", f"a share from 0 to 1 (0.2) or a percentage (20%), not {raw!r}")
        raise InvalidInput(str(problem), problems=[problem])
    return int(value * 10_000)


def parse_countries(text: str) -> tuple[str, ...]:
    """'ES, fr' → ('ES', 'FR'); '' → () (every country). InvalidInput for an unknown code."""
    got: list[str] = []
    problems = []
    for part in text.split(","):
        code = part.strip().upper()
        if not code:
            continue
        if code not in pnu.SUPPORTED_REGIONS:
            problems.append(Problem("--countries", f"not an ISO country code: {code[:10]!r}"))
        elif code not in got:
            got.append(code)
    if problems:
        raise InvalidInput.from_problems(problems, "--countries")
    return tuple(got)


def configure(session: Session, integration: OtpIntegration, **changes: Any) -> Limits:
    """Change the given settings (None: unchanged) of ``integration``; returns the result."""
    current = limits_of(session, integration.id)  # type: ignore[arg-type]
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = set(given) - {f.name for f in fields(Limits)}
    if unknown:
        raise InvalidInput(f"unknown guard settings: {', '.join(sorted(unknown))}")
    problems = []
    for name, value in given.items():
        if name in BOUNDS:
            least, most = BOUNDS[name]
            if not least <= value <= most:
                problems.append(Problem(OPTION[name], f"from {least} to {most}, not {value}"))
    if problems:
        raise InvalidInput.from_problems(problems, "guard settings")
    merged = Limits(**{**asdict(current), **given})
    row = session.get(OtpGuard, integration.id)
    if row is None:
        row = OtpGuard(integration_id=integration.id)  # type: ignore[arg-type]
        session.add(row)
    for f in fields(Limits):
        value = getattr(merged, f.name)
        setattr(row, f.name, (",".join(value) or None) if f.name == "countries" else value)
    session.flush()
    return merged


def limits_dict(integration: OtpIntegration, lim: Limits) -> dict[str, Any]:
    return {
        "integration": integration.name,
        "integration_id": integration.id,
        "per_number_hour": lim.per_number_hour,
        "per_prefix_hour": lim.per_prefix_hour,
        "per_country_hour": lim.per_country_hour,
        "countries": list(lim.countries),
        "prefix_digits": lim.prefix_digits,
        "min_sends": lim.min_sends,
        "min_conversion": str(Decimal(lim.min_conversion_bp) / 10_000),
        "window_s": lim.window_s,
        "grace_s": lim.grace_s,
        "alarm": integration.mode == "platform" and lim.min_conversion_bp > 0,
    }


# ---- the check ------------------------------------------------------------------------------


def calling_code_length(number: str) -> int:
    """Digits of the country calling code of E.164 digits (codes are prefix-free); 0 if none."""
    for n in (1, 2, 3):
        if number[:n].isdigit() and int(number[:n]) in pnu.COUNTRY_CODE_TO_REGION_CODE:
            return n
    return 0


def prefix_of(number: str, digits: int) -> str:
    return number[: calling_code_length(number) + digits]


def _wait(oldest: datetime | None, now: datetime) -> int:
    if oldest is None:
        return 1
    return max(1, int((oldest + timedelta(seconds=HOUR) - now).total_seconds() + 0.999))


def _window(
    session: Session, integration_id: int, number: str, prefix: str, lim: Limits, now: datetime, *, after=None
) -> Any:
    """One pass over the prefix's recent requests: the hourly counts and the alarm's figures
    (the alarm counts only sends after ``after``, the prefix's last unblock)."""
    hour = now - timedelta(seconds=HOUR)
    start = now - timedelta(seconds=lim.window_s)
    if after is not None and after > start:
        start = after
    young = now - timedelta(seconds=lim.grace_s)
    mine = R.c.number == number
    in_hour = R.c.created_at > hour
    counted = sa.and_(
        R.c.created_at > start,
        R.c.state != "failed",
        sa.or_(R.c.state != "pending", R.c.created_at <= young),
    )

    def n(cond):
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    q = sa.select(
        n(sa.and_(mine, in_hour)).label("number_hour"),
        sa.func.min(sa.case((sa.and_(mine, in_hour), R.c.created_at))).label("number_oldest"),
        n(in_hour).label("prefix_hour"),
        sa.func.min(sa.case((in_hour, R.c.created_at))).label("prefix_oldest"),
        n(counted).label("counted"),
        n(sa.and_(counted, R.c.state == "verified")).label("verified"),
    ).where(
        R.c.integration_id == integration_id,
        R.c.number >= prefix,
        R.c.number < prefix + ":",  # ':' sorts right after '9': every number that starts with the prefix
        R.c.created_at > min(hour, start),
    )
    return session.execute(q).one()


def _number_hour(session: Session, integration_id: int, number: str, now: datetime) -> Any:
    """The number's sends in the last hour, in the shape of :func:`_window`'s answer."""
    count, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(R.c.created_at)).where(
            R.c.integration_id == integration_id, R.c.number == number, R.c.created_at > now - timedelta(seconds=HOUR)
        )
    ).one()
    return SimpleNamespace(number_hour=count, number_oldest=oldest, prefix_hour=0, prefix_oldest=None)


def _cached_limits(session: Session, integration_id: int) -> Limits:
    """:func:`limits_of`, read once per transaction (a group of sends reads it once)."""
    cache = session.info.setdefault("otp.guard.limits", {})
    got = cache.get(integration_id)
    if got is None:
        got = cache[integration_id] = limits_of(session, integration_id)
    return got


def _last_block(session: Session, integration_id: int, prefix: str) -> Any:
    """The prefix's newest block row (id, unblocked_at), or None. A transaction reads the
    integration's blocks once (the newest per prefix: a few rows) and keeps them until it
    writes a block (:func:`block` forgets them)."""
    cache = session.info.setdefault("otp.guard.blocks", {})
    got = cache.get(integration_id)
    if got is None:
        newest = sa.select(sa.func.max(B.c.id)).where(B.c.integration_id == integration_id).group_by(B.c.prefix)
        got = cache[integration_id] = {
            r.prefix: r
            for r in session.execute(sa.select(B.c.id, B.c.prefix, B.c.unblocked_at).where(B.c.id.in_(newest)))
        }
    return got.get(prefix)


def _from_times(number_times: list[datetime], now: datetime) -> Any:
    """The number's hour, in the shape of :func:`_window`'s answer, from its sends' times."""
    hour = [t for t in number_times if t > now - timedelta(seconds=HOUR)]
    return SimpleNamespace(number_hour=len(hour), number_oldest=min(hour, default=None), prefix_hour=0,
                           prefix_oldest=None)  # fmt: skip


def check(
    session: Session,
    integration: OtpIntegration,
    number: str,
    *,
    now: datetime | None = None,
    number_times: list[datetime] | None = None,
) -> None:
    """Refuse a send to ``number`` (E.164 digits) that the guard does not let through.
    ``number_times``: the times of the number's sends of the last hour at least, when the
    caller has read them already (one query fewer)."""
    now = now or clock.now()
    lim = _cached_limits(session, integration.id)  # type: ignore[arg-type]
    if integration.channel == "email":  # an address has no prefix and no country: its own hour only
        got = _number_hour(session, integration.id, number, now)  # type: ignore[arg-type]
        if lim.per_number_hour and got.number_hour >= lim.per_number_hour:
            wait = _wait(got.number_oldest, now)
            raise TooMany(f"{lim.per_number_hour} codes were sent to {number} in the last hour; try again in "
                          f"{wait} s", retry_after=wait, problem_type="otp-number-hour-limit")  # fmt: skip
        return
    country = destination(number)[0]
    if lim.countries and country not in lim.countries:
        raise refusal(
            Denied, f"sends to {country or 'this number'} are not allowed for this integration "
            f"(allowed: {', '.join(lim.countries)})", "otp-country-not-allowed", country=country,
        )  # fmt: skip
    prefix = prefix_of(number, lim.prefix_digits)
    last = _last_block(session, integration.id, prefix)  # type: ignore[arg-type]
    if last is not None and last.unblocked_at is None:
        _write(session, lambda s: _countrefusal(s, last.id, number, integration, now))
        raise _blocked(prefix)
    after = last.unblocked_at if last is not None else None  # sends before an unblock no longer count
    alarm = integration.mode == "platform" and lim.min_conversion_bp > 0
    if alarm or lim.per_prefix_hour:
        got = _window(session, integration.id, number, prefix, lim, now, after=after)  # type: ignore[arg-type]
    elif number_times is not None:
        got = _from_times(number_times, now)
    else:  # no prefix figure is needed: the number's own hour only (an index range, not the prefix's rows)
        got = _number_hour(session, integration.id, number, now)  # type: ignore[arg-type]
    if alarm and got.counted >= lim.min_sends and got.verified * 10_000 < lim.min_conversion_bp * got.counted:
        block(session, integration, prefix, country=country, number=number, sends=got.counted,
              verified=got.verified, lim=lim, now=now)  # fmt: skip
        raise _blocked(prefix)
    limits = (
        (lim.per_number_hour, got.number_hour, got.number_oldest, number, "otp-number-hour-limit"),
        (lim.per_prefix_hour, got.prefix_hour, got.prefix_oldest, f"prefix {prefix}", "otp-prefix-hour-limit"),
    )
    for most, count, oldest, what, kind in limits:
        if most and count >= most:
            wait = _wait(oldest, now)
            raise TooMany(f"{most} codes were sent to {what} in the last hour; try again in {wait} s",
                          retry_after=wait, problem_type=kind)  # fmt: skip
    if lim.per_country_hour and country:
        count, oldest = session.execute(
            sa.select(sa.func.count(), sa.func.min(R.c.created_at)).where(
                R.c.integration_id == integration.id,
                R.c.created_at > now - timedelta(seconds=HOUR),
                R.c.country == country,
            )
        ).one()
        if count >= lim.per_country_hour:
            wait = _wait(oldest, now)
            raise TooMany(f"{lim.per_country_hour} codes were sent to {country} in the last hour; "
                          f"try again in {wait} s", retry_after=wait, problem_type="otp-country-hour-limit")  # fmt: skip


def _blocked(prefix: str) -> CpaasError:
    return refusal(
        Denied, f"numbers starting {prefix} are blocked by the fraud guard (too few codes verified)",
        "otp-prefix-blocked", prefix=prefix,
    )  # fmt: skip


DEFERRED = "otp.guard.deferred"  # session.info: the group's list of writes to run after the savepoint
AFTER_COMMIT = groupcommit.AFTER_COMMIT  # session.info: callables (engine) -> None, run after the commit


def _write(session: Session, work) -> Any:
    """Run ``work(s)`` in a transaction of its own, committed now: the caller's is rolled back.
    In a group (:data:`DEFERRED` in the session's info) it is queued for the group instead (None)."""
    deferred = session.info.get(DEFERRED)
    if deferred is not None:
        deferred.append(work)
        return None
    engine = session.get_bind()
    actor = session.info.get("actor") or "otp guard"
    with session_scope(engine, actor=actor, command="otp guard") as s:  # type: ignore[arg-type]
        return work(s)


def _countrefusal(s: Session, block_id: int, number: str, integration: OtpIntegration, now: datetime) -> None:
    row = s.execute(sa.select(B.c.unit_cost).where(B.c.id == block_id)).one()
    if row.unit_cost is None:  # no price yet: the first refused number gives it
        cost, currency = price_of(s, integration, number, now=now)
        if cost is not None:
            s.execute(sa.update(B).where(B.c.id == block_id, B.c.unit_cost.is_(None))
                      .values(unit_cost=cost, currency=currency))  # fmt: skip
    s.execute(
        sa.update(B)
        .where(B.c.id == block_id)
        .values(refused=B.c.refused + 1, saved=B.c.saved + sa.func.coalesce(B.c.unit_cost, 0), last_refused_at=now)
    )


def price_of(
    session: Session, integration: OtpIntegration, number: str, *, now: datetime
) -> tuple[int | None, str | None]:
    """What one code to ``number`` would cost (micro-units, currency) by the sender's agreement's
    rate tree, as `campaign estimate` prices it; (None, None) when it has no price."""
    from cpaas_cli.campaigns.estimate import price_tally
    from cpaas_cli.catalog.service import agreement_snapshots
    from cpaas_cli.otp.integrations import segments_of

    sender = session.get(SenderId, integration.sender_id)
    ag = session.get(Agreement, sender.agreement_id) if sender is not None else None
    if ag is None:
        return None, None
    snaps = agreement_snapshots(session, ag, now)
    tally = {destination(number): {segments_of(integration): 1}}
    _rows, total, unpriced = price_tally(snaps, tally, channel="sms", currency=ag.currency)
    return (None, None) if unpriced else (total, ag.currency)


# ---- blocks ---------------------------------------------------------------------------------


def block(
    session: Session, integration: OtpIntegration, prefix: str, *, country: str | None, number: str,
    sends: int, verified: int, lim: Limits, now: datetime,
) -> int | None:  # fmt: skip
    """Block ``prefix`` (committed at once; in a group, with the group), count the send that
    tripped the alarm as refused, and tell the operator. Returns the block's id (None in a group)."""
    share = verified * 10_000 // sends if sends else 0
    reason = (
        f"conversion {_percent(share)} ({verified} verified of {sends} sends in {lim.window_s} s) "
        f"under {_percent(lim.min_conversion_bp)}"
    )

    def insert(s: Session) -> tuple[int | None, bool]:
        """(the block's id, whether this made it): a concurrent send that blocked the prefix
        first has this one counted on its block instead."""
        cost, currency = price_of(s, integration, number, now=now)
        row = OtpGuardBlock(
            integration_id=integration.id,  # type: ignore[arg-type]
            prefix=prefix, country=country, reason=reason, sends=sends, verified=verified,
            conversion_bp=share, window_s=lim.window_s, blocked_at=now, notice="e-mail pending",
            refused=1, unit_cost=cost, currency=currency, saved=cost or 0, last_refused_at=now,
        )  # fmt: skip
        s.info.pop("otp.guard.blocks", None)
        session.info.pop("otp.guard.blocks", None)
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except sa.exc.IntegrityError:
            open_id = s.execute(
                sa.select(B.c.id).where(B.c.integration_id == integration.id, B.c.prefix == prefix,
                                        B.c.unblocked_at.is_(None))
            ).scalar()  # fmt: skip
            if open_id is not None:
                _countrefusal(s, open_id, number, integration, now)
            return open_id, False
        log.warning(
            "otp guard: integration %s (%s): prefix %s blocked: %s", integration.id, integration.name, prefix, reason
        )
        return row.id, True

    integration_id = integration.id

    def tell(engine: Any, block_id: int) -> None:
        with session_scope(engine, actor="otp guard", command="otp guard notice") as s:
            current = s.get(OtpIntegration, integration_id)
            notice = notify(s, current, prefix, reason) if current is not None else "not e-mailed: integration gone"
            s.execute(sa.update(B).where(B.c.id == block_id).values(notice=notice[:500]))

    if session.info.get(DEFERRED) is not None:

        def later(s: Session) -> None:
            block_id, made = insert(s)
            if made:
                s.info.setdefault(AFTER_COMMIT, []).append(lambda engine: tell(engine, block_id))

        _write(session, later)
        return None
    block_id, made = _write(session, insert)
    if made:
        tell(session.get_bind(), block_id)
    return block_id


def _percent(bp: int) -> str:
    return f"{Decimal(bp) / 100:.2f}".rstrip("0").rstrip(".") + " %"


def account_emails(session: Session, company_id: int, *, now: datetime) -> list[str]:
    """The ``account`` e-mail addresses of the company's agreements, as they stand now."""
    from cpaas_cli.agreements.service import version_at

    found: list[str] = []
    for ag in session.exec(select(Agreement).where(Agreement.company_id == company_id).order_by(Agreement.id)):
        v = version_at(session, ag, now)
        for addr in ((v.emails or {}) if v else {}).get("account") or []:
            if addr not in found:
                found.append(addr)
    return found


def notify(session: Session, integration: OtpIntegration, prefix: str, reason: str) -> str:
    """E-mail the block to the company's account addresses; returns what happened, in words."""
    from cpaas_cli import mail
    from cpaas_cli.config import load_settings

    to = account_emails(session, integration.company_id, now=clock.now())
    if not to:
        notice = "not e-mailed: the company's agreements have no account e-mail (agreement --email account=…)"
        log.warning("otp guard: prefix %s: %s", prefix, notice)
        return notice
    try:
        smtp = mail.SmtpSettings.from_config(load_settings().section("smtp"))
        mail.send(
            smtp,
            to=to,
            subject=f"2FA fraud guard: numbers starting {prefix} blocked ({integration.name})",
            body=(
                f"The fraud guard of the 2FA integration {integration.name!r} blocked the numbers starting "
                f"{prefix}: {reason}.\n\nCodes to these numbers are refused (HTTP 403, otp-prefix-blocked) "
                "and cost nothing. If the traffic is genuine, lift the block with:\n\n"
                f"  cpaas otp guard unblock {integration.id} {prefix}\n"
            ),
        )
    except CpaasError as exc:
        notice = f"not e-mailed: {exc.message}"
        log.warning("otp guard: prefix %s: %s", prefix, notice)
        return notice
    return "e-mailed to " + ", ".join(to)


def unblock(session: Session, integration: OtpIntegration, prefix: str, *, by: str | None = None) -> OtpGuardBlock:
    """Lift the open block of ``prefix`` (the row stays, with who lifted it and when; audited)."""
    text = (prefix or "").strip().lstrip("+")
    row = session.exec(
        select(OtpGuardBlock).where(OtpGuardBlock.integration_id == integration.id, OtpGuardBlock.prefix == text,
                                    OtpGuardBlock.unblocked_at.is_(None))  # type: ignore[union-attr]
    ).first()  # fmt: skip
    if row is None:
        raise NotFound(f"no blocked prefix {text[:20]!r} for 2FA integration {integration.name!r}")
    row.unblocked_at = clock.now()
    row.unblocked_by = (by or session.info.get("actor") or "")[:120] or None
    session.flush()
    return row


def blocks(session: Session, integration_id: int | None = None, *, all_: bool = False, limit: int | None = None):
    """Blocks, newest first: the open ones, or every one with ``all_``."""
    q = select(OtpGuardBlock).order_by(OtpGuardBlock.id.desc())  # type: ignore[union-attr]
    if integration_id is not None:
        q = q.where(OtpGuardBlock.integration_id == integration_id)
    if not all_:
        q = q.where(OtpGuardBlock.unblocked_at.is_(None))  # type: ignore[union-attr]
    if limit is not None:
        q = q.limit(limit)
    return list(session.exec(q))


def block_dict(session: Session, row: OtpGuardBlock) -> dict[str, Any]:
    integration = session.get(OtpIntegration, row.integration_id)
    return {
        "id": row.id,
        "integration": integration.name if integration else None,
        "integration_id": row.integration_id,
        "prefix": row.prefix,
        "country": row.country,
        "state": "blocked" if row.unblocked_at is None else "unblocked",
        "sends": row.sends,
        "verified": row.verified,
        "conversion": str(Decimal(row.conversion_bp) / 10_000),
        "window_s": row.window_s,
        "reason": row.reason,
        "blocked_at": iso(row.blocked_at),
        "refused": row.refused,
        "unit_cost": format_micros(row.unit_cost),
        "saved": format_micros(row.saved) if row.currency else None,
        "saved_micros": row.saved,
        "currency": row.currency,
        "last_refused_at": iso(row.last_refused_at),
        "notice": row.notice,
        "unblocked_at": iso(row.unblocked_at),
        "unblocked_by": row.unblocked_by,
    }
