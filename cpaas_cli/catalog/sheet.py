"""Reading a rate sheet as vendors send it: finding the header row, the mapped
columns, and each row's destination, price and rules.

The header row is the one given (``--header-row``; the old spelling
``--start-row`` means the same), else the first of the first ``HEADER_SCAN_ROWS`` non-empty
rows that holds every mapped column name (a title and blank rows above it are
skipped). Column names match exactly, else ignoring case and spacing.

MCC and MNC in two columns (``--map mcc=MCC --map mnc=MNC``) make one network
key. An MNC written with 3 digits is kept as written. One written with 1 or 2
digits (a spreadsheet turns "01" into 1) takes the length the country's
networks have in the MCC/MNC dictionary: 2 digits ("1" → "01") where they all
have 2, 3 digits ("10" → "010") where they all have 3; where both lengths are
in use the one that names a known network wins and two known networks are
refused as ambiguous, naming the row. An MCC the dictionary has no networks for
takes 2 digits, except the MCCs where 3-digit MNCs are in use
(``THREE_DIGIT_MCCS``), where a short MNC is refused as ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from cpaas_cli.catalog import dictionary as dic
from cpaas_cli.catalog.vocab import OTHERS
from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.readers import JSONL_SUFFIXES, read_grid, read_rows
from cpaas_cli.models.catalog import BILLING_RULES, QUANTITY_RULES
from cpaas_cli.money import MoneyError, to_micros

ATTRIBUTES = ("country", "network", "mccmnc", "mcc", "mnc")
PROPERTIES = ("price", "billing_rule", "quantity_rule")
WHOLE_COUNTRY = {"", "others", "all", "all networks", "all operators", "*", "rest"}
HEADER_SCAN_ROWS = 50
# MCCs where MNCs of 3 digits are in use (alone or beside 2-digit ones): North
# America and the Caribbean, Mexico, India, Honduras, Argentina, Colombia.
THREE_DIGIT_MCCS = frozenset(
    [
        "302",
        "310",
        "311",
        "312",
        "313",
        "314",
        "315",
        "316",
        "330",
        "334",
        "338",
        "342",
        "344",
        "346",
        "348",
        "352",
        "354",
        "356",
        "358",
        "360",
        "365",
        "366",
        "376",
        "405",
        "708",
        "722",
        "732",
    ]
)


def parse_maps(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, column = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not column.strip():
            raise InvalidInput(f"--map: expected ATTR=COLUMN, got {item!r}")
        if key not in ATTRIBUTES + PROPERTIES:
            raise InvalidInput(f"--map: unknown attribute {key!r} (use {', '.join(ATTRIBUTES + PROPERTIES)})")
        if key in out:
            raise InvalidInput(f"--map: {key} is mapped twice")
        out[key] = column.strip()
    if not any(k in out for k in ATTRIBUTES):
        raise InvalidInput("no attribute column is mapped; map at least one of country, network, mccmnc, mcc")
    if "price" not in out:
        raise InvalidInput("no price column is mapped (--map price=COLUMN)")
    if "mnc" in out and "mcc" not in out:
        raise InvalidInput("--map mnc=COLUMN needs --map mcc=COLUMN (the MNC means nothing without its MCC)")
    if "mnc" in out and "mccmnc" in out:
        raise InvalidInput("map either mccmnc=COLUMN or mcc=COLUMN with mnc=COLUMN, not both")
    return out


def parse_price(text: str) -> int:
    """A price cell: '0.05', '0,05', ' 1 000.5 '; negatives become positive."""
    raw = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError("not a price") from exc
    if not value.is_finite():
        raise ValueError("not a price")
    try:
        return abs(to_micros(value))
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


# ----------------------------------------------------------------- MCC / MNC


@lru_cache(maxsize=1)
def _mnc_lengths() -> dict[str, frozenset[int]]:
    lengths: dict[str, set[int]] = {}
    for key in dic.mcc_table()[1]:
        lengths.setdefault(key[:3], set()).add(len(key) - 3)
    return {k: frozenset(v) for k, v in lengths.items()}


def _digits(text: str) -> str:
    raw = (text or "").strip()
    if raw.endswith(".0") and raw[:-2].isdigit():  # a spreadsheet number
        raw = raw[:-2]
    return raw


def normalise_mcc(text: str) -> str:
    raw = _digits(text)
    if not (raw.isdigit() and len(raw) == 3):
        raise ValueError(f"an MCC has 3 digits: {text!r}")
    if dic.mcc_country(raw) is None:
        raise ValueError(f"unknown MCC {raw!r}")
    return raw


def normalise_mnc(mcc: str, text: str) -> str:
    """The MNC of ``text`` in ``mcc`` as stored (see the module docstring)."""
    raw = _digits(text)
    if not raw.isdigit() or not 1 <= len(raw) <= 3:
        raise ValueError(f"an MNC has 1 to 3 digits: {text!r}")
    if len(raw) == 3:
        return raw
    lengths = _mnc_lengths().get(mcc, frozenset())
    if lengths == {2} or (not lengths and mcc not in THREE_DIGIT_MCCS):
        return raw.zfill(2)
    if lengths == {3}:
        return raw.zfill(3)
    if lengths:
        known = [c for c in (raw.zfill(2), raw.zfill(3)) if dic.network_name(mcc + c)]
        if len(known) == 1:
            return known[0]
        which = " and ".join(mcc + c for c in known) + " are both networks" if known else "neither is a known network"
        raise ValueError(f"MNC {raw!r} is ambiguous in MCC {mcc} ({which}); write the MNC with all its digits")
    raise ValueError(f"MNC {raw!r} is ambiguous in MCC {mcc}, where 3-digit MNCs are used; write all 3 digits")


# -------------------------------------------------------------------- header


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def _column_index(names: list[str], column: str) -> int | None:
    if column in names:
        return names.index(column)
    folded = [_fold(n) for n in names]
    hits = [i for i, n in enumerate(folded) if n == _fold(column)]
    return hits[0] if len(hits) == 1 else None


@dataclass
class Sheet:
    """The header of a sheet and an iterator over its data rows."""

    header_row: int | None
    detected: bool
    columns: dict[str, int]  # attribute → column index
    names: dict[str, str]  # attribute → the column's name in the file
    rows: Iterator[tuple[int, dict[str, str]]] = field(repr=False)


def open_sheet(path: Path, maps: dict[str, str], *, header_row: int | None = None, sheet: str | None = None) -> Sheet:
    """Find the header row (given or detected) and the mapped columns in it."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        return _jsonl_sheet(path, maps, sheet)
    if header_row is not None and header_row < 1:
        raise InvalidInput("--header-row counts from 1")
    grid = read_grid(path, sheet=sheet)
    scanned: list[tuple[int, list[str]]] = []
    found: tuple[int, list[str], dict[str, int]] | None = None
    for number, cells in grid:
        if header_row is not None:
            if number < header_row:
                continue
            if number > header_row:
                raise InvalidInput(f"{path.name}: row {header_row} (--header-row) is empty")
            found = (number, cells, _mapped(path, number, cells, maps, strict=True))
            break
        scanned.append((number, cells))
        idx = _mapped(path, number, cells, maps, strict=False)
        if idx:
            found = (number, cells, idx)
            break
        if len(scanned) >= HEADER_SCAN_ROWS:
            break
    if found is None:
        if header_row is not None:
            raise InvalidInput(f"{path.name}: row {header_row} (--header-row) is empty or past the end")
        if not scanned:
            raise InvalidInput(f"{path.name}: no data rows")
        wanted = ", ".join(repr(c) for c in maps.values())
        first = ", ".join(c for c in scanned[0][1] if c)[:300]
        raise InvalidInput(
            f"{path.name}: no row among the first {len(scanned)} names every mapped column ({wanted}); "
            f"row {scanned[0][0]} reads: {first}; give the header's row with --header-row N"
        )
    number, cells, idx = found
    names = {a: cells[i] for a, i in idx.items()}
    return Sheet(number, header_row is None, idx, names, _data(grid, idx))


def _mapped(path: Path, number: int, cells: list[str], maps: dict[str, str], *, strict: bool) -> dict[str, int]:
    idx: dict[str, int] = {}
    missing = []
    for attr, column in maps.items():
        i = _column_index(cells, column)
        if i is None:
            missing.append(column)
        else:
            idx[attr] = i
    if missing and strict:
        shown = ", ".join(c for c in cells if c)[:300]
        raise InvalidInput(
            f"{path.name}: row {number} has no column named {', '.join(map(repr, missing))} (it reads: {shown})"
        )
    return {} if missing else idx


def _data(grid: Iterator[tuple[int, list[str]]], idx: dict[str, int]) -> Iterator[tuple[int, dict[str, str]]]:
    for number, cells in grid:
        width = len(cells)
        yield number, {a: (cells[i] if i < width else "") for a, i in idx.items()}


def _jsonl_sheet(path: Path, maps: dict[str, str], sheet: str | None) -> Sheet:
    rows = read_rows(path, sheet=sheet)

    def data() -> Iterator[tuple[int, dict[str, str]]]:
        for number, row in rows:
            yield number, {a: row.get(c, "") for a, c in maps.items()}

    return Sheet(None, False, {a: i for i, a in enumerate(maps)}, dict(maps), data())


# ---------------------------------------------------------------------- rows


def _rule_index(values: tuple[str, ...]) -> dict[str, list[str]]:
    return {v.replace("_", " "): [v] for v in values}


_BR = _rule_index(BILLING_RULES)
_QR = _rule_index(QUANTITY_RULES)


@dataclass
class Entry:
    """One valid row: its destination key (one value per level) and its rate."""

    row: int
    key: tuple[str, ...]
    label: str | None
    price: int
    billing_rule: str | None
    quantity_rule: str | None
    cells: dict[str, str]

    def rate(self) -> tuple[int, str | None, str | None]:
        return self.price, self.billing_rule, self.quantity_rule


def levels_of(maps: dict[str, str], columns: dict[str, int]) -> list[str]:
    """The tree levels the mapped columns make, in the order of the columns.

    network, mccmnc and MCC+MNC make one level keyed by MCCMNC (labelled with
    the network name); an MCC column alone is a level of its own."""
    attrs = sorted((a for a in ATTRIBUTES if a in maps), key=lambda a: columns[a])
    levels: list[str] = []
    for a in attrs:
        level = "network" if a in ("network", "mccmnc", "mnc") or (a == "mcc" and "mnc" in maps) else a
        if level not in levels:
            levels.append(level)
    return levels


def parse_row(number: int, row: dict[str, str], maps: dict[str, str], levels: list[str], bad) -> Entry | None:
    """The entry of one row, or None after reporting each bad cell to ``bad(row, attr, value, reason)``."""
    ok = True
    country = None
    key: dict[str, str] = {}
    label = None

    def fail(attr: str, value: str, reason: str) -> None:
        nonlocal ok
        bad(number, attr, value, reason)
        ok = False

    def check_country(attr: str, text: str, mcc: str) -> None:
        if country and country != OTHERS and dic.mcc_country(mcc) != country:
            fail(attr, text, f"MCC {mcc} is {dic.mcc_country(mcc)}, not {country}")

    if "country" in maps:
        text = row.get("country", "")
        if text.strip().lower() in ("others", "rest of world", "rest of the world", "*"):
            country = OTHERS
        else:
            country = dic.match_country(text)
            if country is None:
                fail("country", text, "no country matches" if text else "empty")
        key["country"] = country or ""
    if "mcc" in maps and "mnc" in maps:
        text = row.get("mcc", "")
        mnc_text = row.get("mnc", "")
        label = row.get("network", "") or None if "network" in maps else None
        try:
            mcc = normalise_mcc(text)
        except ValueError as exc:
            fail("mcc", text, str(exc))
        else:
            check_country("mcc", text, mcc)
            if mnc_text.strip().lower() in WHOLE_COUNTRY:
                key["network"] = mcc  # the country row
            else:
                try:
                    key["network"] = mcc + normalise_mnc(mcc, mnc_text)
                except ValueError as exc:
                    fail("mnc", mnc_text, str(exc))
                else:
                    label = label or dic.network_name(key["network"])
    elif "mcc" in maps:
        text = row.get("mcc", "")
        try:
            m = dic.normalise_mccmnc(text)
            key["mcc"] = m.mcc
            check_country("mcc", text, m.mcc)
        except dic.MccmncError as exc:
            fail("mcc", text, str(exc))
    if "mccmnc" in maps:
        text = row.get("mccmnc", "")
        label = row.get("network", "") or None if "network" in maps else None
        if text.strip().lower() in WHOLE_COUNTRY:
            key["network"] = OTHERS
        else:
            try:
                m = dic.normalise_mccmnc(text)
                key["network"] = m.key
                check_country("mccmnc", text, m.mcc)
                if label is None:
                    label = dic.network_name(m.key)
            except dic.MccmncError as exc:
                fail("mccmnc", text, str(exc))
    elif "network" in maps and "mnc" not in maps:
        text = row.get("network", "")
        if text.strip().lower() in WHOLE_COUNTRY:
            key["network"] = OTHERS
        else:
            found = None
            if country and country != OTHERS:
                for cand in mccs_of(country):
                    found = dic.match_network(text, mcc=cand)
                    if found:
                        break
            else:
                found = dic.match_network(text)
            if found is None:
                fail("network", text, "no network in the MCC/MNC dictionary matches")
            else:
                key["network"], label = found, text
    price_text = row.get("price", "")
    price = 0
    try:
        price = parse_price(price_text)
    except ValueError as exc:
        fail("price", price_text, str(exc) if price_text else "empty")
    row_br = row_qr = None
    if "billing_rule" in maps and row.get("billing_rule", "").strip():
        row_br = dic.match_best(row["billing_rule"], _BR)
        if row_br is None:
            fail("billing_rule", row["billing_rule"], f"not one of {', '.join(BILLING_RULES)}")
    if "quantity_rule" in maps and row.get("quantity_rule", "").strip():
        row_qr = dic.match_best(row["quantity_rule"], _QR)
        if row_qr is None:
            fail("quantity_rule", row["quantity_rule"], f"not one of {', '.join(QUANTITY_RULES)}")
    if not ok:
        return None
    return Entry(number, tuple(key[level] for level in levels), label, price, row_br, row_qr, row)


def mccs_of(country: str) -> list[str]:
    return [m for m, c in dic.mcc_countries().items() if c == country]


def conflict_attrs(a: Entry, b: Entry) -> list[str]:
    """The rate properties in which two rows for one destination differ."""
    pairs = (
        ("price", a.price, b.price),
        ("billing_rule", a.billing_rule, b.billing_rule),
        ("quantity_rule", a.quantity_rule, b.quantity_rule),
    )
    return [attr for attr, x, y in pairs if x != y]


__all__ = ["Entry", "Sheet", "open_sheet", "parse_maps", "parse_price", "parse_row"]
