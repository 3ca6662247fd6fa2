"""The fast segment counter against `analyse`: the boundary table and a property test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpaas_cli.errors import InvalidInput
from cpaas_cli.messaging.segments import analyse, count_segments, encoding_segments, measure

EMOJI = "😀"

BOUNDARIES = [
    ("", "GSM7", 0, 1),
    ("a" * 160, "GSM7", 160, 1),
    ("a" * 161, "GSM7", 161, 2),
    ("a" * 306, "GSM7", 306, 2),  # 2 x 153
    ("a" * 307, "GSM7", 307, 3),
    ("a" * 153, "GSM7", 153, 1),
    ("a" * 154, "GSM7", 154, 1),
    ("a" * 70 + "é", "GSM7", 71, 1),  # é is GSM-7
    ("ж" * 70, "UCS2", 70, 1),
    ("ж" * 71, "UCS2", 71, 2),
    ("ж" * 134, "UCS2", 134, 2),  # 2 x 67
    ("ж" * 135, "UCS2", 135, 3),
    ("ж" * 67, "UCS2", 67, 1),
    ("ж" * 68, "UCS2", 68, 1),
    ("€" * 80, "GSM7", 160, 1),  # extension characters count 2
    ("€" * 81, "GSM7", 162, 2),
    # an extension character at position 153: its escape pair would straddle the cut
    ("a" * 152 + "€" + "a" * 10, "GSM7", 164, 2),
    ("a" * 152 + "€" + "a" * 152, "GSM7", 306, 3),  # 152 | € + 151 | 1
    ("a" * 151 + "€" + "a" * 153, "GSM7", 306, 2),  # the pair ends exactly at 153
    # an emoji at position 67: its surrogate pair would straddle the cut
    ("ж" * 66 + EMOJI + "ж" * 67, "UCS2", 135, 3),
    ("ж" * 65 + EMOJI + "ж" * 67, "UCS2", 134, 2),
    (EMOJI * 35, "UCS2", 70, 1),
    (EMOJI * 36, "UCS2", 72, 2),
    # CRLF line ends are two characters (CR and LF are both GSM-7)
    ("line\r\n" * 26 + "abcd", "GSM7", 160, 1),
    ("line\r\n" * 26 + "abcde", "GSM7", 161, 2),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), BOUNDARIES)
def test_boundaries(text, encoding, units, segments):
    assert measure(text) == (encoding, units, segments)
    assert encoding_segments(text) == (encoding, segments)
    assert count_segments(text) == segments
    a = analyse(text)
    assert (a.encoding, a.units, a.segments) == (encoding, units, segments)


def test_lone_surrogate_is_refused_like_analyse():
    with pytest.raises(InvalidInput):
        count_segments("abc\ud800")


ALPHABET = st.sampled_from(list("abcXYZ 019.,\r\n@£éÄ") + list("€[]{}|^~\\") + list("жщя") + [EMOJI, "👍", "\u00a0"])


@settings(max_examples=600, deadline=None)
@given(st.lists(ALPHABET, max_size=700).map("".join))
def test_agrees_with_analyse(text):
    a = analyse(text)
    assert measure(text) == (a.encoding, a.units, a.segments)
    assert encoding_segments(text) == (a.encoding, a.segments)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=500))
def test_agrees_with_analyse_on_any_text(text):
    a = analyse(text)
    assert measure(text) == (a.encoding, a.units, a.segments)
    assert encoding_segments(text) == (a.encoding, a.segments)
