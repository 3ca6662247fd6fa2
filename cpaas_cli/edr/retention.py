"""EDR retention: whole months of EDRs (and their reseller CDRs) older than what
the operator keeps, archived to a file when asked, then removed in batches.

``cpaas edr retention --keep-months N`` keeps the current calendar month (UTC)
and the N before it; every earlier month is a candidate. Per month:

1. With ``--archive-dir``, the month's EDRs (every column, times in UTC) are
   written to ``edr-YYYY-MM.csv.gz`` and its reseller CDRs to
   ``edr-level-YYYY-MM.csv.gz`` (through ``edr/export.py`` and the one row
   writer) before anything is removed. A file of that name is never
   overwritten: a second run of the same month (after a crash, or once its
   draft invoices are confirmed) writes ``edr-YYYY-MM.1.csv.gz`` and so on.
2. The EDRs that may go are removed in batches of ``--batch``, each batch one
   transaction: its reseller CDRs first, then the EDRs.

What stays, decided here (what an invoice and the books need):

- An EDR with a charge that no confirmed invoice covers (not invoiced yet, or on
  a draft) stays: the invoice to come is built from it. The report counts them
  per month (``kept_uninvoiced``); run and confirm the invoices, then run the
  retention again.
- The ledger (``charge`` rows), invoices, their lines and claims, balances and
  the audit log are never removed: balances are sums of the ledger and a
  confirmed invoice must be reproducible. A removed EDR's charges keep its id;
  ``invoice charges`` then shows them without the EDR's fields (the archive
  has them).
- Months are whole: the cut is the first day of a month, never a day inside one.

Each month removed writes an audit row (``edr.retention``). On PostgreSQL the
EDR table is one heap today, so its months are deleted in batches as on
SQLite; when ``edr`` is partitioned by month (issue 30, part 3) a month goes by
detaching and dropping its partition instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit import service as audit
from cpaas_cli.billing.periods import add_months
from cpaas_cli.edr import export
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.exports.writers import RowWriter
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr, EdrLevel
from cpaas_cli.models.invoices import Invoice, InvoiceCharge
from cpaas_cli.money import format_micros

EDR = Edr.__table__
LEVEL = EdrLevel.__table__
CHG = Charge.__table__
IC = InvoiceCharge.__table__
INV = Invoice.__table__
COLUMNS = ["month", "edrs", "removable", "kept_uninvoiced", "removed", "cdrs_removed", "archive", "cdr_archive"]
MAX_BATCH = 1_000_000


@dataclass
class Month:
    month: str  # YYYY-MM
    edrs: int = 0
    removable: int = 0
    kept_uninvoiced: int = 0
    removed: int = 0
    cdrs_removed: int = 0
    archive: str | None = None
    cdr_archive: str | None = None


def cutoff(keep_months: int, now: datetime | None = None) -> datetime:
    """The first instant kept: the first day (UTC) of the month ``keep_months`` before the current one."""
    now = (now or clock.now()).astimezone(UTC)
    y, m = add_months(now.year, now.month, -keep_months)
    return datetime(y, m, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    y, m = add_months(start.year, start.month, 1)
    return datetime(y, m, 1, tzinfo=UTC)


# An EDR may go when every charge of it is covered by a confirmed invoice (or it has none).
_UNINVOICED = (
    sa.select(sa.literal(1))
    .select_from(CHG)
    .where(
        CHG.c.edr_id == EDR.c.id,
        ~sa.exists(
            sa.select(sa.literal(1))
            .select_from(IC.join(INV, INV.c.id == IC.c.invoice_id))
            .where(IC.c.charge_id == CHG.c.id, INV.c.status == "confirmed")
        ),
    )
    .exists()
)


def months(session: Session, before: datetime) -> list[Month]:
    """The months before ``before`` that hold EDRs, oldest first, with their counts."""
    first = session.execute(sa.select(sa.func.min(EDR.c.event_at)).where(EDR.c.event_at < before)).scalar()
    if first is None:
        return []
    first = first.astimezone(UTC) if first.tzinfo else first.replace(tzinfo=UTC)
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    out: list[Month] = []
    while start < before:
        end = _next_month(start)
        span = [EDR.c.event_at >= start, EDR.c.event_at < end]
        n = int(session.execute(sa.select(sa.func.count()).select_from(EDR).where(*span)).scalar() or 0)
        if n:
            kept = int(
                session.execute(sa.select(sa.func.count()).select_from(EDR).where(*span, _UNINVOICED)).scalar() or 0
            )
            out.append(Month(start.strftime("%Y-%m"), edrs=n, removable=n - kept, kept_uninvoiced=kept))
        start = end
    return out


def _free_name(directory: Path, stem: str) -> Path:
    """``stem.csv.gz`` in ``directory``, or ``stem.1.csv.gz``, ``stem.2.csv.gz``…: never an existing file."""
    path, n = directory / f"{stem}.csv.gz", 0
    while path.exists():
        n += 1
        path = directory / f"{stem}.{n}.csv.gz"
    return path


def _archive(session: Session, m: Month, start: datetime, end: datetime, directory: Path) -> None:
    """The month's EDRs and reseller CDRs to two gzip CSV files (written whole, then renamed)."""
    conn = session.connection()
    path = _free_name(directory, f"edr-{m.month}")
    part = path.with_name(path.name + ".part")
    export.write(conn, export.EdrFilter(start, end), part, fields=export.ALL_FIELDS, fmt="csv", gzip=True)
    part.rename(path)
    m.archive = str(path)
    cols = [c.name for c in LEVEL.columns]
    q = sa.select(LEVEL).where(LEVEL.c.event_at >= start, LEVEL.c.event_at < end).order_by(LEVEL.c.id)
    lpath = _free_name(directory, f"edr-level-{m.month}")
    lpart = lpath.with_name(lpath.name + ".part")
    fmt = export.time_formatter("UTC")
    money = {cols.index("unit_price"), cols.index("cost")}  # decimal text, as the EDR export writes money

    def cell(i: int, v: Any) -> Any:
        if isinstance(v, datetime):
            return fmt(v)
        return format_micros(v) if i in money and v is not None else v

    with RowWriter(lpart, cols, "csv", gzip=True, sheet="edr_level") as w:
        for chunk in session.execute(q.execution_options(yield_per=50_000)).partitions():
            w.write_many([[cell(i, v) for i, v in enumerate(r)] for r in chunk], scalars=True)
    lpart.rename(lpath)
    m.cdr_archive = str(lpath)


def run(
    session: Session,
    *,
    keep_months: int,
    archive_dir: Path | None = None,
    batch: int = 50_000,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Apply the retention (see the module docstring); commits per batch. With
    ``dry_run`` nothing is written: the months and counts that would go."""
    problems = []
    if keep_months < 1:
        problems.append(Problem("--keep-months", "must be at least 1 (the current month is always kept)"))
    if not 1 <= batch <= MAX_BATCH:
        problems.append(Problem("--batch", f"must be between 1 and {MAX_BATCH:,}"))
    if archive_dir is not None and not dry_run and not archive_dir.is_dir():
        problems.append(Problem("--archive-dir", f"{archive_dir} is not a directory"))
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    before = cutoff(keep_months)
    found = months(session, before)
    total = sum(m.removable for m in found)
    done = 0
    for m in found:
        start = datetime.strptime(m.month, "%Y-%m").replace(tzinfo=UTC)
        end = _next_month(start)
        if dry_run:
            if archive_dir is not None:
                m.archive = str(_free_name(archive_dir, f"edr-{m.month}"))
                m.cdr_archive = str(_free_name(archive_dir, f"edr-level-{m.month}"))
            continue
        if archive_dir is not None:
            _archive(session, m, start, end, archive_dir)
        span = [EDR.c.event_at >= start, EDR.c.event_at < end]
        while True:
            # the next batch, named by a subquery (no id list: SQLite caps bound values)
            ids = sa.select(EDR.c.id).where(*span, ~_UNINVOICED).order_by(EDR.c.id).limit(batch).scalar_subquery()
            m.cdrs_removed += session.execute(sa.delete(LEVEL).where(LEVEL.c.edr_id.in_(ids))).rowcount or 0
            n = session.execute(sa.delete(EDR).where(EDR.c.id.in_(ids))).rowcount or 0
            session.commit()
            if not n:
                break
            m.removed += n
            done += n
            if progress is not None:
                progress(done, total)
        audit.record(
            session, action="edr.retention", object_type="edr", new=asdict(m) | {"kept_from": before.isoformat()}
        )
        session.commit()
    return {
        "keep_months": keep_months,
        "kept_from": before.isoformat(),
        "dry_run": dry_run,
        "months": [asdict(m) for m in found],
        "removed": sum(m.removed for m in found),
        "removable": total,
        "kept_uninvoiced": sum(m.kept_uninvoiced for m in found),
    }
