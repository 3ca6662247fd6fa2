"""GSM 03.38 tables, septet encoding and 7-bit packing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpaas_cli.messaging import gsm


def test_tables_have_the_standard_size():
    assert len(gsm.BASIC_CODE) == 127  # 128 codes less the escape
    assert len(gsm.EXTENSION) == 10
    assert len(gsm.CHARSET) == 137


@pytest.mark.parametrize(
    ("char", "septets"),
    [
        ("@", b"\x00"),
        ("£", b"\x01"),
        ("\n", b"\x0a"),
        ("Ç", b"\x09"),
        ("Δ", b"\x10"),
        ("_", b"\x11"),
        ("É", b"\x1f"),
        ("¤", b"\x24"),
        ("¡", b"\x40"),
        ("§", b"\x5f"),
        ("¿", b"\x60"),
        ("à", b"\x7f"),
        ("€", b"\x1b\x65"),
        ("[", b"\x1b\x3c"),
        ("\\", b"\x1b\x2f"),
        ("|", b"\x1b\x40"),
        ("\f", b"\x1b\x0a"),
    ],
)
def test_known_codes(char, septets):
    assert gsm.encode_septets(char) == septets
    assert gsm.decode_septets(septets) == char
    assert gsm.septet_length(char) == len(septets)


@pytest.mark.parametrize("char", ["ç", "`", "\t", "\x1b", "–", "😀", "ж", "\x00"])
def test_not_gsm(char):
    assert not gsm.is_gsm7("abc" + char)
    assert gsm.first_non_gsm("abc" + char) == (3, char)
    with pytest.raises(gsm.NotGsm7):
        gsm.encode_septets(char)
    with pytest.raises(gsm.NotGsm7):
        gsm.septet_length(char)


def test_septet_length_counts_extension_twice():
    assert gsm.septet_length("a{b}€") == 8
    assert gsm.extension_count("a{b}€") == 3


def test_decode_rejects_split_escape_and_bad_bytes():
    with pytest.raises(ValueError, match="split escape"):
        gsm.decode_septets(b"a\x1b")
    with pytest.raises(ValueError, match="unknown extension"):
        gsm.decode_septets(b"\x1b\x01")
    with pytest.raises(ValueError, match="not a septet"):
        gsm.decode_septets(b"\x80")


def test_pack_known_vector():
    # The classic PDU example: "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37.
    assert gsm.pack(gsm.encode_septets("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert gsm.pack(b"") == b""


def test_pack_with_fill_bit_fills_a_full_part():
    # 6-byte UDH + 1 fill bit + 153 septets = exactly 140 bytes.
    assert 6 + len(gsm.pack(bytes(153), fill_bits=1)) == 140
    # 7-byte UDH (56 bits = 8 septets, no fill) + 152 septets = 140 bytes.
    assert 7 + len(gsm.pack(bytes(152), fill_bits=0)) == 140


gsm_text = st.text(alphabet=st.sampled_from(sorted(gsm.CHARSET)), max_size=400)


@given(gsm_text, st.integers(0, 6))
def test_septets_and_packing_round_trip(text, fill):
    septets = gsm.encode_septets(text)
    assert len(septets) == gsm.septet_length(text)
    assert gsm.decode_septets(septets) == text
    assert gsm.unpack(gsm.pack(septets, fill), len(septets), fill) == septets
