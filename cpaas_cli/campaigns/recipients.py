"""The recipients of a new campaign, gathered from its sources (AMB-02).

Contact groups, files and typed numbers combine; the union is de-duplicated
by E.164 number (the first source that names a number keeps it: groups, then
files, then typed numbers). Without a default country, a number written as
bare digits is read as international (E.164 without '+', as the send API
takes it). Invalid numbers, duplicates and numbers on the company's stop list
for the campaign's sender (`contacts.stoplist.blocked_phones`) are left out
and counted. The recipients are stored with the campaign; the stop list is
checked again when the campaign starts (`materialise`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.campaigns.destinations import destination
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.contacts.stoplist import blocked_phones
from cpaas_cli.db import bulk
from cpaas_cli.db.checks import first_text_problem
from cpaas_cli.errors import Problem, require
from cpaas_cli.imports.readers import read_rows
from cpaas_cli.messaging import templates as tpl
from cpaas_cli.models.campaigns import CampaignRecipient
from cpaas_cli.models.contacts import Contact, ContactGroupMember

PAGE = 20_000
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class FileSource:
    path: str
    maps: dict[str, str] = field(default_factory=dict)  # variable -> column ("phone", "text" are special)
    sheet: str | None = None


@dataclass
class Collected:
    # number → (country, mcc, mnc, carrier, file values, own text)
    order: dict[str, tuple] = field(default_factory=dict)
    invalid: int = 0
    duplicate: int = 0
    stop_listed: int = 0
    invalid_examples: list[str] = field(default_factory=list)


def parse_maps(items: Iterable[str]) -> dict[str, str]:
    """``VAR=COLUMN`` pairs; the same column cannot serve two variables."""
    maps: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        var, sep, column = item.partition("=")
        var, column = var.strip(), column.strip()
        if not sep or not var or not column:
            problems.append(Problem("map", f"{item!r}: expected VARIABLE=COLUMN"))
            continue
        if not _VAR.match(var):
            problems.append(Problem("map", f"{var!r} is not a variable name (letters, digits, _)"))
        elif var in maps:
            problems.append(Problem("map", f"{var!r} is mapped twice"))
        elif column in maps.values():
            problems.append(Problem("map", f"column {column!r} is mapped to two variables"))
        maps[var] = column
    require(problems, "--map")
    return maps


def _file_plan(header: list[str], src: FileSource) -> tuple[str, str | None, dict[str, str]]:
    """(phone column, text column or None, {variable: column})."""
    problems: list[Problem] = []
    for var, column in src.maps.items():
        if column not in header:
            problems.append(Problem("map", f"{var}={column}: {src.path} has no column {column!r}"))
    require(problems, "--map")
    phone_col = src.maps.get("phone", header[0])
    text_col = src.maps.get("text")
    named = {v: c for v, c in src.maps.items() if v not in ("phone", "text")}
    if not named:
        named = {tpl.column_variable(c): c for c in header if c not in (phone_col, text_col)}
    return phone_col, text_col, named


def stop_set(session: Session, company_id: int, sender: str) -> set[str]:
    """The numbers the company's stop list blocks for ``sender``."""
    return {r[0] for r in session.connection().execute(blocked_phones(company_id, sender))}


def collect(
    session: Session,
    company_id: int,
    *,
    groups: list[int],
    files: list[FileSource],
    numbers: list[str],
    default_country: str | None,
    stop: set[str],
) -> tuple[Collected, set[str], bool]:
    """The recipients in source order, the file variables seen and whether rows carry text."""
    out = Collected()
    file_vars: set[str] = set()
    has_text = False
    problems: list[Problem] = []

    def add(raw: str, values: dict | None, text: str | None, normalised: bool = False) -> None:
        if normalised:
            number = raw
        else:
            try:
                if default_country is None and raw[:1].isdigit() and not raw.startswith("00"):
                    raw = "+" + raw  # without a default country, digits are international (E.164 without '+')
                number = normalise(raw, default_country)
            except PhoneError as exc:
                out.invalid += 1
                if len(out.invalid_examples) < 10:
                    out.invalid_examples.append(f"{raw!r} {exc}")
                return
        if number in out.order:
            out.duplicate += 1
            return
        if number in stop:
            out.stop_listed += 1
            out.order[number] = None  # type: ignore[assignment]  # counted once, kept out
            return
        out.order[number] = (*destination(number), values, text)

    if groups:
        c, m = Contact.__table__, ContactGroupMember.__table__
        q = (
            sa.select(c.c.phone)
            .select_from(m.join(c, c.c.id == m.c.contact_id))
            .where(m.c.group_id.in_(groups), c.c.company_id == company_id)
            .order_by(m.c.group_id, c.c.id)
        )
        for (number,) in session.connection().execute(q):
            add(number, None, None, normalised=True)
    for src in files:
        plan = None
        for row_no, row in read_rows(src.path, sheet=src.sheet):
            if plan is None:
                plan = _file_plan(list(row), src)
                file_vars.update(plan[2])
                has_text = has_text or plan[1] is not None
            phone_col, text_col, named = plan
            text = None
            if text_col is not None:
                text = (row.get(text_col) or "").strip("\r\n")
                if not text.strip():
                    if len(problems) < 50:
                        problems.append(Problem(text_col, "empty message text", row_no))
                    continue
            values = {v: row.get(col_) or "" for v, col_ in named.items()} or None
            if bad := first_text_problem({**(values or {}), **({text_col: text} if text_col else {})}):
                if len(problems) < 50:  # NUL, not UTF-8: PostgreSQL refuses it
                    problems.append(Problem(bad[0], bad[1], row_no))
                continue
            add(row.get(phone_col) or "", values, text)
        if plan is None:
            problems.append(Problem("file", f"{src.path} has no rows"))
    for number in numbers:
        for part in str(number).split(","):
            if part.strip():
                add(part.strip(), None, None)
    require(problems, "the recipient file")
    out.order = {k: v for k, v in out.order.items() if v is not None}
    return out, file_vars, has_text


def insert_recipients(session: Session, campaign_id: int, order: dict) -> None:
    """The recipients of ``collect`` for the campaign, ``PAGE`` rows a write (`db.bulk`)."""
    w = bulk.writer(session)
    t = CampaignRecipient.__table__
    names = ["phone", "country", "mcc", "mnc", "network", "values", "text"]
    items = iter(order.items())
    while batch := [(number, *rest) for number, rest in islice(items, PAGE)]:
        columns = dict(zip(names, zip(*batch, strict=True), strict=True))
        w.insert(t, {**columns, "campaign_id": [campaign_id] * len(batch)})
