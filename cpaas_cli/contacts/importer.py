"""`cpaas contacts import`: a contact file (CSV, XLSX, JSONL) into one group.

Two phases:

1. Validate. Every row is read and checked before anything is written: the
   phone is normalised to E.164 (see phones.py), mapped values are parsed by
   type, rows with the same phone are merged (the last one wins, and they are
   counted as duplicates). By default any bad row stops the import with every
   problem listed (exit 4); with ``skip_invalid`` the bad rows are left out
   (and written to the rejects file with their reason).
2. Write, set-based. The valid rows go to a temporary staging table (through
   `db.bulk`: COPY on PostgreSQL, multi-row INSERTs on SQLite; 50,000 rows a
   chunk), then a handful of
   statements apply the stop-list policy, insert the new contacts, update the
   existing ones, add group membership and record the import.

Transactions: the whole write phase runs inside the command's single
transaction, so an import is all-or-nothing (a crash or an error leaves the
database as it was). We chose this over chunked commits: validation has
already removed every foreseeable failure, SQLite and PostgreSQL both handle a
million-row transaction comfortably, and nothing needs to be restartable.
Two imports for one company write one after the other: the second waits at
the start of its write phase (``locking.serialise``), then sees the group and
contacts the first one wrote.

Update semantics: only mapped columns are written; an empty cell leaves the
stored value unchanged; custom field values are merged key by key.

Stop-list policy (CON-09, AMB-01), applied to every number of the file:
- ``exclude`` (default): numbers with any block are neither added nor
  updated (they are counted as stop-listed); a blocked number is never
  re-subscribed by accident;
- ``unblock:SID[,SID]``: the blocks for those senders are removed (``ALL``
  removes every block of the number) and the rows are imported;
- ``add:SID[,SID]``: the rows are imported and every number gets those
  blocks (existing blocks are kept).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock, files
from cpaas_cli.audit.service import record
from cpaas_cli.contacts import fields as contact_fields
from cpaas_cli.contacts import groups as contact_groups
from cpaas_cli.contacts import service
from cpaas_cli.contacts import values as contact_values
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.db import bulk, locking
from cpaas_cli.db.checks import limits, text_problem
from cpaas_cli.db.types import UTCDateTime
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.exports.writers import RowWriter
from cpaas_cli.imports.readers import DEFAULT_MAX_BYTES, check_size, read_rows
from cpaas_cli.models.contacts import ALL_SENDERS, Contact, ContactGroup, ContactImport

MODES = ("upsert", "new-only", "update-only")
TARGETS = ("phone", *contact_values.BASE_COLUMNS)
CHUNK = 50_000
STAGE = "cpaas_contact_import_stage"
Progress = Callable[[str, int, int | None], None]


@dataclass
class StopListPolicy:
    action: str  # exclude | unblock | add
    senders: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.action if self.action == "exclude" else f"{self.action}:{','.join(self.senders)}"


def parse_policy(text: str | None) -> StopListPolicy:
    value = (text or "exclude").strip()
    action, _, rest = value.partition(":")
    action = action.lower()
    if action == "exclude" and not rest:
        return StopListPolicy("exclude")
    if action in ("unblock", "add") and rest:
        return StopListPolicy(action, contact_values.senders([rest]))
    raise InvalidInput(f"--stoplist {text!r}: use exclude, unblock:SID[,SID] or add:SID[,SID] (SID may be ALL)")


def parse_mapping(items: list[str]) -> dict[str, str]:
    """``TARGET=COLUMN`` items to {target: column}; TARGET is a contact column or field:NAME."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, column = item.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise InvalidInput(f"--map {item!r}: use TARGET=COLUMN, e.g. phone=Mobile or field:City=town")
        if not target.startswith("field:") and target not in TARGETS:
            raise InvalidInput(f"--map {item!r}: unknown target {target!r} (use {', '.join(TARGETS)} or field:NAME)")
        if target in mapping:
            raise InvalidInput(f"--map: {target!r} is mapped twice")
        mapping[target] = column
    if "phone" not in mapping:
        raise InvalidInput("no phone mapping: give --map phone=COLUMN")
    return mapping


@dataclass
class ImportResult:
    id: int | None
    file: str
    sha256: str
    company: str
    group: str
    mode: str
    stoplist: str
    dry_run: bool
    read: int = 0
    valid: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    duplicates: int = 0
    stop_listed: int = 0
    blocks_added: int = 0
    blocks_removed: int = 0
    group_created: bool = False
    rejects_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run(
    session: Session,
    path: str | Path,
    *,
    company: str | int,
    group: str,
    mapping: dict[str, str],
    mode: str = "upsert",
    stoplist: str | None = None,
    create_group: bool = False,
    default_country: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    rejects: str | Path | None = None,
    sheet: str | int | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
) -> ImportResult:
    """Import contacts; see the module docstring. One transaction (the caller's); never commits."""
    started = clock.now()
    if "phone" not in mapping:
        raise InvalidInput("no phone mapping: give --map phone=COLUMN")
    if mode not in MODES:
        raise InvalidInput(f"--mode {mode!r}: use {', '.join(MODES)}")
    policy = parse_policy(stoplist)
    if default_country:
        try:
            normalise("+10000000000", default_country)
        except PhoneError as exc:
            if "default country" in str(exc):
                raise InvalidInput(f"--default-country: {exc}") from exc
    owner = service.client_company(session, company)
    group_row: ContactGroup | None = None
    try:
        group_row = contact_groups.group(session, owner, group)
    except Exception:
        if not create_group:
            raise
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"file {str(path)!r} does not exist")
    size = check_size(p, max_bytes)
    if rejects is not None:  # the CLI checked --force; the input file is never a target
        files.safe_target(rejects, force=True, protect=[(p, "the input file")], option="--rejects")

    defs = {f.variable: f for f in contact_fields.fields(session, owner)}
    custom: list[tuple[str, str, str]] = []  # (variable, column, type)
    for target, column in mapping.items():
        if target.startswith("field:"):
            f = contact_fields.field(session, owner, target[6:])
            custom.append((f.variable, column, f.data_type))
    if mode != "update-only":
        mapped = {v for v, _, _ in custom}
        missing = [f.name for f in defs.values() if f.required and f.variable not in mapped]
        if missing:
            raise InvalidInput(f"required custom field(s) not mapped: {', '.join(missing)} (new contacts need them)")
    required_vars = {f.variable for f in defs.values() if f.required}

    result = ImportResult(
        id=None,
        file=str(p),
        sha256=_sha256(p),
        company=owner.name,
        group=group,
        mode=mode,
        stoplist=str(policy),
        dry_run=dry_run,
    )
    staged, bad = _validate(p, mapping, custom, required_vars, default_country, sheet, max_bytes, result, progress)
    result.valid = len(staged)
    if bad and not skip_invalid:
        problems = [Problem(fld, msg, row) for row, fld, msg, _ in bad]
        raise InvalidInput.from_problems(problems, p.name)
    if rejects is not None:
        result.rejects_file = str(rejects)
        _write_rejects(Path(rejects), bad)
    if not dry_run:
        # One import writes a company's contacts at a time: a racing import
        # waits here, then finds the group and contacts the other one wrote.
        locking.serialise(session, f"contacts-import:{owner.id}")
        if group_row is None:
            with contextlib.suppress(NotFound):  # created by an import that ran meanwhile
                group_row = contact_groups.group(session, owner, group)
    if group_row is None:
        if dry_run:
            result.group_created = True
        else:
            group_row = contact_groups.create_group(session, owner, name=group)
            result.group_created = True
    _write(
        session,
        owner.id,
        group_row.id if group_row else None,
        mapping,
        custom,
        staged,
        mode,
        policy,
        result,
        dry_run,
        progress,
    )
    if not dry_run:
        row = ContactImport(
            company_id=owner.id,
            group_id=group_row.id,
            group_name=group_row.name,
            file=p.name,
            sha256=result.sha256,
            size_bytes=size,
            mode=mode,
            stoplist=str(policy),
            rows_read=result.read,
            inserted=result.inserted,
            updated=result.updated,
            skipped=result.skipped,
            rejected=result.rejected,
            duplicates=result.duplicates,
            stop_listed=result.stop_listed,
            actor=session.info.get("actor"),
            started_at=started,
            finished_at=clock.now(),
        )
        session.add(row)
        session.flush()
        result.id = row.id
        record(
            session,
            action="import",
            object_type="contact",
            company_id=owner.id,
            new={k: v for k, v in result.as_dict().items() if k not in ("dry_run",)},
        )
    return result


def _validate(p, mapping, custom, required_vars, default_country, sheet, max_bytes, result, progress):
    """Read every row. Returns ({phone: staged tuple}, [(row, field, message, data)])."""
    phone_col = mapping["phone"]
    base = [(t, mapping[t]) for t in contact_values.BASE_COLUMNS if t in mapping]
    parsers = {
        "birthday": lambda t: contact_values.parse_birthday(t).isoformat(),
        "gender": contact_values.parse_gender,
    }
    sizes = limits(Contact.__table__)
    staged: dict[str, tuple] = {}
    bad: list[tuple[int, str, str, dict]] = []
    columns_checked = False
    norm = normalise
    dumps = json.dumps
    read = 0
    for number, data in read_rows(p, sheet=sheet, max_bytes=max_bytes):
        if not columns_checked:
            missing = [c for c in mapping.values() if c not in data]
            if missing:
                raise InvalidInput(
                    f"{p.name}: mapped column(s) not in the file: {', '.join(missing)} (columns: {', '.join(data)})"
                )
            columns_checked = True
        read += 1
        if progress is not None and read % 20000 == 0:
            progress("validate", read, None)
        raw = data[phone_col]
        try:
            phone = norm(raw, default_country)
        except PhoneError as exc:
            bad.append((number, "phone", f"{raw!r} {exc}", data))
            continue
        values: list[Any] = []
        problem = None
        for target, column in base:
            text = data[column]
            if not text:
                values.append(None)
                continue
            parser = parsers.get(target)
            if parser is None:
                if bad_text := text_problem(text, sizes[target][1]):  # what PostgreSQL would refuse
                    problem = (target, bad_text)
                    break
                values.append(text)
                continue
            try:
                values.append(parser(text))
            except ValueError as exc:
                problem = (target, str(exc))
                break
        fields_json = None
        if problem is None and custom:
            found: dict[str, Any] = {}
            for var, column, data_type in custom:
                text = data[column]
                if not text:
                    if var in required_vars:
                        problem = (f"field:{var}", "is required")
                        break
                    continue
                if data_type == "text":
                    if bad_text := text_problem(text):
                        problem = (f"field:{var}", bad_text)
                        break
                    found[var] = text
                    continue
                try:
                    found[var] = contact_values.parse_value(data_type, text)
                except ValueError as exc:
                    problem = (f"field:{var}", str(exc))
                    break
            if found:
                fields_json = dumps(found, ensure_ascii=False, separators=(",", ":"))
        if problem is not None:
            bad.append((number, problem[0], problem[1], data))
            continue
        if phone in staged:
            result.duplicates += 1
        staged[phone] = (phone, *values, fields_json)
    if not columns_checked:
        raise InvalidInput(f"{p.name}: the file has no data rows")
    result.read = read
    result.rejected = len(bad)
    if progress is not None:
        progress("validate", read, read)
    return staged, bad


def _write_rejects(path: Path, bad: list[tuple[int, str, str, dict]]) -> None:
    columns: dict[str, None] = {}
    for _, _, _, data in bad:
        for k in data:
            columns.setdefault(k, None)
    with RowWriter(path, ["row", "field", "reason", *columns], "csv") as w:
        for row, fld, msg, data in bad:
            w.write([row, fld, msg, *(data.get(c, "") for c in columns)])


def _stage_table(base: list[str]) -> sa.Table:
    """The temporary table the valid rows are staged in: phone, the mapped columns, the
    custom fields (JSON text), and the flags the write sets (known contact, stop-listed)."""
    return sa.Table(
        STAGE,
        sa.MetaData(),
        sa.Column("phone", sa.String(15), primary_key=True),
        *[sa.Column(c, sa.Date if c == "birthday" else sa.Text) for c in base],
        sa.Column("fields", sa.Text),
        sa.Column("existing", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("blocked", sa.Integer, nullable=False, server_default=sa.text("0")),
        prefixes=["TEMPORARY"],
    )


def _write(session, company_id, group_id, mapping, custom, staged, mode, policy, result, dry_run, progress):
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    base = [t for t in contact_values.BASE_COLUMNS if t in mapping]
    cols = ["phone", *base, "fields"]
    stage = _stage_table(base)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGE}")
    stage.create(conn)
    rows = list(staged.values())
    staged.clear()
    total = len(rows)
    w = bulk.writer(session)
    for start in range(0, total, CHUNK):
        chunk = rows[start : start + CHUNK]
        w.insert_values(STAGE, cols, chunk)  # rows already in the driver's form
        if progress is not None:
            progress("stage", min(start + CHUNK, total), total)
    del rows
    if pg:  # the planner needs the staging table's size to pick hash joins over nested loops
        conn.exec_driver_sql(f"ANALYZE {STAGE}")
    c = {"c": company_id}
    now = clock.now()

    def ex(sql, params=None):
        stmt = sa.text(sql) if isinstance(sql, str) else sql
        if ":now" in str(stmt):
            stmt = stmt.bindparams(sa.bindparam("now", type_=UTCDateTime))
        return conn.execute(stmt, params or {})

    ex(
        (
            f"UPDATE {STAGE} SET existing = 1 WHERE EXISTS (SELECT 1 FROM contact WHERE contact.company_id = :c "
            f"AND contact.phone = {STAGE}.phone)"
        ),
        c,
    )
    ex(
        (
            f"UPDATE {STAGE} SET blocked = 1 WHERE EXISTS (SELECT 1 FROM stop_list_entry s "
            f"WHERE s.company_id = :c AND s.phone = {STAGE}.phone)"
        ),
        c,
    )
    result.stop_listed = ex(f"SELECT count(*) FROM {STAGE} WHERE blocked = 1").scalar_one()
    if policy.action == "exclude":
        ex(f"DELETE FROM {STAGE} WHERE blocked = 1")
    elif policy.action == "unblock" and not dry_run:
        q = (
            f"DELETE FROM stop_list_entry WHERE company_id = :c AND phone IN "
            f"(SELECT phone FROM {STAGE} WHERE blocked = 1)"
        )
        params: dict[str, Any] = dict(c)
        if ALL_SENDERS not in policy.senders:
            q += " AND sender IN :senders"
            params["senders"] = policy.senders
            stmt = sa.text(q).bindparams(sa.bindparam("senders", expanding=True))
        else:
            stmt = sa.text(q)
        result.blocks_removed = ex(stmt, params).rowcount
    elif policy.action == "add":
        for sid in policy.senders:
            q = (
                f"SELECT CAST(:c AS INTEGER), phone, CAST(:sid AS VARCHAR(32)), :now FROM {STAGE} WHERE NOT EXISTS (SELECT 1 FROM stop_list_entry s "
                f"WHERE s.company_id = :c AND s.phone = {STAGE}.phone AND s.sender = :sid)"
            )
            if dry_run:
                result.blocks_added += ex((f"SELECT count(*) FROM ({q}) x"), {**c, "sid": sid, "now": now}).scalar_one()
            else:
                result.blocks_added += ex(
                    sa.text(f"INSERT INTO stop_list_entry (company_id, phone, sender, created_at) {q}"),
                    {**c, "sid": sid, "now": now},
                ).rowcount
    counts = dict(ex(f"SELECT existing, count(*) FROM {STAGE} GROUP BY existing").all())
    existing, new = counts.get(1, 0), counts.get(0, 0)
    if mode == "upsert":
        result.inserted, result.updated = new, existing
    elif mode == "new-only":
        result.inserted, result.skipped = new, existing
        ex(f"DELETE FROM {STAGE} WHERE existing = 1")
    else:
        result.updated, result.skipped = existing, new
        ex(f"DELETE FROM {STAGE} WHERE existing = 0")
    if progress is not None:
        progress("write", 0, 3)
    if dry_run:
        conn.exec_driver_sql(f"DROP TABLE {STAGE}")
        return
    fields_in = f"CAST({STAGE}.fields AS JSONB)" if pg else f"{STAGE}.fields"
    if result.inserted:
        insert_cols = ["company_id", *cols, "created_at", "updated_at"]
        select_cols = [":c", *[f"{STAGE}.{x}" if x != "fields" else fields_in for x in cols], ":now", ":now"]
        if pg and "birthday" in base:
            select_cols[insert_cols.index("birthday")] = f"CAST({STAGE}.birthday AS DATE)"
        ex(
            (
                f"INSERT INTO contact ({', '.join(insert_cols)}) SELECT {', '.join(select_cols)} FROM {STAGE} "
                f"WHERE existing = 0"
            ),
            {**c, "now": now},
        )
    if progress is not None:
        progress("write", 1, 3)
    if result.updated:
        sets = [f"{x} = COALESCE({STAGE}.{x}, contact.{x})" for x in base]
        if pg and "birthday" in base:
            sets[base.index("birthday")] = f"birthday = COALESCE(CAST({STAGE}.birthday AS DATE), contact.birthday)"
        if custom:
            if pg:
                merged = f"COALESCE(contact.fields, '{{}}'::jsonb) || {fields_in}"
            else:
                merged = f"json_patch(COALESCE(contact.fields, '{{}}'), {STAGE}.fields)"
            sets.append(f"fields = CASE WHEN {STAGE}.fields IS NULL THEN contact.fields ELSE {merged} END")
        sets.append("updated_at = :now")
        ex(
            (
                f"UPDATE contact SET {', '.join(sets)} FROM {STAGE} WHERE contact.company_id = :c "
                f"AND contact.phone = {STAGE}.phone AND {STAGE}.existing = 1"
            ),
            {**c, "now": now},
        )
    if progress is not None:
        progress("write", 2, 3)
    ex(
        (
            f"INSERT INTO contact_group_member (contact_id, group_id) SELECT contact.id, :g FROM {STAGE} "
            f"JOIN contact ON contact.company_id = :c AND contact.phone = {STAGE}.phone "
            f"WHERE NOT EXISTS (SELECT 1 FROM contact_group_member m WHERE m.contact_id = contact.id "
            f"AND m.group_id = :g)"
        ),
        {**c, "g": group_id},
    )
    conn.exec_driver_sql(f"DROP TABLE {STAGE}")
    if progress is not None:
        progress("write", 3, 3)
