"""Phone numbers to E.164 digits (no '+'), the way contacts store them.

What "valid" means here: the number parses with phonenumbers and
``is_possible_number_with_reason`` says IS_POSSIBLE, i.e. its country calling
code exists and its national significant number has a length that the
numbering plan allows (numbers that are only dialable locally are refused:
they cannot be reached from a messaging platform). We do not use
``is_valid_number``: it checks number ranges that change every month, and a
contact list should not lose a subscriber because our metadata is older than
the operator's allocation.

Accepted input: a leading '+', a leading '00' (taken as the international
prefix whatever the default country), national numbers when a default country
is given, and the separators space, dash, dot, slash and parentheses.

The rule for digits without '+' or '00' (``--default-country`` is for national
numbers only):

1. With a default country, the digits are read as a national number of that
   country first; when that reading is a *valid* number there (see below), it
   is the answer.
2. Otherwise (no default country, or the national reading is not valid there),
   the digits are read as an international number without its '+': a country
   calling code, then the national number. When that is a valid number for
   that calling code, it is the answer ("447911123456" is +44 7911 123456).
3. Otherwise, with a default country, the national reading stands as before
   (kept when its length is possible, refused with its reason when not); without
   one, the number is refused for having no country code.

"Valid" here is stricter than "possible": the length is possible *and* the
national number matches the numbering plan's pattern of assigned ranges
(phonenumbers' general description of the country). This is what decides
between the two readings of a number without '+'; a number with '+' is still
only checked for a possible length (see above).

Why there is a hand-written fast path: ``phonenumbers.parse`` spends most of
its time on free-text extraction (regexes for extensions, letters, punctuation)
that a contact column does not need; at a million rows it costs ~25 µs a row.
``normalise`` below strips separators with ``str.translate`` and then repeats
parse's own steps for plain digit strings (country code extraction, the
default-country code check, national prefix stripping through the library's
own helpers, the length check against cached possible lengths), several times
faster. Anything it does not recognise as plain digits goes to the library.
``tests/test_contacts_phones.py`` checks it against ``reference`` (the library
only) over a table of cases and thousands of generated numbers.
"""

from __future__ import annotations

from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonenumberutil import ValidationResult

_SEPARATORS = str.maketrans("", "", " -.()/\t\u00a0")
_CODES = pnu.COUNTRY_CODE_TO_REGION_CODE
_MIN_NSN = 2
_MAX_NSN = 17


class PhoneError(ValueError):
    """A number that cannot be turned into a reachable E.164 number; the message says why."""


@cache
def _metadata_for_code(cc: int):
    region = pnu.region_code_for_country_code(cc)
    return PhoneMetadata.metadata_for_region_or_calling_code(cc, region)


@cache
def _lengths(cc: int) -> tuple[frozenset[int], frozenset[int]]:
    md = _metadata_for_code(cc)
    if md is None:
        return frozenset(), frozenset()
    return frozenset(md.general_desc.possible_length), frozenset(md.general_desc.possible_length_local_only or ())


@cache
def _region(country: str):
    """(metadata, calling code as text) for a default country, or PhoneError."""
    code = (country or "").strip().upper()
    md = PhoneMetadata.metadata_for_region(code, None)
    if md is None:
        raise PhoneError(f"unknown default country {country!r}")
    return md, str(md.country_code)


def _length_problem(cc: int, nsn: str) -> str | None:
    possible, local = _lengths(cc)
    n = len(nsn)
    if n in possible:
        return None
    if n in local:
        return "is a local-only number (dial it with its area code)"
    if not possible:
        return f"country code +{cc} has no numbering plan"
    if n < min(possible):
        return "is too short"
    if n > max(possible):
        return "is too long"
    return "has a length that the numbering plan does not allow"


def _strip_prefix(nsn: str, md) -> str:
    """parse()'s national prefix step: keep the stripped number only if its length is not refused."""
    if md.national_prefix_for_parsing is None:
        return nsn
    _, stripped, _ = pnu._maybe_strip_national_prefix_carrier_code(nsn, md)
    if stripped is nsn or stripped == nsn:
        return nsn
    result = pnu._test_number_length(stripped, md)
    if result in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH):
        return nsn
    return stripped


def _split_international(digits: str) -> tuple[int, str]:
    if len(digits) <= _MIN_NSN:
        raise PhoneError("is too short")
    for size in (1, 2, 3):
        cc = int(digits[:size])
        if digits[0] != "0" and cc in _CODES:
            return cc, digits[size:]
    raise PhoneError("has an unknown country calling code")


def normalise(text: str, default_country: str | None = None) -> str:
    """E.164 digits (without '+') for a phone cell, or PhoneError with the reason."""
    raw = text.translate(_SEPARATORS)
    if not raw:
        raise PhoneError("is empty")
    plus = raw[0] == "+"
    digits = raw[1:] if plus else raw
    if not digits.isdigit() or not digits.isascii():
        return _slow(text, default_country)
    if not plus and digits.startswith("00"):
        plus, digits = True, digits[2:]
    if plus:
        cc, nsn = _split_international(digits)
        md = _metadata_for_code(cc)
        if md is not None:
            nsn = _strip_prefix(nsn, md)
    elif default_country and _idd(default_country, digits) is not None:
        cc, nsn = _split_international(_idd(default_country, digits) or "")
        md = _metadata_for_code(cc)
        if md is not None:
            nsn = _strip_prefix(nsn, md)
    elif not default_country:
        found = _as_international(digits)
        if found is None:
            raise PhoneError(NO_COUNTRY_CODE)
        cc, nsn = found
    else:
        md, cc_text = _region(default_country)
        cc = md.country_code
        nsn = digits
        took_code = False
        if digits.startswith(cc_text):
            general = md.general_desc
            candidate = _strip_prefix_plain(digits[len(cc_text) :], md)
            if (
                not pnu._match_national_number(digits, general, False)
                and pnu._match_national_number(candidate, general, False)
            ) or pnu._test_number_length(digits, md) == ValidationResult.TOO_LONG:
                nsn, took_code = candidate, True
        if not took_code:
            nsn = _strip_prefix(nsn, md)
        if not valid_for_plan(cc, nsn):
            cc, nsn = _as_international(digits) or (cc, nsn)
    if len(nsn) < _MIN_NSN:
        raise PhoneError("is too short")
    if len(nsn) > _MAX_NSN:
        raise PhoneError("is too long")
    problem = _length_problem(cc, nsn)
    if problem:
        raise PhoneError(problem)
    return f"{cc}{nsn}"


NO_COUNTRY_CODE = "has no country code (start it with + or 00, or give a default country)"


def valid_for_plan(cc: int, nsn: str) -> bool:
    """Whether ``nsn`` is a valid national number for calling code ``cc``: a
    possible length and the plan's pattern of assigned ranges (module docstring)."""
    md = _metadata_for_code(cc)
    if md is None or len(nsn) < _MIN_NSN or _length_problem(cc, nsn) is not None:
        return False
    return bool(pnu._match_national_number(nsn, md.general_desc, False))


def _as_international(digits: str) -> tuple[int, str] | None:
    """(calling code, national number) of digits read as an international number
    without its '+', when that is a valid number; None otherwise."""
    if digits[:1] == "0":
        return None
    try:
        cc, nsn = _split_international(digits)
    except PhoneError:
        return None
    md = _metadata_for_code(cc)
    if md is not None:
        nsn = _strip_prefix(nsn, md)
    return (cc, nsn) if valid_for_plan(cc, nsn) else None


@cache
def _idd_pattern(country: str):
    md, _ = _region(country)
    return pnu.re_compile(md.international_prefix) if md.international_prefix else None


def _idd(country: str, digits: str) -> str | None:
    """The digits after the default country's own international prefix (e.g. 011 in the US), if present."""
    pattern = _idd_pattern(country)
    if pattern is None:
        return None
    stripped, rest = pnu._parse_prefix_as_idd(pattern, digits)
    return rest if stripped else None


def _strip_prefix_plain(nsn: str, md) -> str:
    """The national prefix step as _maybe_extract_country_code runs it (no length check)."""
    if md.national_prefix_for_parsing is None:
        return nsn
    _, stripped, _ = pnu._maybe_strip_national_prefix_carrier_code(nsn, md)
    return stripped


def _slow(text: str, default_country: str | None) -> str:
    if default_country:
        _region(default_country)
    return reference(text, default_country)


def reference(text: str, default_country: str | None = None) -> str:
    """The same answer from phonenumbers alone (slow; the yardstick for the fast path)."""
    cleaned = text.strip()
    compact = cleaned.translate(_SEPARATORS)
    if compact.startswith("00"):
        cleaned = "+" + compact[2:]
    region = (default_country or "").upper() or None
    if not cleaned.translate(_SEPARATORS):
        raise PhoneError("is empty")
    if cleaned.startswith("+0"):  # our rule: no calling code starts with 0 (the library would try its IDD)
        raise PhoneError("has an unknown country calling code")
    if cleaned.startswith("+"):
        return _reference_parse(cleaned, region)
    foreign = _reference_international(compact)
    if region is None:
        if foreign is None:
            raise PhoneError(NO_COUNTRY_CODE)
        return foreign
    try:
        national = _reference_parse(cleaned, region)
    except PhoneError:
        if foreign is not None:
            return foreign
        raise
    if foreign is not None and not valid_for_plan(
        int(national[: _cc_length(national)]), national[_cc_length(national) :]
    ):
        return foreign
    return national


def _cc_length(e164: str) -> int:
    for size in (1, 2, 3):
        if int(e164[:size]) in _CODES:
            return size
    return 0


def _reference_international(compact: str) -> str | None:
    """The library's reading of digits as '+' and the digits, when it is a valid number."""
    if not compact.isdigit() or compact[:1] == "0":
        return None
    try:
        num = _reference_parse("+" + compact, None)
    except PhoneError:
        return None
    n = _cc_length(num)
    return num if valid_for_plan(int(num[:n]), num[n:]) else None


def _reference_parse(cleaned: str, region: str | None) -> str:
    try:
        num = phonenumbers.parse(cleaned, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if region is None and not cleaned.startswith("+"):
                raise PhoneError("has no country code (start it with + or 00, or give a default country)") from exc
            raise PhoneError("has an unknown country calling code") from exc
        if exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
            raise PhoneError("is too short") from exc
        if exc.error_type == NumberParseException.TOO_LONG:
            raise PhoneError("is too long") from exc
        raise PhoneError("is not a phone number") from exc
    if num.extension:
        raise PhoneError("has an extension")
    reason = phonenumbers.is_possible_number_with_reason(num)
    if reason != ValidationResult.IS_POSSIBLE:
        nsn = pnu.national_significant_number(num)
        raise PhoneError(_length_problem(num.country_code, nsn) or "is not a possible number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)[1:]
