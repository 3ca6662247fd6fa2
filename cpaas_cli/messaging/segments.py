"""Encoding choice, segment counting and the splitter.

Units: GSM-7 counts septets (an extension character is ESC + code = 2);
UCS-2 counts UTF-16 code units (a character outside the BMP, e.g. most emoji,
is a surrogate pair = 2). The splitter works on whole characters, so it never
separates an escape pair or a surrogate pair; a part may therefore hold one
unit less than its capacity.

A text that fits one message (160 septets / 70 units) goes as one part without
a UDH. Longer texts are split into parts that each carry a concatenation
header; the payload room of a part depends on that header:

=========  ===============================  ======  ======
concat     how the parts are tied together   GSM-7   UCS-2
=========  ===============================  ======  ======
``udh8``   UDH IEI 0x00, 8-bit reference     153     67
``udh16``  UDH IEI 0x08, 16-bit reference    152     66
``sar``    SMPP sar_* TLVs, 16-bit ref,      153     67
           no UDH in short_message
=========  ===============================  ======  ======

(UDH of 6 bytes = 48 bits -> 7 septets with 1 fill bit, 160 - 7 = 153; UDH of 7
bytes = 56 bits = 8 septets, 160 - 8 = 152; UCS-2: (140 - 6) / 2 = 67 and
(140 - 7) / 2 = 66.)

The segment COUNT is always the number of parts the splitter produces with the
same settings, i.e. what is actually submitted (and what a vendor bills). The
default is ``udh8`` with a per-connection counter reference (not a random one),
which gives the 153/67 figures of the requirements and of the industry's
billing convention. A vendor that wants 16-bit references gets ``sar`` (still
153/67) or ``udh16`` (152/66, and the count follows).

Empty text: one segment with an empty payload (a submit of an empty message is
still one message); rejecting empty messages is the caller's business.
"""

from __future__ import annotations

import re
import secrets
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.messaging import gsm

GSM7 = "GSM7"
UCS2 = "UCS2"
Encoding = Literal["GSM7", "UCS2"]

SINGLE_CAPACITY = {GSM7: 160, UCS2: 70}
MAX_PARTS = 255
DATA_CODING = {GSM7: 0x00, UCS2: 0x08}  # SMPP data_coding defaults; vendors may differ


class Concat(str, Enum):
    udh8 = "udh8"
    udh16 = "udh16"
    sar = "sar"


DEFAULT_CONCAT = Concat.udh8

PART_CAPACITY = {
    Concat.udh8: {GSM7: 153, UCS2: 67},
    Concat.udh16: {GSM7: 152, UCS2: 66},
    Concat.sar: {GSM7: 153, UCS2: 67},
}

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Analysis:
    encoding: Encoding
    chars: int  # code points
    units: int  # septets (GSM7) or UTF-16 code units (UCS2)
    segments: int
    per_segment_units: list[int]
    capacity: int  # units per segment (single-message or per-part figure)
    concat: Concat

    def as_dict(self) -> dict:
        return {
            "encoding": self.encoding,
            "characters": self.chars,
            "units": self.units,
            "segments": self.segments,
            "per_segment_units": list(self.per_segment_units),
            "capacity_per_segment": self.capacity,
            "concat": self.concat.value,
        }


@dataclass(frozen=True, slots=True)
class Part:
    seq: int  # 1-based
    total: int
    text: str
    units: int
    encoding: Encoding
    payload: bytes  # the encoded text of this part, without UDH
    udh: bytes = b""  # concatenation header (b"" for a single part or for sar)
    ref: int | None = None  # concatenation reference (None for a single part)
    packed: bool = False

    @property
    def short_message(self) -> bytes:
        """UDH + payload: the bytes for SMPP short_message (set esm_class UDHI 0x40 when udh)."""
        return self.udh + self.payload

    @property
    def data_coding(self) -> int:
        return DATA_CODING[self.encoding]


class RefAllocator:
    """Concatenation references for one connection: a 16-bit counter that wraps.

    A counter (not a random number) keeps references of consecutive long
    messages distinct for 65,536 messages (256 with 8-bit UDH). The start is
    random by default so that two connections do not run in step.
    """

    def __init__(self, start: int | None = None):
        self._next = secrets.randbelow(0x10000) if start is None else start & 0xFFFF
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            ref = self._next
            self._next = (ref + 1) & 0xFFFF
            return ref


def udh_concat(ref: int, total: int, seq: int, *, ref_bits: Literal[8, 16] = 16) -> bytes:
    """The user data header of one part: UDHL, then IEI 0x00 (8-bit ref) or 0x08 (16-bit ref)."""
    if not 1 <= total <= MAX_PARTS or not 1 <= seq <= total:
        raise ValueError(f"bad part numbers: seq {seq} of {total}")
    if ref_bits == 8:
        if not 0 <= ref <= 0xFF:
            raise ValueError(f"8-bit reference out of range: {ref}")
        return bytes((0x05, 0x00, 0x03, ref, total, seq))
    if ref_bits == 16:
        if not 0 <= ref <= 0xFFFF:
            raise ValueError(f"16-bit reference out of range: {ref}")
        return bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))
    raise ValueError("ref_bits must be 8 or 16")


def _check(text: str) -> None:
    m = _LONE_SURROGATE.search(text)
    if m:
        problem = Problem("text", f"lone surrogate U+{ord(m.group()):04X} at position {m.start()}")
        raise InvalidInput(f"{problem}", problems=[problem])


def choose_encoding(text: str, encoding: Encoding | None = None) -> Encoding:
    """GSM7 when every character fits, else UCS2; a forced GSM7 on other text is InvalidInput."""
    if encoding is None:
        return GSM7 if gsm.is_gsm7(text) else UCS2
    if encoding == GSM7:
        bad = gsm.non_gsm_chars(text)
        if bad:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:5])
            problem = Problem("text", f"not in the GSM-7 alphabet: {shown}")
            raise InvalidInput(str(problem), problems=[problem])
        return GSM7
    if encoding == UCS2:
        return UCS2
    raise ValueError(f"unknown encoding {encoding!r}")


def _wide_count(text: str, enc: Encoding) -> int:
    return gsm.extension_count(text) if enc == GSM7 else len(_ASTRAL.findall(text))


def _bounds(text: str, enc: Encoding, cap: int) -> list[tuple[int, int, int]]:
    """Greedy split on whole characters: [(start, end, units)], for a text with 2-unit characters.

    Works on the positions of the 2-unit characters only: the units of
    text[i:j] are (j - i) + (2-unit characters in [i, j)), found by bisection.
    """
    wide = gsm.extension_positions(text) if enc == GSM7 else [m.start() for m in _ASTRAL.finditer(text)]
    out: list[tuple[int, int, int]] = []
    i, wi, n = 0, 0, len(text)
    while i < n:
        lo, hi = i + 1, min(n, i + cap)  # i + 1 always fits (cap >= 2)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - i) + bisect_left(wide, mid, wi) - wi <= cap:
                lo = mid
            else:
                hi = mid - 1
        wj = bisect_left(wide, lo, wi)
        out.append((i, lo, (lo - i) + wj - wi))
        i, wi = lo, wj
    return out


def _layout(text: str, enc: Encoding, concat: Concat) -> tuple[int, int, list[tuple[int, int, int]] | None, list[int]]:
    """(units, capacity, bounds or None when uniform, per-segment units)."""
    n = len(text)
    wide = _wide_count(text, enc)
    units = n + wide
    single = SINGLE_CAPACITY[enc]
    if units <= single:
        return units, single, None, [units]
    cap = PART_CAPACITY[concat][enc]
    if wide == 0:
        full, rest = divmod(units, cap)
        return units, cap, None, [cap] * full + ([rest] if rest else [])
    bounds = _bounds(text, enc, cap)
    return units, cap, bounds, [b[2] for b in bounds]


def analyse(text: str, *, encoding: Encoding | None = None, concat: Concat = DEFAULT_CONCAT) -> Analysis:
    """Encoding, units and segments of a text, as `split` would send it with the same settings."""
    _check(text)
    enc = choose_encoding(text, encoding)
    units, cap, _, sizes = _layout(text, enc, Concat(concat))
    return Analysis(
        encoding=enc,
        chars=len(text),
        units=units,
        segments=len(sizes),
        per_segment_units=sizes,
        capacity=cap,
        concat=Concat(concat),
    )


def _encode(text: str, enc: Encoding) -> bytes:
    return gsm.encode_septets(text, check=False) if enc == GSM7 else text.encode("utf-16-be")


def split(
    text: str,
    *,
    ref: int | RefAllocator | None = None,
    encoding: Encoding | None = None,
    concat: Concat = DEFAULT_CONCAT,
    packed: bool = False,
) -> list[Part]:
    """The parts to submit, each with its payload bytes (and UDH for multi-part udh8/udh16).

    `ref` (an int or a RefAllocator, asked only when the text needs several
    parts) is required for multi-part texts; with udh8 only its low 8 bits are
    used. `packed` packs GSM-7 payloads 7-bit (with fill bits after the UDH);
    the default is unpacked septets, one per byte.
    """
    _check(text)
    concat = Concat(concat)
    enc = choose_encoding(text, encoding)
    units, cap, bounds, sizes = _layout(text, enc, concat)
    if len(sizes) == 1:
        payload = _encode(text, enc)
        if packed and enc == GSM7:
            payload = gsm.pack(payload)
        return [Part(1, 1, text, units, enc, payload, packed=packed and enc == GSM7)]
    total = len(sizes)
    if total > MAX_PARTS:
        problem = Problem("text", f"needs {total} parts; at most {MAX_PARTS} can be concatenated")
        raise InvalidInput(str(problem), problems=[problem])
    if ref is None:
        raise ValueError("a multi-part text needs a concatenation reference")
    r = ref.next() if isinstance(ref, RefAllocator) else int(ref)
    if concat is Concat.udh8:
        r &= 0xFF
    elif not 0 <= r <= 0xFFFF:
        raise ValueError(f"16-bit reference out of range: {r}")
    if bounds is None:  # every character is one unit
        bounds = []
        start = 0
        for size in sizes:
            bounds.append((start, start + size, size))
            start += size
    parts: list[Part] = []
    for seq, (start, end, size) in enumerate(bounds, 1):
        chunk = text[start:end]
        if concat is Concat.sar:
            udh = b""
        else:
            udh = udh_concat(r, total, seq, ref_bits=8 if concat is Concat.udh8 else 16)
        payload = _encode(chunk, enc)
        if packed and enc == GSM7:
            payload = gsm.pack(payload, (7 - (len(udh) * 8) % 7) % 7)
        parts.append(Part(seq, total, chunk, size, enc, payload, udh, r, packed and enc == GSM7))
    return parts


@dataclass
class Tally:
    """Running totals over many messages (e.g. one campaign's personalised texts)."""

    messages: int = 0
    segments: int = 0
    max_segments: int = 0
    min_segments: int | None = None
    max_units: int = 0
    by_encoding: dict[str, int] = field(default_factory=lambda: {GSM7: 0, UCS2: 0})

    def add(self, a: Analysis) -> None:
        self.messages += 1
        self.segments += a.segments
        self.max_segments = max(self.max_segments, a.segments)
        self.min_segments = a.segments if self.min_segments is None else min(self.min_segments, a.segments)
        self.max_units = max(self.max_units, a.units)
        self.by_encoding[a.encoding] += 1

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "segments": self.segments,
            "max_segments": self.max_segments,
            "min_segments": self.min_segments,
            "max_units": self.max_units,
            "gsm7_messages": self.by_encoding[GSM7],
            "ucs2_messages": self.by_encoding[UCS2],
        }


# ------------------------------------------------------------ fast counting

_NON_GSM_SEARCH = gsm.NON_GSM_RE.search
_EXT_FINDALL = gsm.EXTENSION_RE.findall
_ASTRAL_FINDALL = _ASTRAL.findall
_LONE_SEARCH = _LONE_SURROGATE.search
_UDH8 = PART_CAPACITY[Concat.udh8]


def measure(text: str) -> tuple[Encoding, int, int]:
    """(encoding, units, segments) of a text with the default settings, as `analyse` gives them.

    The fast path for counting many messages: one regex search picks the
    encoding, one findall counts the 2-unit characters, and arithmetic gives
    the segments; only a multi-part text that holds 2-unit characters goes
    through the splitter's bounds (an escape or surrogate pair is never split,
    so the count there is not a plain division). No objects are built.
    """
    if _NON_GSM_SEARCH(text) is None:
        enc: Encoding = GSM7
        wide = len(_EXT_FINDALL(text))
        single = 160
    else:
        if _LONE_SEARCH(text) is not None:
            _check(text)
        enc = UCS2
        wide = len(_ASTRAL_FINDALL(text)) if not text.isascii() else 0
        single = 70
    units = len(text) + wide
    if units <= single:
        return enc, units, 1
    cap = _UDH8[enc]
    if wide == 0:
        return enc, units, -(-units // cap)
    return enc, units, _count_parts(text, enc, cap)


_ESC_CHAR = chr(gsm.ESC)


def _count_parts(text: str, enc: Encoding, cap: int) -> int:
    """Parts of a multi-part text with 2-unit characters, counted on its units.

    GSM-7: the septet string (an extension character is ESC + code; no code
    equals ESC), so a part that would end on an ESC ends one unit earlier.
    UCS-2: the UTF-16 code units, so a part that would end on a high
    surrogate ends one unit earlier. Same greedy cut as `_bounds`.
    """
    if enc == GSM7:
        units = text.translate(gsm.TO_SEPTETS)
        n = len(units)
        pos = parts = 0
        while pos < n:
            end = pos + cap
            if end < n and units[end - 1] == _ESC_CHAR:
                end -= 1
            pos = end
            parts += 1
        return parts
    data = text.encode("utf-16-be")
    n = len(data) // 2
    pos = parts = 0
    while pos < n:
        end = pos + cap
        if end < n and 0xD8 <= data[2 * end - 2] <= 0xDB:
            end -= 1
        pos = end
        parts += 1
    return parts


def encoding_segments(text: str) -> tuple[Encoding, int]:
    """(encoding, segments) with the default settings; `measure` without the units.

    A text of at most 80 GSM-7 / 35 UCS-2 characters is one segment whatever
    its 2-unit characters, so those are not counted at all.
    """
    if _NON_GSM_SEARCH(text) is None:
        if len(text) <= 80:
            return GSM7, 1
        wide = len(_EXT_FINDALL(text))
        units = len(text) + wide
        if units <= 160:
            return GSM7, 1
        if wide == 0:
            return GSM7, -(-units // 153)
        return GSM7, _count_parts(text, GSM7, 153)
    if _LONE_SEARCH(text) is not None:
        _check(text)
    if len(text) <= 35:
        return UCS2, 1
    wide = len(_ASTRAL_FINDALL(text)) if not text.isascii() else 0
    units = len(text) + wide
    if units <= 70:
        return UCS2, 1
    if wide == 0:
        return UCS2, -(-units // 67)
    return UCS2, _count_parts(text, UCS2, 67)


def count_segments(text: str) -> int:
    """Segments of a text with the default settings (agrees with ``analyse(text).segments``)."""
    return encoding_segments(text)[1]
