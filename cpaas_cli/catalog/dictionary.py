"""Reference dictionaries for rate trees and imports: countries (key ISO
3166-1 alpha-2; alpha-3, numeric and English name as definitions) and the
bundled MCC/MNC list (``data/mccmnc.csv``, see ``data/SOURCE.md``).

Matching follows the seed's rule: a full (case-insensitive) match first; then,
for best match, the most similar value; several hits → the smallest key.
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pycountry

DATA = Path(__file__).resolve().parent / "data" / "mccmnc.csv"
BEST_MATCH_CUTOFF = 0.75


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@lru_cache(maxsize=1)
def _countries() -> tuple[dict[str, list[str]], dict[str, str]]:
    """(folded value → sorted keys, key → English name)."""
    index: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for c in pycountry.countries:
        names[c.alpha_2] = c.name
        values = {c.alpha_2, c.alpha_3, c.numeric, str(int(c.numeric)), c.name}
        for attr in ("common_name", "official_name"):
            if getattr(c, attr, None):
                values.add(getattr(c, attr))
        for v in values:
            index.setdefault(_fold(v), set()).add(c.alpha_2)
    return {k: sorted(v) for k, v in index.items()}, names


def country_name(alpha2: str) -> str | None:
    return _countries()[1].get(alpha2)


def match_best(text: str, index: dict[str, list[str]]) -> str | None:
    """Full match first; then the most similar value; ties → smallest key."""
    folded = _fold(text)
    if not folded:
        return None
    hits = index.get(folded)
    if hits:
        return hits[0]
    best: tuple[float, str] | None = None
    for value, keys in index.items():
        if len(value) <= 3:  # codes are matched fully, never approximately
            continue
        score = _similarity(folded, value)
        if score < BEST_MATCH_CUTOFF:
            continue
        key = keys[0]
        if best is None or score > best[0] or (score == best[0] and key < best[1]):
            best = (score, key)
    return best[1] if best else None


def _similarity(query: str, value: str) -> float:
    """0..1: 0.9 when every word of the query starts a word of the value,
    otherwise the sequence-matcher ratio of the two strings."""
    words = value.split()
    if all(any(w.startswith(q) for w in words) for q in query.split()):
        return 0.9
    return difflib.SequenceMatcher(None, query, value).ratio()


@lru_cache(maxsize=8192)
def match_country(text: str) -> str | None:
    """ISO alpha-2 for an alpha-2/alpha-3/numeric code or an English name."""
    return match_best(text, _countries()[0])


@dataclass(frozen=True)
class Mccmnc:
    mcc: str
    mnc: str | None  # None = the whole country (a 3-digit value)

    @property
    def key(self) -> str:
        return self.mcc + (self.mnc or "")


@lru_cache(maxsize=1)
def mcc_table() -> tuple[dict[str, str], dict[str, str]]:
    """(mcc → country, mccmnc → network name)."""
    countries: dict[str, str] = {}
    networks: dict[str, str] = {}
    with DATA.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["mnc"]:
                networks[row["mcc"] + row["mnc"]] = row["network"]
            else:
                countries.setdefault(row["mcc"], row["country"])
    return countries, networks


def mcc_country(mcc: str) -> str | None:
    return mcc_table()[0].get(mcc)


def mcc_countries() -> dict[str, str]:
    """MCC → country (ISO alpha-2) of the bundled dictionary."""
    return mcc_table()[0]


def network_name(mccmnc: str) -> str | None:
    return mcc_table()[1].get(mccmnc)


@lru_cache(maxsize=1)
def _network_index() -> dict[str, list[str]]:
    index: dict[str, set[str]] = {}
    for key, name in mcc_table()[1].items():
        index.setdefault(_fold(name), set()).add(key)
    return {k: sorted(v) for k, v in index.items()}


def match_network(text: str, *, mcc: str | None = None) -> str | None:
    """MCCMNC of a network given by name (restricted to one MCC when known)."""
    index = _network_index()
    if mcc:
        index = {k: [x for x in v if x.startswith(mcc)] for k, v in index.items()}
        index = {k: v for k, v in index.items() if v}
    return match_best(text, index)


class MccmncError(ValueError):
    pass


_SEPARATORS = re.compile(r"[\s\-/._]+")


def normalise_mccmnc(text: str) -> Mccmnc:
    """AMB-17: digits only; the first 3 are the MCC, the rest the MNC, kept as a
    string of 2 or 3 digits; 3 digits alone mean the whole country.

    Separators (space, '-', '/', '.', '_') are allowed between MCC and MNC;
    a 1-digit MNC written after a separator is zero-padded to 2 ("214-1" →
    21401). A spreadsheet number such as "21401.0" is read as 21401.
    """
    raw = (text or "").strip()
    if raw.endswith(".0") and raw[:-2].isdigit():
        raw = raw[:-2]
    parts = [p for p in _SEPARATORS.split(raw) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise MccmncError(f"not an MCC/MNC code: {text!r}")
    if len(parts) == 1:
        digits = parts[0]
        mcc, mnc = digits[:3], digits[3:]
        if len(digits) not in (3, 5, 6):
            raise MccmncError(f"an MCCMNC has 3, 5 or 6 digits: {text!r}")
    elif len(parts) == 2 and len(parts[0]) == 3 and 1 <= len(parts[1]) <= 3:
        mcc, mnc = parts[0], parts[1].rjust(2, "0")
    else:
        raise MccmncError(f"not an MCC/MNC code: {text!r}")
    if mcc_country(mcc) is None:
        raise MccmncError(f"unknown MCC {mcc!r} in {text!r}")
    return Mccmnc(mcc, mnc or None)


# ------------------------------------------------ networks by carrier name
#
# Carrier names (e.g. phonenumbers' "Vodafone", "Orange France", "DigiMobil")
# and the dictionary's network names ("Vodafone Spain", "DIGI mobil (Best
# Spain Telecom)") are compared within one country by normalised keys: folded
# (case, accents, punctuation), spaces removed, and again without trailing
# country names or generic words ("Mobile", "Telecom", "Ltd", ...); a
# parenthesised part is an alias ("Telefonica Germany (O2)" is also "O2").
# Written by hand: no library maps carrier names to MCC/MNC codes.

_GENERIC = (
    "mobile mobil movil mobiles telecom telecoms telecommunication telecommunications communications "
    "wireless cellular network networks ltd limited plc inc llc sa sas sl bv ab ag gmbh spa group"
)
_GENERIC_WORDS = frozenset(_GENERIC.split())
# Short names written after a network's name that pycountry does not give.
_COUNTRY_ALIASES = {"GB": ("uk",), "US": ("usa",)}
_PAREN = re.compile(r"\(([^)]*)\)")


@lru_cache(maxsize=512)
def _country_phrases(country: str) -> tuple[tuple[str, ...], ...]:
    """Folded names of a country (as word tuples), longest first."""
    names: set[str] = {country, *_COUNTRY_ALIASES.get(country, ())}
    c = pycountry.countries.get(alpha_2=country)
    if c is not None:
        names.add(c.alpha_3)
        for attr in ("name", "common_name", "official_name"):
            value = getattr(c, attr, None)
            if value:
                names.update((value, value.split(",")[0]))
    phrases = {tuple(_fold(n).split()) for n in names}
    return tuple(sorted((p for p in phrases if p), key=len, reverse=True))


def _stripped_forms(words: list[str], phrases: tuple[tuple[str, ...], ...]) -> list[str]:
    """The name without its trailing country names and generic words, one word or phrase at a time."""
    words = list(words)
    out: list[str] = []
    while len(words) > 1:
        if words[-1] in _GENERIC_WORDS:
            words.pop()
        else:
            p = next((p for p in phrases if len(words) > len(p) and tuple(words[-len(p) :]) == p), None)
            if p is None:
                break
            del words[-len(p) :]
        out.append("".join(words))
    return out


def network_keys(name: str, country: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(full keys, all keys) of a network or carrier name within a country.

    Full keys: the folded name without spaces (and each parenthesised alias).
    All keys add each of those stripped of trailing country names and generic
    words, one at a time (forms shorter than 2 characters are dropped).
    """
    phrases = _country_phrases(country) if country else ()
    full: set[str] = set()
    keys: set[str] = set()
    for part in (_PAREN.sub(" ", name or ""), *_PAREN.findall(name or "")):
        words = _fold(part).split()
        if not words:
            continue
        full.add("".join(words))
        keys.update(k for k in _stripped_forms(words, phrases) if len(k) >= 2)
    return frozenset(full), frozenset(full | keys)


@lru_cache(maxsize=512)
def _country_networks(country: str) -> tuple[tuple[str, frozenset[str], frozenset[str]], ...]:
    """(mccmnc, full keys, all keys) of the dictionary's networks in a country."""
    out = []
    for key, name in sorted(mcc_table()[1].items()):
        if mcc_country(key[:3]) == country:
            out.append((key, *network_keys(name, country)))
    return tuple(out)


@lru_cache(maxsize=4096)
def networks_for_carrier(carrier: str, country: str) -> tuple[str, ...]:
    """The MCCMNCs of ``country`` whose dictionary name matches a carrier name.

    A match of the full keys wins over a match of the stripped ones. One
    result: the network; none: unknown to the dictionary; several: ambiguous.
    """
    full, keys = network_keys(carrier, country)
    if not full:
        return ()
    nets = _country_networks(country)
    exact = tuple(k for k, f, _a in nets if f & full)
    if exact:
        return exact
    return tuple(k for k, _f, a in nets if a & keys)
