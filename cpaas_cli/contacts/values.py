"""Contact values as typed: phone numbers, sender names, custom field values, birthdays and genders.

Pure parsing, no database. Custom field variables are the field name
lowercased with everything but letters and digits removed (CON-04).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.imports.values import parse_bool
from cpaas_cli.models.contacts import ALL_SENDERS

GENDERS = ("male", "female", "other")
BASE_COLUMNS = ("first_name", "last_name", "birthday", "gender", "comments")
_SENDER = re.compile(r"^[A-Za-z0-9 ._&+\-]{1,32}$")


def phone(text: str, default_country: str | None = None, *, field: str = "phone", row: int | None = None) -> str:
    try:
        return normalise(text, default_country)
    except PhoneError as exc:
        raise InvalidInput(str(Problem(field, f"{text!r} {exc}", row))) from exc


def variable_name(name: str) -> str:
    """The macro variable of a custom field: its name lowercased, letters and digits only."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def sender_name(text: str) -> str:
    value = text.strip()
    if value.upper() == ALL_SENDERS:
        return ALL_SENDERS
    if not _SENDER.match(value):
        raise InvalidInput(f"sender {text!r} is not a sender ID (1-32 letters, digits, spaces or ._&+-) or ALL")
    return value


def senders(texts: Iterable[str]) -> list[str]:
    out: list[str] = []
    for t in texts:
        for part in str(t).split(","):
            if part.strip():
                name = sender_name(part)
                if name not in out:
                    out.append(name)
    if not out:
        raise InvalidInput("give at least one sender ID or ALL")
    return out


MAX_NUMBER = Decimal("1e300")
"""The largest custom-field number (a JSON number, read back as a float)."""


def parse_value(data_type: str, text: str) -> Any:
    """A custom field cell to its JSON value; ValueError with the reason."""
    value = text.strip()
    if data_type == "text":
        return value
    if data_type == "number":
        try:
            number = Decimal(value.replace(",", ".") if value.count(",") == 1 and "." not in value else value)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{text!r} is not a number")
        if abs(number) > MAX_NUMBER:  # a float would turn it into infinity (which JSON cannot hold)
            raise ValueError(f"{value[:40]!r} is out of range (at most {MAX_NUMBER:E} either way)")
        return int(number) if number == number.to_integral_value() and abs(number) < 2**53 else float(number)
    if data_type == "date":
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if data_type == "bool":
        result = parse_bool(value)
        if result is None:
            raise ValueError("is empty")
        return result
    raise ValueError(f"unknown type {data_type!r}")


def parse_birthday(text: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_gender(text: str) -> str:
    value = text.strip().lower()
    value = {"m": "male", "f": "female", "o": "other"}.get(value, value)
    if value not in GENDERS:
        raise ValueError(f"{text!r} is not one of {', '.join(GENDERS)}")
    return value
