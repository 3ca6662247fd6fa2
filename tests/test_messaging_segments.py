"""Segment counting and the splitter: boundary tables and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpaas_cli.errors import InvalidInput
from cpaas_cli.messaging import gsm
from cpaas_cli.messaging.segments import (
    MAX_PARTS,
    PART_CAPACITY,
    Concat,
    RefAllocator,
    analyse,
    split,
    udh_concat,
)

CYR = "ж"  # one UCS-2 unit, not GSM
EMOJI = "😀"  # a surrogate pair: two UCS-2 units


def sizes(text, **kw):
    a = analyse(text, **kw)
    return a.encoding, a.segments, a.per_segment_units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM7", 1, [0])),
        ("a" * 160, ("GSM7", 1, [160])),
        ("a" * 161, ("GSM7", 2, [153, 8])),
        ("a" * 306, ("GSM7", 2, [153, 153])),
        ("a" * 307, ("GSM7", 3, [153, 153, 1])),
        ("a" * 158 + "€", ("GSM7", 1, [160])),
        ("a" * 159 + "€", ("GSM7", 2, [153, 8])),
        # an escape pair that would straddle the 153 boundary moves to the next part
        ("a" * 151 + "€" + "a" * 10, ("GSM7", 2, [153, 10])),
        ("a" * 152 + "€" + "a" * 10, ("GSM7", 2, [152, 12])),
        (CYR * 70, ("UCS2", 1, [70])),
        (CYR * 71, ("UCS2", 2, [67, 4])),
        ("a" * 69 + CYR, ("UCS2", 1, [70])),
        (CYR * 68 + EMOJI, ("UCS2", 1, [70])),
        (CYR * 69 + EMOJI, ("UCS2", 2, [67, 4])),
        # a surrogate pair that would straddle the 67 boundary moves to the next part
        (CYR * 65 + EMOJI + CYR * 10, ("UCS2", 2, [67, 10])),
        (CYR * 66 + EMOJI + CYR * 10, ("UCS2", 2, [66, 12])),
        (EMOJI * 35, ("UCS2", 1, [70])),
        (EMOJI * 36, ("UCS2", 2, [66, 6])),
    ],
)
def test_boundaries_udh8(text, expected):
    assert sizes(text) == expected
    assert [p.units for p in split(text, ref=1)] == expected[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, ("GSM7", 1, [160])),
        ("a" * 161, ("GSM7", 2, [152, 9])),
        ("a" * 305, ("GSM7", 3, [152, 152, 1])),  # 2 segments with udh8: the count follows the header sent
        ("a" * 151 + "€" + "a" * 10, ("GSM7", 2, [151, 12])),
        ("a" * 150 + "€" + "a" * 10, ("GSM7", 2, [152, 10])),
        (CYR * 71, ("UCS2", 2, [66, 5])),
        (CYR * 65 + EMOJI + CYR * 10, ("UCS2", 2, [65, 12])),
        (CYR * 64 + EMOJI + CYR * 10, ("UCS2", 2, [66, 10])),
    ],
)
def test_boundaries_udh16(text, expected):
    assert sizes(text, concat=Concat.udh16) == expected
    assert [p.units for p in split(text, ref=1, concat=Concat.udh16)] == expected[2]


def test_sar_has_udh8_sizes_and_no_header():
    text = "a" * 306
    assert sizes(text, concat=Concat.sar) == ("GSM7", 2, [153, 153])
    parts = split(text, ref=0xBEEF, concat=Concat.sar)
    assert [(p.udh, p.ref, p.seq, p.total) for p in parts] == [(b"", 0xBEEF, 1, 2), (b"", 0xBEEF, 2, 2)]


def test_empty_text_is_one_empty_part():
    (part,) = split("")
    assert (part.seq, part.total, part.units, part.payload, part.udh, part.ref) == (1, 1, 0, b"", b"", None)


def test_single_part_has_no_header_and_needs_no_ref():
    (part,) = split("Hello €", packed=False)
    assert part.udh == b"" and part.ref is None
    assert part.payload == b"Hello \x1b\x65"
    assert part.data_coding == 0
    (part,) = split("Привет")
    assert part.payload == "Привет".encode("utf-16-be") and part.data_coding == 8


def test_forced_ucs2_and_forced_gsm():
    assert analyse("hello", encoding="UCS2").encoding == "UCS2"
    with pytest.raises(InvalidInput, match="not in the GSM-7 alphabet"):
        analyse("hello “you”", encoding="GSM7")


def test_lone_surrogate_is_invalid():
    with pytest.raises(InvalidInput, match="lone surrogate U\\+D83D at position 1"):
        analyse("a\ud83d")


def test_too_many_parts():
    assert analyse("a" * (MAX_PARTS * 153)).segments == MAX_PARTS
    split("a" * (MAX_PARTS * 153), ref=1)
    with pytest.raises(InvalidInput, match="needs 256 parts"):
        split("a" * (MAX_PARTS * 153 + 1), ref=1)


def test_multi_part_needs_a_reference():
    with pytest.raises(ValueError, match="reference"):
        split("a" * 161)


def test_udh_bytes():
    assert udh_concat(0xAB, 3, 2, ref_bits=8) == bytes.fromhex("050003AB0302")
    assert udh_concat(0x1234, 3, 2) == bytes.fromhex("06080412340302")
    for bad in [(0, 0, 1), (0, 2, 3), (0, 256, 1)]:
        with pytest.raises(ValueError):
            udh_concat(*bad)
    with pytest.raises(ValueError):
        udh_concat(256, 2, 1, ref_bits=8)
    with pytest.raises(ValueError):
        udh_concat(0x10000, 2, 1)


def test_udh8_uses_low_byte_of_a_16_bit_ref():
    parts = split("a" * 200, ref=0x1234, concat=Concat.udh8)
    assert [p.udh for p in parts] == [bytes.fromhex("050003340201"), bytes.fromhex("050003340202")]


def test_ref_allocator_counts_and_wraps():
    refs = RefAllocator(start=0xFFFE)
    assert [refs.next() for _ in range(3)] == [0xFFFE, 0xFFFF, 0]
    assert 0 <= RefAllocator().next() <= 0xFFFF


def test_allocator_is_asked_only_for_multi_part():
    refs = RefAllocator(start=7)
    split("short", ref=refs)
    parts = split("a" * 400, ref=refs, concat=Concat.udh16)
    assert {p.ref for p in parts} == {7}
    assert parts[0].udh == bytes.fromhex("06080400070301")
    assert refs.next() == 8


def test_packed_parts_fit_140_bytes():
    for concat in (Concat.udh8, Concat.udh16):
        parts = split("a" * 400, ref=1, concat=concat, packed=True)
        assert [len(p.short_message) for p in parts[:-1]] == [140, 140]


# --- properties -------------------------------------------------------------

ALPHABET = st.one_of(
    st.sampled_from(sorted(gsm.BASIC_CODE)),
    st.sampled_from(sorted(gsm.EXTENSION)),
    st.sampled_from([EMOJI, "👍🏽", "🇪🇸", CYR, "“", "—", "é", "\U0001f9ea"]),
    st.characters(codec="utf-8"),  # any code point but surrogates
)
texts = st.one_of(
    st.lists(ALPHABET, max_size=700).map("".join),
    st.text(alphabet=st.sampled_from(sorted(gsm.CHARSET)), min_size=140, max_size=480),
    st.text(alphabet=st.sampled_from([CYR, EMOJI, "a"]), min_size=60, max_size=220),
)


def _decode(part, fill):
    if part.encoding == "UCS2":
        return part.payload.decode("utf-16-be")  # strict: a split surrogate pair fails here
    septets = gsm.unpack(part.payload, part.units, fill) if part.packed else part.payload
    return gsm.decode_septets(septets)  # a split escape pair fails here


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(list(Concat)), st.booleans(), st.integers(0, 0xFFFF))
def test_split_properties(text, concat, packed, ref):
    a = analyse(text, concat=concat)
    parts = split(text, ref=ref, concat=concat, packed=packed)

    # the count is the number of parts, segment by segment
    assert a.segments == len(parts)
    assert a.per_segment_units == [p.units for p in parts]
    assert a.units == sum(p.units for p in parts)
    assert a.chars == len(text)
    # the parts re-join to the text, and each payload decodes to its own part
    assert "".join(p.text for p in parts) == text
    multi = len(parts) > 1
    cap = PART_CAPACITY[concat][a.encoding] if multi else (160 if a.encoding == "GSM7" else 70)
    for seq, p in enumerate(parts, 1):
        assert (p.seq, p.total, p.encoding) == (seq, len(parts), a.encoding)
        fill = (7 - len(p.udh) * 8 % 7) % 7 if p.encoding == "GSM7" else 0
        assert _decode(p, fill) == p.text
        # never ends inside an escape pair or a surrogate pair
        if p.encoding == "GSM7" and not p.packed:
            assert not p.payload.endswith(b"\x1b")  # no extension code is 0x1B
        if p.encoding == "UCS2" and p.payload:
            assert not 0xD800 <= int.from_bytes(p.payload[-2:], "big") <= 0xDBFF
        # within the unit and byte budgets of the header actually emitted
        assert p.units <= cap
        assert (len(p.udh) * 8 + fill + p.units * (7 if p.encoding == "GSM7" else 16)) <= 140 * 8
        if p.packed or p.encoding == "UCS2":
            assert len(p.short_message) <= 140
        # the header names this part
        if multi and concat is Concat.udh8:
            assert p.udh == udh_concat(ref & 0xFF, len(parts), seq, ref_bits=8)
        elif multi and concat is Concat.udh16:
            assert p.udh == udh_concat(ref, len(parts), seq, ref_bits=16)
        else:
            assert p.udh == b""
    # greedy on whole characters: at most one unit of each full part is lost
    if multi:
        assert all(p.units >= cap - 1 for p in parts[:-1])
