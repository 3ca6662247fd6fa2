"""What still refers to a company, so `tenant delete` can say what blocks it.

Every table with a foreign key to ``company`` is found from the models'
metadata (a table added later is covered without a change here); the rows of
each are counted, capped, so a company with millions of EDRs answers at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

CAP = 1000

# how a message names the rows of a table (default: the table name with spaces, plus "s")
NAMES = {"stop_list_entry": "stop-list entries", "edr": "EDRs", "sender_id": "sender IDs", "company": "companies"}


def blockers(session: Session, company_id: int, *, handled: set[str]) -> list[str]:
    """``"contacts (3)"``-style phrases for each table (other than those in
    ``handled``, which the caller deletes or checks itself) whose rows refer to
    the company; an empty list when nothing does."""
    import cpaas_cli.models.all  # noqa: F401  (every table in the metadata)
    from cpaas_cli.db.base import metadata

    found: list[str] = []
    for table in metadata.sorted_tables:
        if table.name in handled:
            continue
        cols = [fk.parent for fk in table.foreign_keys if fk.column.table.name == "company"]
        if not cols:
            continue
        refs = sa.select(sa.literal(1)).where(sa.or_(*(c == company_id for c in cols))).limit(CAP + 1).subquery()
        n = session.execute(sa.select(sa.func.count()).select_from(refs)).scalar_one()
        if n:
            name = NAMES.get(table.name, table.name.replace("_", " ") + "s")
            found.append(f"{name} ({n if n <= CAP else f'{CAP:,}+'})")
    return found
