"""`cpaas message count`."""

from __future__ import annotations


def test_count_gsm(cli):
    out = cli.json("message", "count", "a" * 159 + "€")
    assert out == {
        "encoding": "GSM7",
        "characters": 160,
        "units": 161,
        "segments": 2,
        "per_segment_units": [153, 8],
        "capacity_per_segment": 153,
        "concat": "udh8",
        "non_gsm_characters": [],
        "replaced": False,
    }


def test_count_ucs2_names_the_characters(cli):
    out = cli.json("message", "count", "it\u2019s \U0001f600")
    assert (out["encoding"], out["units"], out["segments"]) == ("UCS2", 7, 1)
    assert out["non_gsm_characters"] == ["\u2019", "\U0001f600"]


def test_count_with_lookalikes_and_concat(cli):
    text = "\u201cquoted\u201d " + "a" * 296  # 305 GSM characters once replaced
    out = cli.json("message", "count", text, "--replace-lookalikes")
    assert (out["encoding"], out["segments"], out["replaced"]) == ("GSM7", 2, True)
    assert out["text"].startswith('"quoted" ')
    out = cli.json("message", "count", text, "--replace-lookalikes", "--concat", "udh16")
    assert (out["segments"], out["per_segment_units"]) == (3, [152, 152, 1])


def test_count_from_stdin(cli):
    out = cli.json("message", "count", "-", input="hello\n")
    assert (out["characters"], out["segments"]) == (5, 1)


def test_count_rejects_lone_surrogate_and_bad_concat(cli):
    run = cli("message", "count", "a\ud800", expect=4)
    assert "lone surrogate" in run.stderr
    cli("message", "count", "x", "--concat", "udh9", expect=2)
