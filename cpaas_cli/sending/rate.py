"""The price the next message to a number would cost: the lookup of ``cpaas rates
lookup`` (the agreement's rate trees) for the sender ID's agreement and channel and
the number's network."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.campaigns import senders
from cpaas_cli.campaigns.destinations import destination
from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.rating import lookup as lk
from cpaas_cli.timeutil import iso


def next_price(
    session: Session, *, company_id: int, sender: str, to: str, at: datetime | None = None
) -> dict[str, Any]:
    """The rate of one message from ``sender`` (of the company) to ``to``; NotFound when none applies."""
    try:
        number = normalise("+" + to.strip()) if to.strip().isdigit() else None
    except PhoneError:
        number = None
    if number is None:
        problem = Problem("to", "E.164 digits without '+' expected")
        raise InvalidInput(str(problem), problems=[problem])
    sid = senders.get(session, sender, company_id=company_id)
    ag = session.get(Agreement, sid.agreement_id)
    assert ag is not None
    _country, mcc, mnc, _network = destination(number)
    if mcc is None:
        problem = Problem("to", f"{number}: no known network or country")
        raise InvalidInput(str(problem), problems=[problem])
    when = at or clock.now()
    snaps = catalog.agreement_snapshots(session, ag, when)
    q = lk.query(
        channel=sid.channel,
        resource=None,
        direction="mt",
        mccmnc=mcc + mnc if mnc else None,
        mcc=mcc,
        country=dic.mcc_country(mcc),
        sender_type=sender_type_of(sid.sender),
    )
    kind, res = catalog.resolve_for_agreement(snaps, q)
    if not res.found:
        raise NotFound(f"no rate for {number} from {sid.sender!r}: {res.reason}")
    data = catalog.result_dict(kind, res)
    data.update(
        {"agreement": ag.code, "at": iso(when), "to": number, "mccmnc": mcc + (mnc or ""), "country": q["country"]}
    )
    return data
