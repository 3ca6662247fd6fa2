"""The GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table.

The tables are written here by hand. PyPI has a few small GSM-7 codecs
(gsm0338, pygsm7, smspdu, ...), but none is widely used or clearly maintained,
and the one we already depend on (smpplib) splits escape pairs, so we keep the
two tables in our own code where they can be read and tested.

Only the default alphabet and its extension table are supported; the national
language shift tables (Turkish, Spanish, Portuguese, Indian languages) are not.

Two byte forms are provided:

* unpacked septets: one septet per byte (0x00-0x7F), an extension character
  written as ESC (0x1B) followed by its code. This is what SMPP data_coding 0
  normally carries; the SMSC packs it for the air interface.
* packed 7-bit: eight septets in seven bytes, least significant bit first,
  with optional fill bits so that septets after a UDH start on a septet
  boundary (as in the air-interface user data).
"""

from __future__ import annotations

import re

ESC = 0x1B

# Position = septet code. 0x1B is the escape to the extension table (no character).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10-0x1F (0x1B: escape, placeholder)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
assert len(BASIC) == 128

# Extension table: character -> code following ESC.
EXTENSION = {
    "\f": 0x0A,  # form feed (shown as a page break or ignored by handsets)
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

BASIC_CODE: dict[str, int] = {ch: code for code, ch in enumerate(BASIC) if code != ESC}
EXTENSION_CHARS = frozenset(EXTENSION)
CHARSET = frozenset(BASIC_CODE) | EXTENSION_CHARS

_BASIC_DECODE = {code: ch for ch, code in BASIC_CODE.items()}
_EXT_DECODE = {code: ch for ch, code in EXTENSION.items()}

NON_GSM_RE = re.compile("[^" + "".join(re.escape(c) for c in sorted(CHARSET)) + "]")
EXTENSION_RE = re.compile("[" + "".join(re.escape(c) for c in sorted(EXTENSION_CHARS)) + "]")

# str.translate table: each character -> its septet(s) as code points 0-127.
TO_SEPTETS = {ord(ch): chr(code) for ch, code in BASIC_CODE.items()}
TO_SEPTETS.update({ord(ch): chr(ESC) + chr(code) for ch, code in EXTENSION.items()})


class NotGsm7(ValueError):
    """The text has a character outside the GSM-7 default alphabet and extension table."""


def is_gsm7(text: str) -> bool:
    """True when every character is in the default alphabet or the extension table."""
    return NON_GSM_RE.search(text) is None


def first_non_gsm(text: str) -> tuple[int, str] | None:
    """Position and character of the first character GSM-7 cannot carry, or None."""
    m = NON_GSM_RE.search(text)
    return (m.start(), m.group()) if m else None


def non_gsm_chars(text: str) -> list[str]:
    """The distinct characters GSM-7 cannot carry, in order of first appearance."""
    return list(dict.fromkeys(NON_GSM_RE.findall(text)))


def extension_count(text: str) -> int:
    """How many characters of the text come from the extension table."""
    return len(EXTENSION_RE.findall(text))


def extension_positions(text: str) -> list[int]:
    """Indexes of the extension-table characters of the text."""
    return [m.start() for m in EXTENSION_RE.finditer(text)]


def septet_length(text: str) -> int:
    """Septets the text takes in GSM-7 (extension characters count 2)."""
    bad = first_non_gsm(text)
    if bad is not None:
        raise NotGsm7(f"character {bad[1]!r} (U+{ord(bad[1]):04X}) at {bad[0]} is not in the GSM-7 alphabet")
    return len(text) + extension_count(text)


def encode_septets(text: str, *, check: bool = True) -> bytes:
    """Unpacked septets, one per byte; extension characters as ESC + code.

    `check=False` skips the alphabet check for text already known to be GSM-7.
    """
    bad = first_non_gsm(text) if check else None
    if bad is not None:
        raise NotGsm7(f"character {bad[1]!r} (U+{ord(bad[1]):04X}) at {bad[0]} is not in the GSM-7 alphabet")
    return text.translate(TO_SEPTETS).encode("latin-1")


def decode_septets(data: bytes) -> str:
    """Unpacked septets back to text. A trailing lone ESC or an unknown extension code is an error."""
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b > 0x7F:
            raise ValueError(f"byte 0x{b:02X} at {i} is not a septet")
        if b == ESC:
            if i + 1 >= n:
                raise ValueError("escape at the end of the data (split escape pair)")
            code = data[i + 1]
            if code not in _EXT_DECODE:
                raise ValueError(f"unknown extension code 0x{code:02X} at {i + 1}")
            out.append(_EXT_DECODE[code])
            i += 2
        else:
            out.append(_BASIC_DECODE[b])
            i += 1
    return "".join(out)


def pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (one per byte) into 7-bit form, LSB first, after `fill_bits` zero bits."""
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0-6")
    value = 0
    shift = fill_bits
    for s in septets:
        value |= (s & 0x7F) << shift
        shift += 7
    return value.to_bytes((shift + 7) // 8, "little") if shift else b""


def unpack(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Inverse of `pack`: `count` septets read after `fill_bits` bits."""
    value = int.from_bytes(data, "little") >> fill_bits
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))
