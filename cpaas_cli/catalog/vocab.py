"""The words of a rate tree: service domains (channels), resources, attribute
levels and their allowed values, and how a value is normalised."""

from __future__ import annotations

import re

from cpaas_cli.catalog.dictionary import MccmncError, normalise_mccmnc
from cpaas_cli.geo import CountryError, check_country
from cpaas_cli.rating.lookup import MCCMNC_LEVELS, OTHERS

DOMAINS = (
    "sms",
    "rcs",
    "viber",
    "whatsapp",
    "service_purchase",
    "wechat",
    "email",
    "additional",
    "telegram",
    "bundle_grouping",
    "push",
    "tts",
    "voice",
    "push_partner",
)

# Resources of the service_purchase domain: a pack's price, by pack name
# (catalog.service.pack_price reads them; anything else there is never read).
PURCHASE_RESOURCES = ("unit_pack", "monetary_pack", "bundle_pack")

# Attribute levels a node can depend on.
LEVELS = (
    "resource",
    "direction",
    "country",
    "network",
    "mno",
    "mcc",
    "mccmnc",
    "sender_type",
    "pricing_category",
    "pricing_type",
    "billing_event",
    "region",
    "pack",
    "periodicity",
    "bundle_member",
)

CLOSED_VALUES = {
    "direction": ("mt", "mo"),
    "sender_type": ("alphanumeric", "short_code", "long_code"),
    "billing_event": ("basic", "conversation", "single"),
    "periodicity": ("monthly", "weekly"),
    "pricing_type": ("regular", "free_customer_service", "free_entry_point"),
}

# A short code has this many digits (a registered short-code sender, and the
# sender type derived from a sender text for rating and `rates lookup`).
SHORT_CODE_DIGITS = (3, 8)

COUNTER_GROUPS = ("sender_id",)

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class ValueError_(ValueError):
    pass


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


def normalise_value(level: str, value: object) -> str:
    """The stored key of ``value`` at ``level``; raises ValueError_ when not allowed."""
    text = str(value).strip()
    if text.lower() == OTHERS:
        if level in ("domain", "resource"):
            raise ValueError_(f"{level} cannot be 'others'")
        return OTHERS
    if level == "domain":
        key = slug(text)
        if key not in DOMAINS:
            raise ValueError_(f"unknown service domain {text!r} (domains: {', '.join(DOMAINS)})")
        return key
    if level == "country":
        try:
            return check_country(text)
        except CountryError as exc:
            raise ValueError_(str(exc)) from exc
    if level in MCCMNC_LEVELS:
        try:
            return normalise_mccmnc(text).key
        except MccmncError as exc:
            raise ValueError_(str(exc)) from exc
    if level == "mcc":
        try:
            m = normalise_mccmnc(text)
        except MccmncError as exc:
            raise ValueError_(str(exc)) from exc
        if m.mnc is not None:
            raise ValueError_(f"an MCC has 3 digits: {text!r}")
        return m.mcc
    if level == "pack":
        if not text:
            raise ValueError_("empty pack name")
        return text
    key = slug(text)
    allowed = CLOSED_VALUES.get(level)
    if allowed is not None and key not in allowed:
        raise ValueError_(f"{level} must be one of {', '.join(allowed)} or others, got {text!r}")
    if not key or not _SLUG.match(key):
        raise ValueError_(f"not a valid {level} value: {text!r}")
    return key


def is_short_code(text: str) -> bool:
    """Whether ``text`` has the form of a short code: ASCII digits only, as many as ``SHORT_CODE_DIGITS`` allows."""
    return text.isdigit() and text.isascii() and SHORT_CODE_DIGITS[0] <= len(text) <= SHORT_CODE_DIGITS[1]


def sender_type_of(sender: str | None) -> str | None:
    """The ``sender_type`` of a sender text, the one rule for rating and lookups:
    digits only (a leading ``+`` aside) are a short code up to
    ``SHORT_CODE_DIGITS[1]`` digits and a long code (a phone number) beyond;
    anything else is alphanumeric; no sender, no type."""
    text = (sender or "").strip()
    if not text:
        return None
    digits = text[1:] if text.startswith("+") else text
    if digits.isdigit() and digits.isascii():
        return "short_code" if len(digits) <= SHORT_CODE_DIGITS[1] else "long_code"
    return "alphanumeric"
