"""The text each recipient of a campaign gets, read a page at a time.

A plain campaign sends its text (or the recipient's own text from a file
column) as it is. A personalised one renders its template per recipient:
a file value wins over the contact's value, and a variable with no value
renders empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.campaigns.destinations import Destination
from cpaas_cli.campaigns.recipients import PAGE
from cpaas_cli.contacts.values import BASE_COLUMNS
from cpaas_cli.messaging import templates as tpl
from cpaas_cli.models.campaigns import Campaign, CampaignRecipient
from cpaas_cli.models.contacts import Contact


def _pages(session: Session, c: Campaign, *, with_contacts: bool) -> Iterator[list[tuple]]:
    """Recipient rows in id order, a page at a time:
    (id, phone, country, mcc, mnc, network, values, text[, contact columns])."""
    r = CampaignRecipient.__table__
    cols = [r.c.id, r.c.phone, r.c.country, r.c.mcc, r.c.mnc, r.c.network, r.c["values"], r.c.text]
    src: Any = r
    if with_contacts:
        ct = Contact.__table__
        cols += [ct.c.first_name, ct.c.last_name, ct.c.birthday, ct.c.gender, ct.c.comments, ct.c.fields]
        src = r.outerjoin(ct, sa.and_(ct.c.company_id == c.company_id, ct.c.phone == r.c.phone))
    last = 0
    conn = session.connection()
    while True:
        q = sa.select(*cols).select_from(src).where(r.c.campaign_id == c.id, r.c.id > last).order_by(r.c.id).limit(PAGE)
        rows = conn.execute(q).all()
        if not rows:
            return
        last = rows[-1][0]
        yield rows


def messages(session: Session, c: Campaign) -> Iterator[list[tuple[str, Destination, str]]]:
    """Each recipient's (phone, (country, mcc, mnc, carrier), text), a page at a time, rendered when personalised."""
    if not c.personalised:
        for page in _pages(session, c, with_contacts=False):
            yield [(p[1], (p[2], p[3], p[4], p[5]), p[7] if p[7] is not None else c.text) for p in page]  # type: ignore[misc]
        return
    assert c.text is not None
    compiled = tpl.compile_template(c.text)
    used = list(c.variables)
    base_cols = [v for v in used if v in BASE_COLUMNS]
    idx = {"first_name": 8, "last_name": 9, "birthday": 10, "gender": 11, "comments": 12}
    with_contacts = any(v != "phone" for v in used)
    render = compiled.render
    for page in _pages(session, c, with_contacts=with_contacts):
        out = []
        for p in page:
            values = dict.fromkeys(used)
            values["phone"] = p[1]
            if with_contacts:
                for v in base_cols:
                    values[v] = p[idx[v]]
                extra = p[13]
                if extra:
                    for k, v in extra.items():
                        if k in values:
                            values[k] = v
            fv = p[6]
            if fv:
                values.update(fv)
            try:
                text = render(values)
            except Exception:  # noqa: BLE001 - the template layer names the problem
                text = tpl.render(compiled, values, row=None)
            out.append((p[1], (p[2], p[3], p[4], p[5]), text))
        yield out
