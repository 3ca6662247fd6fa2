"""Input limits (issue 23, denial of service): business dates in a sane range,
bounded template rendering, bounded echoes of values in error lines, and
workbooks refused before the XLSX reader can be made to crash or to eat memory."""

from __future__ import annotations

import pytest

from cpaas_cli.campaigns.service import resolve_local
from cpaas_cli.errors import InvalidInput
from cpaas_cli.messaging import sandbox, templates
from tests.helpers import client, owner_le

# ---------------------------------------------------------------- business dates


@pytest.fixture
def acme(cli):
    owner_le(cli)
    client(cli, "Acme")
    return cli


def test_year_typo_in_agreement_start_is_refused(acme):
    run = acme(
        "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR",
        "--from", "0026-01-01", "--billing-period", "daily", expect=4,
    )  # fmt: skip
    assert run.stderr.startswith("error: --from: 0026-01-01 is before 2000-01-01")
    assert len(run.stderr.strip().splitlines()) == 1
    assert acme.json("agreement", "list") == []


@pytest.mark.parametrize(
    ("args", "option", "bound"),
    [
        (["invoice", "run", "--as-of", "2101-01-01"], "--as-of", "2100-12-31"),
        (["invoice", "run", "--as-of", "1999-12-31T23:00:00Z"], "--as-of", "2000-01-01"),
        (["edr", "export", "--from", "0202-05-01", "--till", "2026-01-01", "--out", "x.csv"], "--from", "2000-01-01"),
        (["audit", "list", "--since", "9999-01-01"], "--since", "2100-12-31"),
    ],
)
def test_dates_outside_the_range_name_option_and_bound(cli, args, option, bound, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = cli(*args, expect=4)
    assert run.stderr.startswith(f"error: {option}: ") and bound in run.stderr, run.stderr


def test_agreement_date_is_bounded(acme):
    run = acme(
        "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR", "--date", "3026-01-01", expect=4
    )
    assert "--date: 3026-01-01 is after 2100-12-31" in run.stderr


def test_campaign_schedule_time_is_bounded():
    with pytest.raises(InvalidInput, match=r"at: 0026-03-01 is before 2000-01-01"):
        resolve_local("0026-03-01 10:00", "Europe/Madrid")
    assert resolve_local("2026-03-01 10:00", "UTC").year == 2026


def test_range_is_configurable(acme, tmp_path):
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text('[limits]\nmin_date = 1990-01-01\nmax_date = "2200-12-31"\n')
    ag = acme.json(
        "--config", str(cfg), "agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR",
        "--from", "1995-01-01",
    )  # fmt: skip
    assert ag["effective_from"] == "1995-01-01T00:00:00Z"
    run = acme("--config", str(cfg), "invoice", "run", "--as-of", "1989-12-31", expect=4)
    assert "before 1990-01-01" in run.stderr
    cfg.write_text('[limits]\nmin_date = "soon"\n')
    run = acme("--config", str(cfg), "invoice", "run", "--as-of", "2026-01-01", expect=4)
    assert "[limits] min_date must be a date" in run.stderr


# ---------------------------------------------------------------- message templates

NESTED = "{% for a in range(10**4) %}{% for b in range(10**4) %}x{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        (NESTED, "{% for %}"),
        ("Hi\n{% for a in s %}{% for b in s %}{{ b }}{% endfor %}{% endfor %}", "{% for %}"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "{% macro %}"),
        ("{% set a = s ~ s %}{% set b = a ~ a %}{{ b }}", "{% set %}"),
        ("{% filter upper %}{{ s }}{% endfilter %}", "{% filter %}"),
    ],
)
def test_loops_macros_and_set_are_refused_at_validation(text, construct):
    with pytest.raises(InvalidInput) as err:
        templates.validate(text, {"s"})
    line = 2 if text.startswith("Hi\n") else 1
    assert err.value.message == f"template: line {line}: {construct} is not allowed in a message template"


@pytest.mark.parametrize(
    "text",
    [
        "{{ s|center(10**9) }}",
        "{{ s.center(10**9) }}",
        "{{ s.ljust(10**9) }}",
        "{{ s|replace('', s|center(40000)) }}",
        "{{ s|truncate(10**9) }}",
        "{{ '%999999999s' % s }}",
    ],
)
def test_amplifying_expressions_are_refused(text):
    with pytest.raises(InvalidInput, match="not allowed"):
        templates.render(text, {"s": "abc"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ range(100000)|map('string')|join }}", "No filter named '(map|join)'"),
        ("{{ lipsum(10**6) }}", "unknown variable: lipsum"),
        ("{{ s }}" + "x" * 40801, "at most 40800 characters"),
    ],
)
def test_globals_and_iterating_filters_are_gone(text, reason):
    with pytest.raises(InvalidInput, match=reason):
        templates.validate(text, {"s"})


def test_each_render_has_a_time_budget(monkeypatch):
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", -1.0)  # already over when it starts
    with pytest.raises(InvalidInput, match=r"not allowed: rendering took longer than -1 s"):
        templates.render("Hi {{ name|title }}", {"name": "ana"})


def test_personalisation_still_works():
    text = "Hi {{ name|title }}, {% if city %}{{ city|upper }}{% else %}-{% endif %} {{ code|default('none') }}"
    assert templates.validate(text + " {{ note.strip() }}", {"name", "city", "code", "note"})
    values = {"name": "ana", "city": "", "code": None, "note": " x "}
    assert templates.render(text + " {{ note.strip() }}", values) == "Hi Ana, -  x"


def test_campaign_with_a_nested_loop_template_is_refused(cli):
    from tests.test_campaigns import setup

    setup(cli)
    text = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}Hi"
    run = cli("campaign", "create", "--company", "Client A", "--sender", "ACME", "--to", "34620111222",
               "--text", text, expect=4)  # fmt: skip
    assert run.stderr == "error: template: line 1: {% for %} is not allowed in a message template\n"
    assert cli.json("campaign", "list") == []


# ---------------------------------------------------------------- echoed values


def test_error_lines_echo_at_most_80_characters_of_a_value(acme, tmp_path):
    acme.json("contacts", "field", "add", "City", "-c", "Acme")
    f = tmp_path / "long.csv"
    f.write_text("Mobile,City\n" + "6" * 100_000 + ",Madrid\n+34612345678," + "M" * 100_000 + "\n")
    run = acme("contacts", "import", str(f), "-c", "Acme", "-g", "G", "--create-group", "-m", "phone=Mobile",
               "-m", "field:City=City", "--default-country", "ES", expect=4)  # fmt: skip
    assert run.stderr.startswith("error: row 2: phone: ") and "'" + "6" * 80 + "…'" in run.stderr, run.stderr
    assert "6" * 81 not in run.stderr and len(run.stderr) < 1000


def test_bounded_cuts_quoted_values_and_long_messages():
    from cpaas_cli.errors import MAX_MESSAGE, Problem

    assert str(Problem("name", f"too long: {'a' * 500!r}", 3)) == f"row 3: name: too long: '{'a' * 80}…'"
    assert InvalidInput(f"bad {'x' * 90!r} and {'y' * 5!r}").message == f"bad '{'x' * 80}…' and 'yyyyy'"
    assert len(InvalidInput("z" * 10**7).message) == MAX_MESSAGE + 1
    assert InvalidInput("short 'value'").message == "short 'value'"
