"""Coverage of an agreement: the price of every destination (`rates export`, ``GET /v1/rates/export``).

One row per country (the country row, "all networks") and per network of the
MCC/MNC dictionary, plus the MCCMNC keys the agreement's trees name that the
dictionary lacks; each row is looked up as rating looks a message up
(``catalog.service.resolve_for_agreement``), so a network priced only through
its country row shows that price. The columns are the ones a rate sheet import
maps (country, mcc, mnc, network, price), so an exported file can be edited and
imported into a plan (RIM-14: a reseller builds its price list from its
purchase prices).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli import files
from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog import service as catalog
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.rating import lookup as lk

EXPORT_COLUMNS = [
    "country",
    "mcc",
    "mnc",
    "mccmnc",
    "network",
    "status",
    "price",
    "price_type",
    "scale",
    "currency",
    "billing_rule",
    "quantity_rule",
    "source",
    "service",
    "matched",
]


def rows(session: Session, ag: Agreement, when: datetime, channel: str = "sms") -> list[dict[str, Any]]:
    """The coverage rows of ``ag`` at ``when`` for ``channel`` (the columns of EXPORT_COLUMNS)."""
    snaps = catalog.agreement_snapshots(session, ag, when)
    out = []
    for d in destinations(snaps):
        q = lk.query(channel=channel, mccmnc=d["mccmnc"] if d["mnc"] else None, mcc=d["mcc"], country=d["country"])
        kind, res = catalog.resolve_for_agreement(snaps, q)
        r = catalog.result_dict(kind, res)
        out.append({**d, **{k: r[k] for k in EXPORT_COLUMNS if k in r and k not in d}})
    return out


def destinations(snaps: list[tuple[str, lk.Snapshot]]) -> list[dict[str, Any]]:
    """Every country row and network of the dictionary, plus MCCMNC keys found in the trees."""
    countries, networks = dic.mcc_table()
    keys = set(networks) | set(countries)
    for _kind, snap in snaps:
        stack = list(snap.domains.values())
        while stack:
            n = stack.pop()
            if n.level in ("network", "mno", "mccmnc") and n.value.isdigit():
                keys.add(n.value)
            stack.extend(n.children.values())
    out = []
    for key in sorted(keys):
        mcc, mnc = key[:3], key[3:] or None
        if mcc not in countries:
            continue
        out.append(
            {
                "country": countries[mcc],
                "mcc": mcc,
                "mnc": mnc,
                "mccmnc": key,
                "network": networks.get(key) if mnc else "all networks",
            }
        )
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):  # a scale: JSON, as the CLI's csv output writes it
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def to_csv(data: list[dict[str, Any]]) -> str:
    """The rows as CSV text with a header, as ``cpaas rates export`` prints them: a blank
    cell for no value, a scale as JSON, cells a spreadsheet would run as formulas quoted
    (``files.guard_cell``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in data:
        writer.writerow([files.guard_cell(_text(row.get(c))) for c in EXPORT_COLUMNS])
    return buf.getvalue()
