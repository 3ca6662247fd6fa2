"""`edr ingest`: read an EDR file in chunks, parse, rate and store each chunk.

A chunk is parsed whole (``edr/parse.py``) before anything of it is written,
rated in memory by the charging core (``charging/rater.py``), and stored with
its charges through the bulk writer (``db/bulk.py``); each chunk is committed
(in a thread, while the next one is read). Rows whose external id is stored
already are skipped, so a re-run inserts only what is missing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.audit import service as audit
from cpaas_cli.charging.events import events_of
from cpaas_cli.charging.plans import Plans
from cpaas_cli.charging.rater import RESULT_COLUMNS, UNRATED, Rater, post_charges, result_columns
from cpaas_cli.charging.vendor import costs as vendor_costs
from cpaas_cli.db import bulk
from cpaas_cli.edr.interrupt import StopRequest
from cpaas_cli.edr.parse import PARSED_COLUMNS, TIME_COLUMNS, Refs, parse_columns, parse_row
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.imports.readers import read_lists, read_rows
from cpaas_cli.models.edr import Edr

EDR = Edr.__table__
INGEST_CHUNK = 50_000  # rows per committed chunk of `edr ingest` (fewer commits and checkpoints)
INGEST_LOCK = "edr-ingest"  # held by a chunk from the check of stored ids to its commit


def chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def validate_file(
    session: Session, path: str | Path, *, max_problems: int = 50, connection_id: int | None = None
) -> int:
    """First pass: every row parses, else InvalidInput naming rows (nothing written)."""
    refs = Refs(session)
    refs.default_connection = connection_id
    problems: list[Problem] = []
    n = 0
    seen: set[str] = set()
    for row_no, raw in read_rows(path):
        n += 1
        parse_row(row_no, raw, refs, problems)
        ext = raw.get("external_id", "")
        if ext in seen:
            problems.append(Problem("external_id", f"{ext!r} appears twice in the file", row_no))
        seen.add(ext)
        if len(problems) >= max_problems:
            break
    if problems:
        raise InvalidInput.from_problems(problems, str(path))
    return n


def ingest(
    session: Session,
    path: str | Path,
    *,
    rate: bool = True,
    chunk: int = INGEST_CHUNK,
    check_first: bool = False,
    stop: StopRequest | None = None,
    connection_id: int | None = None,
) -> dict[str, Any]:
    """Ingest an EDR file (CSV, XLSX or JSONL). Commits per chunk; a chunk is
    validated whole before anything of it is written, and a bad row stops the
    run there (with ``check_first`` the whole file is validated before the
    first write). Rows whose external id is stored already are skipped, so a
    re-run after a fix or a crash inserts only what is missing. New rows are
    rated in memory (unless ``rate`` is False) and written with their charges.
    A ``stop`` asked for (Ctrl-C) ends the run before its next chunk (edr/interrupt.py).
    ``connection_id``: the vendor connection of rows whose file names none (a
    ``connection`` column); rated rows of a connection get their vendor cost."""
    with bulk.gc_paused(), bulk.writer(session).pragmas():
        return _ingest(
            session, path, rate=rate, chunk=chunk, check_first=check_first, stop=stop, connection_id=connection_id
        )


def _blocks(path: str | Path, size: int) -> Iterator[tuple[list[str], list[tuple[int, list[str]]]]]:
    """The file in chunks of ``size`` rows: (column names, [(row number, cells)]),
    one cell per name. CSV straight from ``read_csv_lists``; a workbook or JSONL
    file from ``read_rows`` (names: the keys the chunk's rows have)."""
    lists = read_lists(path)
    if lists is not None:
        names, rows = lists
        for block in chunks(rows, size):
            yield names, block
        return
    for block in chunks(read_rows(path), size):
        names = list(dict.fromkeys(chain.from_iterable(raw for _n, raw in block)))
        yield names, [(n, [raw.get(k, "") for k in names]) for n, raw in block]


def _parse_block(
    names: list[str],
    block: list[tuple[int, list[str]]],
    refs: Refs,
    where: str,
    outcome: str = "nothing was written",
) -> dict[str, list[Any]]:
    """The chunk's EDR columns: ``parse_columns``, else row by row through
    ``parse_row``, which raises InvalidInput naming each bad row and field
    (``outcome``: what the message says was written)."""
    cols = parse_columns(names, [cells for _n, cells in block], refs)
    if cols is not None:
        return cols
    problems: list[Problem] = []
    named = [(i, name) for i, name in enumerate(names) if name]
    rows = []
    for n, cells in block:
        r = parse_row(n, {name: cells[i] for i, name in named}, refs, problems)
        if r is not None:
            rows.append(r)
    exts = [r["external_id"] for r in rows]
    if len(set(exts)) != len(exts):
        dup = next(e for e in exts if exts.count(e) > 1)
        problems.append(Problem("external_id", f"{dup!r} appears twice in the file"))
    if problems:
        raise InvalidInput.from_problems(problems[:50], where, outcome=outcome)
    return {c: [r[c] for r in rows] for c in PARSED_COLUMNS}


def _ingest(
    session: Session,
    path: str | Path,
    *,
    rate: bool,
    chunk: int,
    check_first: bool,
    stop: StopRequest | None,
    connection_id: int | None,
) -> dict[str, Any]:
    if check_first:
        validate_file(session, path, connection_id=connection_id)
    refs = Refs(session)
    refs.default_connection = connection_id
    plans = Plans(session)
    out: dict[str, Any] = {"read": 0, "inserted": 0, "skipped": 0, "rated": 0, "rejected": 0, "pending": 0}
    reasons: Counter[str] = Counter()
    now = clock.now()
    w = bulk.writer(session)
    # A chunk's commit runs in a thread while the next chunk is read and parsed
    # (see _Commit); nothing else touches the session before ``settle``.
    pending: list[_Commit] = []

    def settle() -> None:
        while pending:
            pending.pop().wait()

    refs.before_query = settle
    try:
        for names, block in _blocks(path, chunk):
            if stop is not None and stop.requested:
                settle()
                stop.check(out["inserted"])
            if out["read"]:  # the chunks before are committed (or their commit is under way)
                first = block[0][0] if block else 0
                outcome = (
                    f"the chunk from row {first} on was not written; the {out['read']:,} rows before it were "
                    f"({out['inserted']:,} stored, {out['skipped']:,} stored already)"
                )
            else:
                outcome = "nothing was written"
            try:
                cols = _parse_block(names, block, refs, str(path), outcome)
            except InvalidInput:
                settle()  # what the message says was written is
                session.rollback()
                raise
            times = bulk.TimeText()
            if pending:  # the stored form of the chunk's times while the previous chunk commits
                for c in ("event_at", *TIME_COLUMNS):
                    w.prepare_times(cols[c], times)
            settle()
            exts = cols["external_id"]
            w.exclusive(INGEST_LOCK)
            # SQLite: when none of a sample of the chunk's ids is stored, the chunk goes in
            # without asking for each id first: the EDR insert skips a stored id itself
            # (the unique key is probed by the insert anyway), and if it skipped any, the
            # chunk is rolled back and done again knowing which ids are stored. (On
            # PostgreSQL COPY has no ON CONFLICT: every id is looked up first.)
            trusting = w.skips_stored and not w.stored(EDR, "external_id", _sample(exts))
            try:
                got = _write_chunk(
                    session, path, cols, set() if trusting else w.stored(EDR, "external_id", exts), refs, plans,
                    now, times, rate=rate, trusting=trusting,
                )  # fmt: skip
            except _StoredAlready:
                session.rollback()
                w.exclusive(INGEST_LOCK)
                got = _write_chunk(
                    session, path, cols, w.stored(EDR, "external_id", exts), refs, plans, now, times, rate=rate,
                    trusting=False,
                )  # fmt: skip
            if got["inserted"]:
                pending.append(_Commit(session))
            else:  # nothing written (a re-run): a thread would gain nothing
                session.commit()
            out["read"] += len(block)
            for k, v in got.items():
                if k == "rejected_reasons":
                    reasons.update(v)
                else:
                    out[k] += v
        settle()
    finally:
        # On any error the commit under way ends before the caller rolls back.
        while pending:
            pending.pop().join()
    out["rejected_reasons"] = dict(reasons.most_common())
    return out


class _Commit(threading.Thread):
    """``session.commit()`` in a thread. SQLite (and psycopg) release the GIL
    while the database writes the transaction out (on SQLite its WAL frames and
    the checkpoints, a tenth of the ingest time), so `edr ingest` reads and
    parses the next chunk meanwhile. Until ``wait`` returns, the caller touches
    neither the session nor its connection."""

    def __init__(self, session: Session):
        super().__init__(name="edr-ingest-commit", daemon=True)
        self.session = session
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.session.commit()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


SAMPLE_EVERY = 1_000  # which ids of a chunk `edr ingest` looks up before trusting the rest are new


def _sample(exts: list[str]) -> list[str]:
    """The first and last of ``exts`` and every ``SAMPLE_EVERY``-th: a chunk of a
    re-run, or the stored head or tail of an overlapping file, shows in it."""
    return [*exts[::SAMPLE_EVERY], *exts[-1:]]


class _StoredAlready(Exception):
    """The trusting insert of a chunk met ids stored already (see ``_ingest``)."""


def _write_chunk(
    session: Session,
    path: str | Path,
    cols: dict[str, list[Any]],
    have: set[str],
    refs: Refs,
    plans: Plans,
    now: datetime,
    times: bulk.TimeText,
    *,
    rate: bool,
    trusting: bool,
) -> dict[str, Any]:
    """Rate and store a parsed chunk but for the ids in ``have``, under the ingest
    lock the caller holds; its counts. ``trusting``: ``have`` was not looked up,
    and _StoredAlready is raised (the transaction to be rolled back) when the
    insert finds an id stored."""
    exts = cols["external_id"]
    got: dict[str, Any] = {"inserted": 0, "skipped": 0, "rated": 0, "rejected": 0, "pending": 0}
    keep = [i for i, e in enumerate(exts) if e not in have] if have else list(range(len(exts)))
    got["skipped"] = len(exts) - len(keep)
    if not keep:
        return got
    order = sorted(keep, key=cols["event_at"].__getitem__)
    if len(order) != len(exts) or order != keep:
        cols = {c: list(map(v.__getitem__, order)) for c, v in cols.items()}
    m = len(order)
    w = bulk.writer(session)
    ids = w.reserve_ids(EDR, m)
    charges: list[tuple] = []
    if rate:
        events = events_of(ids, cols, refs.memo["sender_type"])
        decisions, charges = Rater(session, plans, now=now, times=times).decide_events(cols["agreement_id"], events)
        result = result_columns(decisions, now)
        result.update(vendor_costs(plans.vendor, cols["connection_id"], events, cols["status"]))
    else:
        result = {c: [v] * m for c, v in zip(RESULT_COLUMNS, UNRATED, strict=True)}
    for state, k in Counter(result["rating_state"]).items():
        got["pending" if state == "unrated" else state] += k
    if got["rejected"]:
        got["rejected_reasons"] = Counter(
            r for st, r in zip(result["rating_state"], result["rating_reason"], strict=True) if st == "rejected"
        )
    stored = w.insert(
        EDR,
        {"id": ids, **cols, **result, "ingested_at": [now] * m},
        times=times,
        unless_stored="external_id" if trusting else None,
    )
    if trusting and stored != m:
        raise _StoredAlready
    got["inserted"] = m
    if charges:
        post_charges(session, charges, times=times)
    audit.record(session, action="ingest", object_type="edr", new={"file": str(path), "rows": m})
    return got
