"""Contacts: groups, custom fields, the stop list and `contacts import`."""

from __future__ import annotations

import json
import zipfile

import pytest

from tests.helpers import client, owner_le


@pytest.fixture
def acme(cli):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("contacts", "field", "add", "City", "-c", "Acme")
    cli.json("contacts", "field", "add", "Age", "--type", "number", "-c", "Acme")
    return cli


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


MAPS = ["-m", "phone=Mobile", "-m", "first_name=Name", "-m", "field:City=City", "-m", "field:age=Age"]


def imp(cli, path, *extra, expect=0, group="VIP"):
    args = [
        "contacts",
        "import",
        str(path),
        "-c",
        "Acme",
        "-g",
        group,
        "--create-group",
        *MAPS,
        "--default-country",
        "ES",
        *extra,
    ]
    run = cli(*args, "-o", "json", expect=expect)
    return run.json if expect == 0 else run


def phones(cli, *args):
    return sorted(c["phone"] for c in cli.json("contacts", "list", "-c", "Acme", *args))


GOOD = (
    "Mobile,Name,City,Age\n+34 612 345 678,Ana,Madrid,30\n0034612345679,Bob,Sevilla,31\n(612) 34-56.80,Carl,Bilbao,40\n"
)


# ---------------------------------------------------------------- CRUD


def test_contact_crud_and_group_invariant(acme):
    cli = acme
    cli.json("contacts", "group", "add", "A", "-c", "Acme")
    cli.json("contacts", "group", "add", "B", "-c", "Acme", "--description", "second")
    cli("contacts", "group", "add", "A", "-c", "Acme", expect=5)
    c = cli.json(
        "contacts",
        "add",
        "612345678",
        "-c",
        "Acme",
        "-g",
        "A",
        "--default-country",
        "ES",
        "--first-name",
        "Ana",
        "-f",
        "City=Madrid",
        "-f",
        "age=33",
        "--birthday",
        "1990-02-03",
    )
    assert c["phone"] == "34612345678" and c["groups"] == ["A"] and c["fields"] == {"city": "Madrid", "age": 33}
    cli("contacts", "add", "+34612345678", "-c", "Acme", "-g", "B", expect=5)  # phone unique per company
    cli("contacts", "add", "+34612345670", "-c", "Acme", "-f", "age=x", "-g", "A", expect=4)
    # last group cannot be removed; deleting the group is refused without --delete-contacts
    cli("contacts", "group", "remove-members", "A", "+34612345678", "-c", "Acme", expect=5)
    cli("contacts", "group", "delete", "A", "-c", "Acme", "--yes", expect=5)
    cli.json("contacts", "group", "add-members", "B", "+34612345678", "-c", "Acme")
    assert cli.json("contacts", "group", "remove-members", "A", "+34612345678", "-c", "Acme")["removed"] == 1
    upd = cli.json("contacts", "update", "+34612345678", "-c", "Acme", "--last-name", "Diaz", "-f", "City=")
    assert upd["last_name"] == "Diaz" and upd["fields"] == {"age": 33} and upd["groups"] == ["B"]
    moved = cli.json("contacts", "group", "move", "B", "A", "-c", "Acme")
    assert moved["added"] == 1 and cli.json("contacts", "show", "+34612345678", "-c", "Acme")["groups"] == ["A"]
    cli.json("contacts", "group", "rename", "A", "-c", "Acme", "--name", "Main")
    assert [g["name"] for g in cli.json("contacts", "group", "list", "-c", "Acme")] == ["B", "Main"]
    out = cli.json("contacts", "group", "delete", "Main", "-c", "Acme", "--yes", "--delete-contacts")
    assert out["contacts_deleted"] == 1
    cli("contacts", "show", "+34612345678", "-c", "Acme", expect=3)


def test_custom_fields_variable_and_filters(acme, tmp_path):
    cli = acme
    f = cli.json("contacts", "field", "add", "Favourite Café!", "-c", "Acme", "--type", "date")
    assert f["variable"] == "favouritecafe" and f["macro"] == "{favouritecafe}"
    cli("contacts", "field", "add", "favourite-cafe", "-c", "Acme", expect=5)
    cli("contacts", "field", "add", "x", "--type", "blob", "-c", "Acme", expect=2)
    renamed = cli.json("contacts", "field", "update", "favouritecafe", "-c", "Acme", "--name", "Cafe", "--required")
    assert renamed["variable"] == "favouritecafe" and renamed["required"] is True
    cli.json("contacts", "field", "update", "Cafe", "-c", "Acme", "--optional")
    imp(cli, write(tmp_path, "a.csv", GOOD))
    assert phones(cli, "--field", "age>=31") == ["34612345679", "34612345680"]
    assert phones(cli, "--field", "City=Madrid") == ["34612345678"]
    assert phones(cli, "--field", "city!=Madrid", "--field", "age<40") == ["34612345679"]
    out = cli.json("contacts", "field", "delete", "age", "-c", "Acme", "--yes")
    assert out["contacts_changed"] == 3
    assert all("age" not in c["fields"] for c in cli.json("contacts", "list", "-c", "Acme"))


def test_stoplist_commands_are_independent_of_groups(acme, tmp_path):
    cli = acme
    imp(cli, write(tmp_path, "a.csv", GOOD))
    cli.json("contacts", "stoplist", "add", "+34612345678", "-c", "Acme", "-s", "Shop,Bank")
    cli.json("contacts", "stoplist", "add", "+34612345678", "-c", "Acme", "-s", "Shop")  # additive, no duplicate
    cli.json("contacts", "stoplist", "add", "+34600000000", "-c", "Acme", "-s", "ALL")  # not a contact
    c = cli.json("contacts", "show", "+34612345678", "-c", "Acme")
    assert c["blocked_senders"] == ["Bank", "Shop"] and c["groups"] == ["VIP"]
    assert phones(cli, "--stoplist", "blocked") == ["34612345678"]
    assert len(phones(cli, "--stoplist", "clear")) == 2
    assert cli.json("contacts", "stoplist", "remove", "+34612345678", "-c", "Acme", "-s", "Shop")["removed"] == 1
    rows = cli.json("contacts", "stoplist", "list", "-c", "Acme")
    assert {(r["phone"], r["sender"]) for r in rows} == {("34612345678", "Bank"), ("34600000000", "ALL")}
    f = write(tmp_path, "stop.csv", "phone\n+34 611 111 111\n611111112\n")
    assert (
        cli.json("contacts", "stoplist", "import", str(f), "-c", "Acme", "-s", "ALL", "--default-country", "ES")[
            "added"
        ]
        == 2
    )
    bad = write(tmp_path, "stop2.csv", "phone\n+34 611 111 113\nnope\n")
    cli("contacts", "stoplist", "import", str(bad), "-c", "Acme", "-s", "ALL", expect=4)
    assert len(cli.json("contacts", "stoplist", "list", "-c", "Acme")) == 4


# ---------------------------------------------------------------- import: modes


def test_import_modes(acme, tmp_path):
    cli = acme
    first = imp(cli, write(tmp_path, "a.csv", GOOD))
    assert (first["inserted"], first["updated"], first["read"], first["group_created"]) == (3, 0, 3, True)
    second = write(tmp_path, "b.csv", "Mobile,Name,City,Age\n+34612345678,Anna,,35\n+34612345699,Dan,Vigo,50\n")
    r = imp(cli, second, "--mode", "new-only")
    assert (r["inserted"], r["updated"], r["skipped"]) == (1, 0, 1)
    assert cli.json("contacts", "show", "+34612345678", "-c", "Acme")["first_name"] == "Ana"
    r = imp(cli, second, "--mode", "update-only", group="Other")
    assert (r["inserted"], r["updated"], r["skipped"]) == (0, 2, 0)
    third = write(tmp_path, "c.csv", "Mobile,Name,City,Age\n+34612345678,Ann,,36\n+34612345111,New,X,1\n")
    r = imp(cli, third, "--mode", "update-only", group="Other")
    assert (r["inserted"], r["updated"], r["skipped"]) == (0, 1, 1)
    ana = cli.json("contacts", "show", "+34612345678", "-c", "Acme")
    # empty cell keeps the stored value; fields merge key by key; the updated contact joins the group
    assert ana["first_name"] == "Ann" and ana["fields"] == {"city": "Madrid", "age": 36}
    assert ana["groups"] == ["Other", "VIP"]
    cli("contacts", "show", "+34612345111", "-c", "Acme", expect=3)
    r = imp(cli, third, "--mode", "upsert")
    assert (r["inserted"], r["updated"], r["skipped"]) == (1, 1, 0)
    history = cli.json("contacts", "import-history", "-c", "Acme")
    assert [h["mode"] for h in history] == ["upsert", "update-only", "update-only", "new-only", "upsert"]
    assert history[-1]["inserted"] == 3 and len(history[-1]["sha256"]) == 64


def test_duplicates_last_wins_and_dry_run(acme, tmp_path):
    cli = acme
    f = write(tmp_path, "d.csv", "Mobile,Name,City,Age\n612345678,First,A,1\n+34 612 345 678,Last,B,2\n")
    dry = imp(cli, f, "--dry-run")
    assert dry["dry_run"] and dry["inserted"] == 1 and dry["duplicates"] == 1
    assert phones(cli) == [] and cli.json("contacts", "group", "list", "-c", "Acme") == []
    assert cli.json("contacts", "import-history", "-c", "Acme") == []
    r = imp(cli, f)
    assert (r["inserted"], r["duplicates"]) == (1, 1)
    assert cli.json("contacts", "show", "612345678", "-c", "Acme", "--default-country", "ES")["first_name"] == "Last"


def test_invalid_rows_all_or_nothing_and_skip_invalid(acme, tmp_path):
    cli = acme
    f = write(tmp_path, "e.csv", GOOD + "12,Short,X,1\n+34612345600,Bad age,X,old\n")
    run = imp(cli, f, expect=4)
    assert "row 5: phone" in run.stderr and "row 6: field:age" in run.stderr
    assert phones(cli) == [] and cli.json("contacts", "import-history", "-c", "Acme") == []
    rejects = tmp_path / "rejects.csv"
    r = imp(cli, f, "--skip-invalid", "--rejects", str(rejects))
    assert (r["inserted"], r["rejected"], r["read"]) == (3, 2, 5)
    lines = rejects.read_text().splitlines()
    assert lines[0].startswith("row,field,reason,Mobile") and lines[1].startswith("5,phone,'12' is too short")
    assert lines[2].startswith("6,field:age,'old' is not a number")


def test_required_field_must_be_mapped_for_new_contacts(acme, tmp_path):
    cli = acme
    cli.json("contacts", "field", "add", "Plan", "-c", "Acme", "--required")
    run = imp(cli, write(tmp_path, "a.csv", GOOD), expect=4)
    assert "Plan" in run.stderr
    # update-only never creates contacts, so the unmapped required field is fine
    imp(cli, write(tmp_path, "a.csv", GOOD), "--mode", "update-only")


# ---------------------------------------------------------------- import: stop list


@pytest.fixture
def blocked(acme, tmp_path):
    cli = acme
    imp(cli, write(tmp_path, "a.csv", GOOD))
    cli.json("contacts", "stoplist", "add", "+34612345678", "-c", "Acme", "-s", "Shop")
    cli.json("contacts", "stoplist", "add", "+34612345699", "-c", "Acme", "-s", "ALL")
    return write(
        tmp_path,
        "s.csv",
        "Mobile,Name,City,Age\n+34612345678,Changed,,\n+34612345699,Blocked new,,\n+34612345698,Fresh,,\n",
    )


def test_import_stoplist_exclude_is_the_default(blocked, acme):
    cli = acme
    r = imp(cli, blocked)
    assert (r["stop_listed"], r["inserted"], r["updated"]) == (2, 1, 0)
    assert cli.json("contacts", "show", "+34612345678", "-c", "Acme")["first_name"] == "Ana"
    cli("contacts", "show", "+34612345699", "-c", "Acme", expect=3)


def test_import_stoplist_unblock(blocked, acme):
    cli = acme
    r = imp(cli, blocked, "--stoplist", "unblock:Shop")
    assert (r["stop_listed"], r["blocks_removed"], r["inserted"], r["updated"]) == (2, 1, 2, 1)
    assert cli.json("contacts", "show", "+34612345678", "-c", "Acme")["blocked_senders"] == []
    # ALL is not lifted by unblocking one sender
    assert cli.json("contacts", "show", "+34612345699", "-c", "Acme")["blocked_senders"] == ["ALL"]
    r = imp(cli, blocked, "--stoplist", "unblock:ALL")
    assert r["blocks_removed"] == 1
    assert cli.json("contacts", "stoplist", "list", "-c", "Acme") == []


def test_import_stoplist_add(blocked, acme):
    cli = acme
    r = imp(cli, blocked, "--stoplist", "add:Shop,Bank")
    assert (r["stop_listed"], r["blocks_added"], r["inserted"], r["updated"]) == (2, 5, 2, 1)
    c = cli.json("contacts", "show", "+34612345698", "-c", "Acme")
    assert c["blocked_senders"] == ["Bank", "Shop"] and c["groups"] == ["VIP"]
    imp(cli, blocked, "--stoplist", "add", expect=4)
    imp(cli, blocked, "--stoplist", "add:", expect=4)


# ---------------------------------------------------------------- import: files


def test_encodings_delimiters_xlsx_and_jsonl(acme, tmp_path):
    cli = acme
    latin = write(tmp_path, "l.csv", "Mobile;Name;City;Age\n612345001;José;Cádiz;3\n", "latin-1")
    utf16 = write(tmp_path, "u.csv", "Mobile\tName\tCity\tAge\n612345002\tZoë\tX\t4\n", "utf-16")
    bom = tmp_path / "b.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "Mobile|Name|City|Age\n612345003|Åsa|Y|5\n".encode())
    jl = write(tmp_path, "j.jsonl", json.dumps({"Mobile": "+34612345004", "Name": "Jo", "City": "Z", "Age": 6}) + "\n")
    for f in (latin, utf16, bom, jl):
        assert imp(cli, f)["inserted"] == 1, f
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Intro"
    ws = book.create_sheet("Data")
    ws.append(["Mobile", "Name", "City", "Age"])
    ws.append([34612345005, "Xl", "W", 7])
    xl = tmp_path / "c.xlsx"
    book.save(xl)
    assert imp(cli, xl, "--sheet", "Data")["inserted"] == 1
    run = imp(cli, xl, "--sheet", "Nope", expect=4)
    assert "no sheet 'Nope'" in run.stderr and "'Data'" in run.stderr
    names = {c["first_name"] for c in cli.json("contacts", "list", "-c", "Acme")}
    assert names == {"José", "Zoë", "Åsa", "Jo", "Xl"}


def test_bad_files(acme, tmp_path):
    cli = acme
    f = write(tmp_path, "a.csv", GOOD)
    # no phone mapping: refused before the file is opened (it does not even exist)
    run = cli(
        "contacts", "import", str(tmp_path / "missing.csv"), "-c", "Acme", "-g", "G", "-m", "first_name=Name", expect=4
    )
    assert "no phone mapping" in run.stderr
    assert "file" in imp(cli, write(tmp_path, "empty.csv", ""), expect=4).stderr
    assert "no data rows" in imp(cli, write(tmp_path, "h.csv", "Mobile,Name,City,Age\n"), expect=4).stderr
    assert "not in the file" in imp(cli, write(tmp_path, "x.csv", "Phone,Name\n1,2\n"), expect=4).stderr
    good = tmp_path / "good.xlsx"
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Mobile", "Name", "City", "Age"])
    book.active.append(["+34612345678", "A", "B", 1])
    book.save(good)
    truncated = tmp_path / "t.xlsx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    run = imp(cli, truncated, expect=4)
    assert "t.xlsx" in run.stderr and "Traceback" not in run.stderr
    notzip = write(tmp_path, "n.xlsx", "not a workbook")
    imp(cli, notzip, expect=4)
    assert zipfile.is_zipfile(good)
    run = imp(cli, f, "--max-size", "0.0001", expect=4)
    assert "limit" in run.stderr
    assert phones(cli) == []
    cli("contacts", "import", str(f), "-c", "Acme", "-g", "Nope", *MAPS, "--default-country", "ES", expect=3)
    cli(
        "contacts",
        "import",
        str(f),
        "-c",
        "Acme",
        "-g",
        "G",
        "--create-group",
        *MAPS,
        "--default-country",
        "XX",
        expect=4,
    )


def test_export_formats(acme, tmp_path):
    cli = acme
    imp(cli, write(tmp_path, "a.csv", GOOD))
    for name in ("out.csv", "out.jsonl", "out.xlsx"):
        out = cli.json("contacts", "export", str(tmp_path / name), "-c", "Acme", "-g", "VIP")
        assert out["contacts"] == 3
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["city"] == "Madrid"
    # an exported file imports back unchanged
    r = cli.json(
        "contacts",
        "import",
        str(tmp_path / "out.xlsx"),
        "-c",
        "Acme",
        "-g",
        "VIP",
        "-m",
        "phone=phone",
        "-m",
        "field:city=city",
    )
    assert (r["inserted"], r["updated"]) == (0, 3)


def test_contacts_need_a_client_company(cli):
    owner_le(cli)
    cli("contacts", "group", "list", "-c", "1", expect=4)
