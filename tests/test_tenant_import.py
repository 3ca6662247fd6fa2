"""`cpaas tenant import`: validated first, all or nothing, every bad row reported."""

from __future__ import annotations

import openpyxl

from tests.helpers import owner_le

HEADER = "name,type,parent,description,creator_of_resellers,le_name,le_legal_name,le_country,le_legal_id,le_vat_id\n"


def test_csv_import_with_parents_from_the_same_file(cli, tmp_path):
    owner_le(cli)
    f = tmp_path / "companies.csv"
    f.write_text(
        HEADER
        + "North Resale,reseller,,Resells in the north,yes,North LE,North Resale AB,SE,556000-0001,\n"
        + "Fjord Fish,client,North Resale,,,Fjord LE,Fjord Fisk AS,NO,,\n"
        + "Acme,client,,,no,Acme LE,Acme S.A.,ES,,ESX1234567\n",
        encoding="utf-8-sig",
    )
    out = cli.json("tenant", "import", str(f))
    assert (out["companies"], out["legal_entities"]) == (3, 3)
    tree = cli.json("tenant", "list", "--tree")
    assert [(t["name"], t["depth"]) for t in tree] == [
        ("System owner", 0),
        ("North Resale", 1),
        ("Fjord Fish", 2),
        ("Acme", 1),
    ]
    fjord = cli.json("tenant", "show", "Fjord Fish")
    assert fjord["own_legal_entity"] == "North LE"
    assert fjord["legal_entities"][0]["country"] == "NO" and fjord["legal_entities"][0]["is_default"] is True


def test_every_bad_row_is_reported_and_nothing_written(cli, tmp_path):
    owner_le(cli)
    f = tmp_path / "bad.csv"
    f.write_text(
        HEADER
        + "Good,client,,,,Good LE,Good SA,FR,,\n"  # row 2: fine
        + ",client,,,,X LE,X SA,FR,,\n"  # row 3: no name
        + "Reseller NoId,reseller,,,,R LE,R Ltd,GB,,\n"  # row 4: reseller legal entity without legal_id
        + "Orphan,client,Nobody,,,O LE,O SA,FR,,\n"  # row 5: unknown parent
        + "Wrong,emperor,,,,W LE,W SA,ZZ,,\n"  # row 6: bad type and country
        + "Good,client,,,,Good2 LE,Good SA,FR,,\n"  # row 7: duplicate name
        + "Kid,client,Good,,,K LE,K SA,FR,,\n"  # row 8: parent is a client
    )
    run = cli("tenant", "import", str(f), expect=4)
    lines = run.stderr.splitlines()
    found = {(line.split(":")[0].strip(), line.split(":")[1].strip()) for line in lines[1:]}
    for expected in [
        ("row 3", "name"),
        ("row 4", "le_legal_id"),
        ("row 5", "parent"),
        ("row 6", "type"),
        ("row 6", "le_country"),
        ("row 7", "name"),
        ("row 8", "parent"),
    ]:
        assert expected in found, (expected, lines)
    assert ("row 2", "name") not in found
    assert len(cli.json("tenant", "list")) == 1


def test_dry_run_writes_nothing(cli, tmp_path):
    owner_le(cli)
    f = tmp_path / "c.csv"
    f.write_text(HEADER + "Dry,client,,,,Dry LE,Dry SA,FR,,\n")
    out = cli.json("tenant", "import", str(f), "--dry-run")
    assert out["dry_run"] is True and out["created"][0]["name"] == "Dry"
    assert len(cli.json("tenant", "list")) == 1


def test_xlsx_and_semicolon_latin1(cli, tmp_path):
    owner_le(cli)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["name", "type", "le_name", "le_legal_name", "le_country"])
    ws.append(["Xlsx Co", "client", "Xlsx LE", "Xlsx GmbH", "DE"])
    path = tmp_path / "c.xlsx"
    wb.save(path)
    assert cli.json("tenant", "import", str(path))["companies"] == 1
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "name;type;le_name;le_legal_name;le_country\nCafé Olé;client;Café LE;Café Olé SARL;FR\n".encode("latin-1")
    )
    assert cli.json("tenant", "import", str(latin))["created"][0]["name"] == "Café Olé"


def test_header_problems(cli, tmp_path):
    owner_le(cli)
    f = tmp_path / "h.csv"
    f.write_text("name,type\nA,client\n")
    run = cli("tenant", "import", str(f), expect=4)
    assert "missing columns" in run.stderr
    f.write_text("name,type,le_name,le_legal_name,le_country,colour\nA,client,a,a,FR,red\n")
    assert "unknown columns" in cli("tenant", "import", str(f), expect=4).stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cli("tenant", "import", str(empty), expect=4)
    cli("tenant", "import", str(tmp_path / "missing.csv"), expect=4)
