"""Input limits (issue 23, denial of service): business dates in a sane range,
bounded template rendering, bounded echoes of values in error lines, and
workbooks refused before the XLSX reader can be made to crash or to eat memory."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cpaas_cli.campaigns.lifecycle import resolve_local
from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.readers import read_rows
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
        (["audit", "list", "--from", "9999-01-01"], "--from", "2100-12-31"),
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


# ---------------------------------------------------------------- hostile workbooks

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_P = "http://schemas.openxmlformats.org/package/2006/relationships"


def workbook(path, sheet_data: str, *, dimension: str = "") -> str:
    """A minimal XLSX written by hand (no library would write what an attacker does)."""
    sheet = f'<?xml version="1.0"?><worksheet xmlns="{_NS}">{dimension}<sheetData>{sheet_data}</sheetData></worksheet>'
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            f'<?xml version="1.0"?><Relationships xmlns="{_P}"><Relationship Id="rId1" '
            f'Type="{_R}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0"?><workbook xmlns="{_NS}" xmlns:r="{_R}"><sheets>'
            '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0"?><Relationships xmlns="{_P}"><Relationship Id="rId1" '
            f'Type="{_R}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        )
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    return str(path)


def cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER = f'<row r="1">{cell("A1", "Mobile")}{cell("B1", "Name")}</row>'
FAR = HEADER + f'<row r="2">{cell("A2", "34612345678")}</row><row r="1048576">{cell("XFD1048576", "x")}</row>'


def import_contacts(cli, path, *extra, config=None, expect=4):
    pre = ["--config", str(config)] if config else []
    return cli(*pre, "contacts", "import", path, "-c", "Acme", "-g", "G", "--create-group", "-m", "phone=Mobile",
               "-m", "first_name=Name", "--default-country", "ES", *extra, expect=expect)  # fmt: skip


def test_a_cell_at_xfd1048576_is_one_error_line_for_every_importer(acme, tmp_path):
    path = workbook(tmp_path / "far.xlsx", FAR)
    assert Path(path).stat().st_size < 5000
    for run in (import_contacts(acme, path), acme("tenant", "import", path, expect=4)):
        assert run.stderr.startswith("error: far.xlsx: the workbook reader stopped (signal SIGABRT)"), run.stderr
        assert len(run.stderr.splitlines()) == 1
    assert acme.json("contacts", "list", "-c", "Acme") == []
    # every importer reads workbooks through read_rows (rates, tenants, contacts, campaigns, EDR files)
    with pytest.raises(InvalidInput, match="the workbook reader stopped"):
        list(read_rows(path, sheet="Data"))
    # a declared range that lies about the cells does not matter: the cells are what is read
    liar = workbook(tmp_path / "dim.xlsx", HEADER, dimension='<dimension ref="A1:XFD1048576"/>')
    assert list(read_rows(liar)) == []


def test_the_sheet_range_and_row_count_are_limited(acme, tmp_path):
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[limits]\nxlsx_max_rows = 1000\nxlsx_max_columns = 10\n")
    rows = "".join(f'<row r="{n}">{cell(f"A{n}", f"346{n:08d}")}</row>' for n in range(2, 1503))
    many = workbook(tmp_path / "many.xlsx", HEADER + rows)
    run = import_contacts(acme, many, config=cfg)
    assert run.stderr == "error: many.xlsx: a sheet has more than 1,000 rows ([limits] xlsx_max_rows)\n"
    sparse = workbook(tmp_path / "sparse.xlsx", HEADER + f'<row r="5000">{cell("A5000", "34612345678")}</row>')
    run = import_contacts(acme, sparse, config=cfg)
    assert run.stderr.startswith("error: sparse.xlsx: the sheet spans 5,000 rows × 2 columns, over the limit")
    wide = workbook(tmp_path / "wide.xlsx", HEADER + f'<row r="2">{cell("Z2", "x")}</row>')
    run = import_contacts(acme, wide, config=cfg)
    assert "spans 2 rows × 26 columns" in run.stderr
    assert import_contacts(acme, sparse, "-o", "json", expect=0).json["inserted"] == 1  # the defaults allow it


def test_the_unpacked_size_is_limited_not_only_the_file_size(acme, tmp_path):
    big = "9" * 3_000_000  # compresses to a few KB
    path = workbook(tmp_path / "big.xlsx", HEADER + f'<row r="2">{cell("A2", big)}</row>')
    assert Path(path).stat().st_size < 20_000
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text("[limits]\nxlsx_inflated_mb = 1\n")
    run = import_contacts(acme, path, config=cfg)
    assert (
        run.stderr
        == "error: big.xlsx: unpacks to 2.9 MB, over the 1.0 MB limit for a workbook ([limits] xlsx_inflated_mb)\n"
    )
    # within the unpacked limit, the cell is still longer than any spreadsheet cell: refused, echoed short
    run = import_contacts(acme, path)
    assert (
        run.stderr
        == "error: big.xlsx: row 2, column A: a cell of 3,000,000 characters, over the 32,767 a spreadsheet cell holds\n"
    )


def test_well_formed_workbooks_still_import(acme, tmp_path):
    path = workbook(tmp_path / "ok.xlsx", HEADER + f'<row r="2">{cell("A2", "34612345678")}{cell("B2", "Ana")}</row>')
    assert import_contacts(acme, path, "-o", "json", expect=0).json["inserted"] == 1


def test_only_plainly_safe_sheets_are_read_in_process(acme, tmp_path):
    from cpaas_cli.imports import xlsx_read
    from cpaas_cli.imports.limits import XlsxLimits

    ok = workbook(tmp_path / "ok.xlsx", HEADER + f'<row r="2">{cell("A2", "34612345678")}{cell("B2", "Ana")}</row>')
    far = workbook(tmp_path / "far.xlsx", FAR)
    # cells without references: calamine places them one after the other; read in the child
    bare = workbook(
        tmp_path / "bare.xlsx",
        '<row><c t="inlineStr"><is><t>Mobile</t></is></c><c t="inlineStr"><is><t>Name</t></is></c></row>'
        '<row><c t="inlineStr"><is><t>34612345679</t></is></c><c t="inlineStr"><is><t>Bo</t></is></c></row>',
    )
    assert [xlsx_read.inspect(Path(p), XlsxLimits()) for p in (ok, far, bare)] == [True, False, False]
    assert list(read_rows(bare)) == [(2, {"Mobile": "34612345679", "Name": "Bo"})]
    assert import_contacts(acme, bare, "-o", "json", expect=0).json["inserted"] == 1
