"""Country codes (ISO 3166-1 alpha-2) via pycountry (loaded on the first check:
the commands that list or show do not pay for it)."""

from __future__ import annotations


class CountryError(ValueError):
    pass


def check_country(code: str) -> str:
    import pycountry

    up = (code or "").strip().upper()
    if len(up) != 2 or pycountry.countries.get(alpha_2=up) is None:
        raise CountryError(f"not an ISO 3166-1 alpha-2 country code: {code!r}")
    return up
