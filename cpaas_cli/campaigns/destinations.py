"""Where a number goes: its country, the network of its number range, and the MCC/MNC.

Country: a calling code used by one country answers at once; a shared code
(+1, +7, +44, ...) asks phonenumbers which of its countries the number is
valid in; a number valid in none of them counts for the code's main country.

Network: phonenumbers' carrier data names the carrier a number *range* was
originally allocated to (``carrier.name_for_number``, mobile ranges only). It
knows nothing of number portability: a ported number is counted on its
original network. The carrier name is matched to one MCC/MNC of the same
country through the bundled MCC/MNC dictionary
(`catalog.dictionary.networks_for_carrier`); a carrier that matches no
network or several is priced at the country level (the country's MCC row),
as is a number without carrier data.

Speed: parsing a number costs tens of microseconds, so answers are memoised
per number prefix: the calling code plus at least 6 national digits, and at
least as many as the longest carrier prefix of that code (so the carrier
table answers exactly), together with the number's length. Whether a number
is of a mobile type is taken from the first valid number seen for a prefix.
An invalid number's answer is not memoised (a valid neighbour may follow)
until a prefix has given only invalid numbers several times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import phonenumberutil as pnu

from cpaas_cli.catalog.dictionary import mcc_countries, network_name, networks_for_carrier

_CODES = pnu.COUNTRY_CODE_TO_REGION_CODE
_MIN_KEY_DIGITS = 6
_INVALID_TRIES = 4  # invalid numbers of a prefix parsed before their answer is memoised
_MEMO_MAX = 500_000

NETWORK_NOTE = (
    "networks are those of the number ranges (phonenumbers carrier data, the original network of each range), "
    "not of number portability: a ported number counts on its original network. A carrier that the MCC/MNC "
    "dictionary names once is priced by network (MCC/MNC); an unknown or ambiguous one, and a number without "
    "carrier data, is priced for its country (MCC row)"
)


@cache
def _single(cc: int) -> str | None:
    regions = _CODES.get(cc)
    if not regions or len(regions) != 1 or regions[0] == "001":
        return None
    return regions[0]


@cache
def _key_digits() -> dict[int, int]:
    """National digits in the memo key per calling code (see the module text)."""
    from phonenumbers.carrierdata import CARRIER_DATA

    longest: dict[int, int] = {}
    for prefix in CARRIER_DATA:
        for size in (1, 2, 3):
            cc = int(prefix[:size])
            if cc in _CODES:
                longest[cc] = max(longest.get(cc, 0), len(prefix) - size)
                break
    return {cc: max(_MIN_KEY_DIGITS, n) for cc, n in longest.items()}


def _calling_code(phone: str) -> tuple[int, int] | None:
    """(calling code, its number of digits) of E.164 digits."""
    if not phone or phone[0] == "0":
        return None
    for size in (1, 2, 3):
        cc = int(phone[:size])
        if cc in _CODES:
            return cc, size
    return None


@dataclass(frozen=True)
class Network:
    """How a (country, carrier) pair is priced: by network when ``mnc`` is set."""

    mcc: str | None
    mnc: str | None
    name: str | None  # the dictionary's network name when recognised
    note: str | None  # why the network is not used, when it is not

    @property
    def recognised(self) -> bool:
        return self.mnc is not None


@lru_cache(maxsize=4096)
def network_for(country: str | None, carrier: str | None) -> Network:
    """The MCC/MNC of a carrier in a country, or the country's MCC with the reason."""
    mcc = mcc_of(country)
    if country is None:
        return Network(None, None, None, "unknown country")
    if not carrier:
        return Network(mcc, None, None, "no carrier data for the number range; priced for the country")
    found = networks_for_carrier(carrier, country)
    if len(found) == 1:
        key = found[0]
        return Network(key[:3], key[3:], network_name(key), None)
    if found:
        return Network(
            mcc,
            None,
            None,
            f"carrier {carrier!r} matches several networks ({', '.join(found)}); priced for the country",
        )
    return Network(
        mcc, None, None, f"carrier {carrier!r} is not in the MCC/MNC dictionary for {country}; priced for the country"
    )


Destination = tuple[str | None, str | None, str | None, str | None]  # (country, mcc, mnc, carrier)

_memo: dict[tuple[str, int], Destination] = {}
_invalid: dict[tuple[str, int], int] = {}


def _parse(phone: str, cc: int) -> tuple[Destination, bool]:
    """(destination, whether the number is valid) from phonenumbers."""
    from phonenumbers import carrier

    single = _single(cc)
    try:
        num = phonenumbers.parse("+" + phone)
    except phonenumbers.NumberParseException:
        return (single, mcc_of(single), None, None), False
    valid = pnu.number_type(num) != PhoneNumberType.UNKNOWN
    country = single
    if country is None and len(_CODES.get(cc, ())) > 1:
        region = phonenumbers.region_code_for_number(num)
        if not region or region == "001":  # valid in none of them: the code's main country
            region = pnu.region_code_for_country_code(cc)
        country = region if region and region not in ("001", "ZZ") else None
    name = (carrier.name_for_number(num, "en")[:120] or None) if valid else None
    net = network_for(country, name)
    return (country, net.mcc, net.mnc, name), valid


def destination(phone: str) -> Destination:
    """(country, mcc, mnc, carrier) of E.164 digits; mnc is None when priced for the country."""
    got = _calling_code(phone)
    if got is None:
        return None, None, None, None
    cc, size = got
    key = (phone[: size + _key_digits().get(cc, _MIN_KEY_DIGITS)], len(phone))
    hit = _memo.get(key)
    if hit is not None:
        return hit
    dest, valid = _parse(phone, cc)
    if not valid:
        tries = _invalid.get(key, 0) + 1
        _invalid[key] = tries
        if tries < _INVALID_TRIES:
            return dest
    if len(_memo) >= _MEMO_MAX:
        _memo.clear()
        _invalid.clear()
    _memo[key] = dest
    return dest


@cache
def _country_mcc() -> dict[str, str]:
    out: dict[str, str] = {}
    for mcc, country in sorted(mcc_countries().items()):
        out.setdefault(country, mcc)
    return out


def mcc_of(country: str | None) -> str | None:
    """The (first) MCC of a country, for the lookup's country row."""
    return _country_mcc().get(country) if country else None
