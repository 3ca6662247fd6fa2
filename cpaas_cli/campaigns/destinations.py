"""Where a number goes: its country from the E.164 digits, and the country's MCC.

The network (MCC/MNC) of a mobile number cannot be told from the number
alone (numbers are ported between networks, and we hold no prefix table), so
campaign estimates are made per country and priced through the tree's
country row (the 3-digit MCC that the catalog lookup accepts where a level
is keyed by network).

Country: a calling code used by one country answers at once; a shared code
(+1, +7, +44, ...) asks phonenumbers, cached on the first seven digits (the
code plus the area or operator prefix that tells those countries apart); a
number valid in none of them counts for the code's main country.
"""

from __future__ import annotations

from functools import cache, lru_cache

import phonenumbers
from phonenumbers import phonenumberutil as pnu

from cpaas_cli.catalog.dictionary import _mcc_table

_CODES = pnu.COUNTRY_CODE_TO_REGION_CODE


@cache
def _single(cc: int) -> str | None:
    regions = _CODES.get(cc)
    if not regions or len(regions) != 1 or regions[0] == "001":
        return None
    return regions[0]


@lru_cache(maxsize=65536)
def _shared(prefix: str, phone: str) -> str | None:
    try:
        num = phonenumbers.parse("+" + phone)
        region = phonenumbers.region_code_for_number(num)
    except phonenumbers.NumberParseException:
        return None
    if not region or region == "001":  # not a valid number of any of them: the code's main country
        region = pnu.region_code_for_country_code(num.country_code)
    return region if region and region not in ("001", "ZZ") else None


def country_of(phone: str) -> str | None:
    """ISO 3166 alpha-2 country of an E.164 number (digits), or None when unknown."""
    for size in (1, 2, 3):
        cc = int(phone[:size])
        if cc in _CODES:
            single = _single(cc)
            if single is not None:
                return single
            return _shared(phone[:7], phone) if len(_CODES[cc]) > 1 else None
    return None


@cache
def _country_mcc() -> dict[str, str]:
    out: dict[str, str] = {}
    for mcc, country in sorted(_mcc_table()[0].items()):
        out.setdefault(country, mcc)
    return out


def mcc_of(country: str | None) -> str | None:
    """The (first) MCC of a country, for the lookup's country row."""
    return _country_mcc().get(country) if country else None
