"""Country codes (ISO 3166-1 alpha-2) via pycountry."""

from __future__ import annotations

import pycountry


class CountryError(ValueError):
    pass


def check_country(code: str) -> str:
    up = (code or "").strip().upper()
    if len(up) != 2 or pycountry.countries.get(alpha_2=up) is None:
        raise CountryError(f"not an ISO 3166-1 alpha-2 country code: {code!r}")
    return up
