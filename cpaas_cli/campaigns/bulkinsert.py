"""Rows of a campaign written in bulk: plain tuples straight to the driver.

Used for the recipients of a new campaign and for the personalised messages
of a starting one (plain texts are copied set-based, see `materialise`).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session


class BulkInsert:
    """executemany of plain tuples straight to the driver (no per-row SQLAlchemy work).

    Each column's own bind processor (JSON serialiser, UTC datetime) is applied
    here: once for the constant columns, per row only for the varying ones
    that have a processor.
    """

    def __init__(self, session: Session, table: sa.Table, varying: list[str], constants: dict[str, Any]):
        self.conn = session.connection()
        dialect = self.conn.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        names = varying + list(constants)
        quote = dialect.identifier_preparer.quote
        pg = dialect.name == "postgresql"

        def is_json(name: str) -> bool:
            return isinstance(table.c[name].type.dialect_impl(dialect), sa.JSON)

        def processor(name: str):
            if pg and is_json(name):  # JSON text, cast in the statement
                return lambda v: None if v is None else json.dumps(v)
            return table.c[name].type.bind_processor(dialect)

        marks = [f"{mark}::jsonb" if pg and is_json(n) else mark for n in names]
        self.sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join(marks)})"
        consts = []
        for name, value in constants.items():
            proc = processor(name)
            consts.append(proc(value) if proc else value)
        self.consts = tuple(consts)
        self.procs = [(i, p) for i, n in enumerate(varying) if (p := processor(n))]

    def __call__(self, rows: list[tuple]) -> None:
        if not rows:
            return
        consts = self.consts
        if self.procs:
            out = []
            for r in rows:
                r = list(r)
                for i, p in self.procs:
                    r[i] = p(r[i])
                out.append((*r, *consts))
        else:
            out = [(*r, *consts) for r in rows]
        self.conn.exec_driver_sql(self.sql, out)
