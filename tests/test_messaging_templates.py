"""Look-alike replacement and sandboxed personalisation templates."""

from __future__ import annotations

import pytest

from cpaas_cli.errors import ExitCode, InvalidInput
from cpaas_cli.messaging import gsm, lookalike, templates
from cpaas_cli.messaging.segments import Concat, analyse

# --- look-alikes --------------------------------------------------------------


def test_replace_typographic_characters():
    text = "\u201cHi\u201d \u2014 it\u2019s 10\u202f\u2013\u00a012\u2026 \u2022 ok\u00ad\u200b"
    assert lookalike.replace(text) == '"Hi" - it\'s 10 - 12... * ok'
    assert gsm.is_gsm7(lookalike.replace(text))


def test_replacement_is_off_by_default():
    assert analyse("it\u2019s").encoding == "UCS2"


def test_prefer_gsm_keeps_typography_when_text_stays_ucs2():
    assert lookalike.prefer_gsm("it\u2019s \U0001f600") == "it\u2019s \U0001f600"
    assert lookalike.prefer_gsm("it\u2019s") == "it's"
    assert lookalike.prefer_gsm("plain") == "plain"


def test_every_replacement_is_gsm():
    assert all(gsm.is_gsm7(v) for v in lookalike.TABLE.values())
    assert not any(gsm.is_gsm7(chr(k)) for k in lookalike.TABLE)


# --- templates ----------------------------------------------------------------


def test_variables():
    text = "Hi {{ first_name|title }}, {% if city %}{{ city }}{% endif %}{% for x in items %}{{ x }}{% endfor %}"
    assert templates.variables(text) == {"first_name", "city", "items"}
    assert templates.variables("{% set a = 1 %}{{ a }} {{ b }}") == {"b"}


def test_validate_returns_used_names():
    assert templates.validate("Hi {{ first_name }}", {"first_name", "last_name"}) == {"first_name"}


def test_unknown_variables_are_named():
    with pytest.raises(InvalidInput) as err:
        templates.validate("{{ zeta }} {{ first_name }} {{ alpha }}", {"first_name"})
    assert err.value.exit_code == ExitCode.INVALID_INPUT
    assert err.value.message.startswith("template: unknown variables: alpha, zeta")


def test_syntax_error_names_the_line():
    with pytest.raises(InvalidInput, match="template: line 3: "):
        templates.validate("Hello\n\n{% if x %}no end", {"x"})


def test_unknown_filter_fails_at_validation():
    with pytest.raises(InvalidInput, match="line 1: No filter named 'shout'"):
        templates.validate("{{ name|shout }}", {"name"})


def test_render():
    assert templates.render("Hi {{ first_name }}!", {"first_name": "Ana"}) == "Hi Ana!"
    assert templates.render("Hi {{ n }}!", {"n": None}) == "Hi !"
    assert templates.render("a\n", {}) == "a\n"
    assert templates.render("<{{ v }}>", {"v": "&"}) == "<&>"  # SMS is not HTML: no escaping


def test_missing_value_is_an_error_not_an_empty_string():
    with pytest.raises(InvalidInput, match="missing value: 'first_name' is undefined"):
        templates.render("Hi {{ first_name }}", {})


@pytest.mark.parametrize(
    "text",
    [
        "{{ x.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000 }}",
        "{{ items.append(1) }}",
    ],
)
def test_sandbox_blocks_unsafe_templates(text):
    with pytest.raises(InvalidInput, match="not allowed"):
        templates.render(text, {"x": "s", "items": []})


@pytest.mark.parametrize(
    ("text", "values"),
    [("{{ n + 1 }}", {"n": "a"}), ("{{ n|int // 0 }}", {"n": "1"}), ("{% for i in range(10**6) %}{% endfor %}", {})],
)
def test_failing_expressions_are_invalid_input(text, values):
    with pytest.raises(InvalidInput, match="cannot render|not allowed"):
        templates.render(text, values)


def test_count_personalised_streams_rows():
    produced = []

    def rows():
        for i in range(1, 401):
            produced.append(i)
            yield {"name": "a" * i}

    tally = templates.count_personalised("Hello {{ name }}", rows())
    # "Hello " + i chars: 1 segment up to 160 units, 2 up to 306, 3 after
    assert tally.as_dict() == {
        "messages": 400,
        "segments": 154 * 1 + 146 * 2 + 100 * 3,
        "max_segments": 3,
        "min_segments": 1,
        "max_units": 406,
        "gsm7_messages": 400,
        "ucs2_messages": 0,
    }
    assert len(produced) == 400


def test_count_personalised_encodings_lookalikes_and_concat():
    rows = [{"n": "Ana"}, {"n": "\u0416\u0435\u043d\u044f"}, {"n": "O\u2019Neil"}]
    assert templates.count_personalised("Hi {{ n }}", rows).as_dict()["ucs2_messages"] == 2
    assert templates.count_personalised("Hi {{ n }}", rows, lookalikes=True).as_dict()["ucs2_messages"] == 1
    long_rows = [{"n": "a" * 302}]  # 305 units: 2 parts of 153, 3 parts of 152
    assert templates.count_personalised("Hi {{ n }}", long_rows).segments == 2
    assert templates.count_personalised("Hi {{ n }}", long_rows, concat=Concat.udh16).segments == 3


def test_count_personalised_reports_failing_rows_with_their_numbers():
    rows = [(2, {"name": "a"}), (3, {}), (4, {"name": "b"}), (5, {})]
    with pytest.raises(InvalidInput) as err:
        templates.count_personalised("Hi {{ name }}", rows)
    assert err.value.message == "2 rows cannot be rendered; nothing was written"
    assert [p.row for p in err.value.problems] == [3, 5]


def test_estimate_counts_each_variable_as_ten_characters():
    a = templates.estimate("Dear {{ first_name }} {{ last_name }}, your code is {{ code }}.")
    assert a.chars == len("Dear  , your code is .") + 30
    assert templates.estimate("{{ a }}" * 16).segments == 1
    assert templates.estimate("{{ a }}" * 17).segments == 2


@pytest.mark.parametrize(
    ("column", "name"),
    [("First Name", "first_name"), (" e-mail ", "e_mail"), ("1st", "_1st"), ("Имя", "имя"), ("", "_")],
)
def test_column_variable(column, name):
    assert templates.column_variable(column) == name
