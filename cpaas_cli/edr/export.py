"""EDR export: the chosen fields of the EDRs a filter selects, streamed to a file.

Rows are read in time order and written as they come, so memory stays flat
whatever the size: on PostgreSQL through a named (server-side) cursor, on
SQLite by ``fetchmany``. Values are read raw from the driver's cursor (no
SQLAlchemy ``Row`` per row, no per-value type processing) and formatted here
by one generated function per export: times as ISO 8601 in the chosen zone,
money as decimal text (micro-units converted with ``money.format_micros``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cpaas_cli import mail
from cpaas_cli.db.types import UTCDateTime
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.exports.writers import XLSX_MAX_ROWS, RowWriter
from cpaas_cli.geo import check_country
from cpaas_cli.models.edr import DIRECTIONS, STATUSES, Edr
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import TimeError, iso, zone

EDR = Edr.__table__
ALL_FIELDS = [c.name for c in EDR.columns]
DEFAULT_FIELDS = [
    "id",
    "external_id",
    "event_at",
    "company_id",
    "agreement_id",
    "campaign_id",
    "sender",
    "channel",
    "direction",
    "destination",
    "mcc",
    "mnc",
    "country",
    "network",
    "segments",
    "status",
    "delivered_at",
    "vendor_error",
    "cost",
    "currency",
]
MONEY_FIELDS = ("unit_price", "cost", "vendor_cost")
TIME_FIELDS = tuple(c.name for c in EDR.columns if isinstance(c.type, UTCDateTime))
EXPORT_FORMATS = ("csv", "tsv", "jsonl", "xlsx")
STREAM_CHUNK = 10_000


@dataclass
class EdrFilter:
    """Which EDRs: a time window (required) and optional equality filters."""

    since: datetime | None
    till: datetime | None
    company_id: int | None = None
    agreement_id: int | None = None
    campaign_id: int | None = None
    statuses: list[str] = field(default_factory=list)
    channel: str | None = None
    country: str | None = None
    sender: str | None = None
    direction: str | None = None

    def check(self, *, window: bool = True) -> EdrFilter:
        """Validate; ``window`` requires --from and --till (exports and summaries)."""
        problems: list[Problem] = []
        if window and (self.since is None or self.till is None):
            problems.append(Problem("--from/--till", "a time window is required"))
        elif self.since is not None and self.till is not None and self.till <= self.since:
            problems.append(Problem("--till", "must be after --from"))
        for s in self.statuses:
            if s not in STATUSES:
                problems.append(Problem("--status", f"{s!r} is not one of {', '.join(STATUSES)}"))
        if self.direction is not None and self.direction not in DIRECTIONS:
            problems.append(Problem("--direction", f"{self.direction!r} is not mt or mo"))
        if self.country is not None:
            try:
                self.country = check_country(self.country)
            except Exception as exc:  # geo raises its own error types
                problems.append(Problem("--country", str(exc)))
        if problems:
            raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
        return self

    def where(self) -> list[Any]:
        c = EDR.c
        out: list[Any] = []
        if self.since is not None:
            out.append(c.event_at >= self.since)
        if self.till is not None:
            out.append(c.event_at < self.till)
        for col, val in (
            (c.company_id, self.company_id),
            (c.agreement_id, self.agreement_id),
            (c.campaign_id, self.campaign_id),
            (c.channel, self.channel),
            (c.country, self.country),
            (c.sender, self.sender),
            (c.direction, self.direction),
        ):
            if val is not None:
                out.append(col == val)
        if self.statuses:
            out.append(c.status.in_(self.statuses))
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["since"], d["till"] = iso(self.since), iso(self.till)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EdrFilter:
        d = dict(d)
        for k in ("since", "till"):
            if d.get(k):
                d[k] = datetime.fromisoformat(d[k].replace("Z", "+00:00"))
        return cls(**d)


def parse_fields(text: str | None) -> list[str]:
    """A comma-separated list of EDR column names (``all`` for every column)."""
    if not text:
        return list(DEFAULT_FIELDS)
    if text.strip().lower() == "all":
        return list(ALL_FIELDS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in ALL_FIELDS]
    if bad:
        raise InvalidInput(
            f"--fields: unknown EDR field(s) {', '.join(bad)}; choose from {', '.join(ALL_FIELDS)}",
            problems=[Problem("--fields", f"unknown field {n!r}") for n in bad],
        )
    if len(set(names)) != len(names):
        raise InvalidInput("--fields: a field is listed twice")
    return names


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"--format: choose one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def count(conn: Connection, flt: EdrFilter) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(EDR).where(*flt.where())).scalar_one()


# ------------------------------------------------------------ formatting

_money = functools.lru_cache(maxsize=65536)(format_micros)


def time_formatter(tz: str) -> Callable[[Any], str | None]:
    """Raw stored time (SQLite text or a driver datetime) → ISO 8601 in ``tz``."""
    try:
        zi = zone(tz)
    except TimeError as exc:
        raise InvalidInput(f"--tz: {exc}") from exc
    utc = tz.upper() in ("UTC", "ETC/UTC", "Z")
    fromiso = datetime.fromisoformat

    def fmt(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):
            if utc and len(v) == 26 and v[10] == " ":  # 'YYYY-MM-DD HH:MM:SS.ffffff' as SQLite stores it
                return v[:10] + "T" + v[11:19] + "Z" if v.endswith(".000000") else v.replace(" ", "T") + "Z"
            v = fromiso(v)
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        if utc:
            return iso(v)
        local = v.astimezone(zi)
        return local.isoformat(timespec="seconds" if local.microsecond == 0 else "microseconds")

    return fmt


def _row_formatter(fields: Sequence[str], tz: str) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """One function per export that turns a raw row into the written one (times and money formatted).

    It is generated as a single lambda, ``lambda r: (r[0], T(r[1]), …)``, from the
    positions of the time and money fields only (no user text reaches the
    source): a million rows then cost a million calls, not twenty million.
    """
    convs = {"T": time_formatter(tz), "M": _money}
    items = []
    for i, f in enumerate(fields):
        kind = "T" if f in TIME_FIELDS else "M" if f in MONEY_FIELDS else None
        items.append(f"{kind}(r[{i}])" if kind else f"r[{i}]")
    return eval(f"lambda r: ({', '.join(items)},)", convs)  # noqa: S307 (built from indices, see above)


def _driver_rows(conn: Connection, query: Any, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``query`` in chunks, straight from the driver's cursor.

    The statement is compiled once by SQLAlchemy (parameters converted by their
    column types, as an execute would) and run on the DBAPI connection, so no
    per-row ``Row`` objects are made. PostgreSQL reads through a named
    (server-side) cursor, so memory stays flat there too.
    """
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    for name, bind in compiled.binds.items():
        if name in params:
            proc = bind.type.bind_processor(dialect)
            if proc is not None:
                params[name] = proc(params[name])
    if compiled.positional:
        args: Any = tuple(params[name] for name in compiled.positiontup or ())
    else:
        args = params
    raw = conn.connection.driver_connection
    if dialect.name == "postgresql":
        cur = raw.cursor(name=f"cpaas_export_{id(query):x}")
        cur.itersize = chunk
    else:
        cur = raw.cursor()
    try:
        cur.execute(str(compiled), args)
        while part := cur.fetchmany(chunk):
            yield part
    finally:
        cur.close()


def rows(conn: Connection, flt: EdrFilter, fields: Sequence[str], *, tz: str = "UTC") -> Iterator[list[Sequence[Any]]]:
    """Formatted rows of the export, in chunks, in time order."""
    cols = [sa.type_coerce(EDR.c[f], EDR.c[f].type if f not in TIME_FIELDS else sa.String()).label(f) for f in fields]
    q = sa.select(*cols).where(*flt.where()).order_by(EDR.c.event_at, EDR.c.id)
    fmt = _row_formatter(fields, tz)
    for part in _driver_rows(conn, q, STREAM_CHUNK):
        yield list(map(fmt, part))


def write(
    conn: Connection,
    flt: EdrFilter,
    target: str | Path | IO[bytes],
    *,
    fields: Sequence[str],
    fmt: str,
    tz: str = "UTC",
    gzip: bool = False,
    sheet_rows: int = XLSX_MAX_ROWS,
) -> dict[str, Any]:
    """Stream the export to ``target`` (a path or a binary stream); returns counts."""
    fmt = check_format(fmt)
    with RowWriter(target, fields, fmt, gzip=gzip, sheet="edr", sheet_rows=sheet_rows) as w:
        for chunk in rows(conn, flt, fields, tz=tz):
            w.write_many(chunk, scalars=True)
    out: dict[str, Any] = {"rows": w.rows, "format": fmt, "fields": list(fields), "tz": tz, "gzip": gzip}
    if fmt == "xlsx":
        out["sheets"] = w.sheets
    if isinstance(target, str | Path):
        out["file"] = str(target)
        out["size_bytes"] = Path(target).stat().st_size
    return out


def email_file(smtp: dict[str, Any], to: Sequence[str], path: Path, *, subject: str, body: str) -> tuple[bool, str]:
    """Send ``path`` by e-mail; returns (sent, what happened). Too big or no
    server configured is not an error: the file stays, and the note says why."""
    try:
        settings = mail.SmtpSettings.from_config(smtp)
        mail.send(settings, to=list(to), subject=subject, body=body, attachments=[path])
    except InvalidInput as exc:
        return False, f"not e-mailed: {exc.message}"
    return True, f"e-mailed to {', '.join(to)}"


def parse_emails(text: str | None) -> list[str]:
    if not text:
        return []
    out = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in out if "@" not in a or a.startswith("@") or a.endswith("@") or " " in a]
    if bad:
        raise InvalidInput(f"--email: not an e-mail address: {', '.join(bad)}")
    return out


def default_name(fmt: str, gzip: bool, stem: str = "edr-export") -> str:
    return f"{stem}.{fmt}" + (".gz" if gzip else "")
