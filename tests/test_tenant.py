"""Tenancy rules: TEN-01, 04, 05, 07, 11, 12, 16-18."""

from __future__ import annotations

from tests.helpers import client, owner_le, reseller


def test_company_needs_the_sellers_legal_entity(cli):
    run = cli("tenant", "create", "Early", expect=4)
    assert "own_legal_entity" in run.stderr and "no default legal entity" in run.stderr
    assert len(cli.json("tenant", "list")) == 1
    owner_le(cli)
    row = cli.json("tenant", "create", "Early")
    assert row["own_legal_entity"] == "Hub SL" and row["parent"] == "System owner"


def test_reseller_tree_and_creator_of_resellers(cli):
    owner_le(cli)
    r1 = reseller(cli, "R1")
    # R1 may not create resellers ...
    run = cli("tenant", "create", "R1-sub", "--type", "reseller", "--parent", "R1", expect=4)
    assert "not allowed to create resellers" in run.stderr
    # ... but may create clients.
    c = client(cli, "R1 client", parent="R1")
    assert c["parent_id"] == r1["id"] and c["own_legal_entity"] == "R1 LE"
    # A creator of resellers may.
    reseller(cli, "R2", creator=True)
    sub = cli.json("tenant", "create", "R2-sub", "--type", "reseller", "--parent", "R2")
    assert sub["parent"] == "R2"
    # A client has no children.
    run = cli("tenant", "create", "Grandchild", "--parent", "R1 client", expect=4)
    assert "is a client" in run.stderr
    tree = cli.json("tenant", "list", "--tree")
    assert [(t["name"], t["depth"]) for t in tree] == [
        ("System owner", 0),
        ("R1", 1),
        ("R1 client", 2),
        ("R2", 1),
        ("R2-sub", 2),
    ]


def test_creator_of_resellers_only_for_resellers(cli):
    owner_le(cli)
    run = cli("tenant", "create", "C", "--creator-of-resellers", expect=4)
    assert "creator_of_resellers" in run.stderr


def test_names_unique_under_a_parent_only(cli):
    owner_le(cli)
    reseller(cli, "R1")
    client(cli, "Acme")
    cli("tenant", "create", "Acme", expect=5)
    same_name_elsewhere = cli.json("tenant", "create", "Acme", "--parent", "R1")
    assert same_name_elsewhere["parent"] == "R1"
    run = cli("tenant", "show", "Acme", expect=4)
    assert "ambiguous" in run.stderr
    assert cli.json("tenant", "show", str(same_name_elsewhere["id"]))["parent"] == "R1"


def test_unknown_parent_is_not_found(cli):
    owner_le(cli)
    cli("tenant", "create", "X", "--parent", "Nope", expect=3)


def test_cycles_are_refused(cli):
    owner_le(cli)
    reseller(cli, "A", creator=True)
    b = cli.json("tenant", "create", "B", "--type", "reseller", "--parent", "A", "--creator-of-resellers")
    cli.json(
        "tenant",
        "legal-entity",
        "add",
        "B LE",
        "--company",
        "B",
        "--legal-name",
        "B",
        "--country",
        "DE",
        "--legal-id",
        "1",
    )
    run = cli("tenant", "update", "A", "--parent", "B", expect=5)
    assert "cycle" in run.stderr
    cli("tenant", "update", "A", "--parent", "A", expect=5)
    assert cli.json("tenant", "show", "A")["parent"] == "System owner"
    assert b["parent"] == "A"


def test_update_move_and_rename(cli):
    owner_le(cli)
    reseller(cli, "R1")
    c = client(cli, "Mover")
    moved = cli.json("tenant", "update", "Mover", "--parent", "R1", "--name", "Moved", "--description", "now under R1")
    assert (moved["name"], moved["parent"], moved["own_legal_entity"]) == ("Moved", "R1", "R1 LE")
    assert moved["id"] == c["id"]


def test_reseller_with_children_cannot_become_client(cli):
    owner_le(cli)
    reseller(cli, "R1")
    client(cli, "Kid", parent="R1")
    cli("tenant", "update", "R1", "--type", "client", expect=5)


def test_disable_enable(cli):
    owner_le(cli)
    client(cli, "Blocky")
    assert cli.json("tenant", "disable", "Blocky")["enabled"] is False
    assert [r["name"] for r in cli.json("tenant", "list", "--disabled")] == ["Blocky"]
    assert cli.json("tenant", "enable", "Blocky")["enabled"] is True
    cli("tenant", "disable", "System owner", expect=5)


def test_delete_rules(cli):
    owner_le(cli)
    reseller(cli, "R1")
    client(cli, "Kid", parent="R1")
    cli("tenant", "delete", "R1", "--yes", expect=5)  # has a child
    cli("tenant", "delete", "System owner", "--yes", expect=5)
    dry = cli.json("tenant", "delete", "Kid", "--dry-run")
    assert dry["deleted"] is False and dry["legal_entities"] == 1
    assert cli.json("tenant", "show", "Kid")["name"] == "Kid"
    cli("tenant", "delete", "Kid", expect=2)  # no --yes off a terminal: a usage error
    gone = cli.json("tenant", "delete", "Kid", "--yes")
    assert gone["deleted"] is True
    cli("tenant", "show", "Kid", expect=3)
    assert cli.json("tenant", "legal-entity", "list", "--company", "R1")[0]["name"] == "R1 LE"


def test_delete_refused_with_agreements(cli):
    owner_le(cli)
    client(cli, "Signed")
    cli.json("agreement", "create", "S-1", "--company", "Signed", "--currency", "EUR")
    run = cli("tenant", "delete", "Signed", "--yes", expect=5)
    assert "S-1" in run.stderr


def test_legal_entity_rules(cli):
    # Own legal entities of owner and resellers need a registration number (TEN-07).
    run = cli(
        "tenant", "legal-entity", "add", "Hub", "--company", "1", "--legal-name", "Hub", "--country", "ES", expect=4
    )
    assert "legal_id" in run.stderr
    bad = cli(
        "tenant",
        "legal-entity",
        "add",
        "Hub",
        "--company",
        "1",
        "--legal-name",
        "Hub",
        "--country",
        "XX",
        "--legal-id",
        "1",
        expect=4,
    )
    assert "country" in bad.stderr
    first = owner_le(cli, "Hub ES")
    assert first["is_default"] is True  # the first one is the default
    second = owner_le(cli, "Hub US")
    assert second["is_default"] is False
    cli(
        "tenant",
        "legal-entity",
        "add",
        "Hub US",
        "--company",
        "1",
        "--legal-name",
        "x",
        "--country",
        "US",
        "--legal-id",
        "2",
        expect=5,
    )
    changed = cli.json("tenant", "legal-entity", "update", str(second["id"]), "--default", "--vat-id", "US123")
    assert changed["is_default"] is True and changed["vat_id"] == "US123"
    les = {le["name"]: le["is_default"] for le in cli.json("tenant", "legal-entity", "list", "--company", "1")}
    assert les == {"Hub ES": False, "Hub US": True}
    # A client's legal entity needs no registration number.
    c = cli.json("tenant", "create", "Plain")
    le = cli.json(
        "tenant",
        "legal-entity",
        "add",
        "Plain LE",
        "--company",
        str(c["id"]),
        "--legal-name",
        "Plain SARL",
        "--country",
        "fr",
    )
    assert le["country"] == "FR"
    shown = cli.json("tenant", "legal-entity", "show", "Plain LE", "--company", "Plain")
    assert shown["legal_name"] == "Plain SARL"


def test_legal_entity_in_use_cannot_be_deleted(cli):
    le = owner_le(cli)
    client(cli, "User")
    run = cli("tenant", "legal-entity", "delete", str(le["id"]), "--yes", expect=5)
    assert "own legal entity of User" in run.stderr


def test_banks_and_accounts(cli):
    owner_le(cli)
    r = reseller(cli, "R1")
    bank = cli.json(
        "tenant", "bank", "add", "First Bank", "--country", "es", "--address", "Gran Via 1", "--swift", "bsabesbb"
    )
    assert bank["swift"] == "BSABESBB" and bank["owner"] == "System owner"
    cli("tenant", "bank", "add", "Bad", "--country", "ES", "--address", "x", "--swift", "12", expect=4)
    cli("tenant", "bank", "add", "First Bank", "--country", "ES", "--address", "x", expect=5)
    own_bank = cli.json("tenant", "bank", "add", "R Bank", "--company", "R1", "--country", "GB", "--address", "London")
    c = client(cli, "Payer", parent="R1")
    # The client's account may use a bank kept by its reseller or by the owner above it.
    a1 = cli.json(
        "tenant",
        "bank-account",
        "add",
        "Main",
        "--company",
        "Payer",
        "--bank",
        "First Bank",
        "--holder",
        "Payer SA",
        "--number",
        "ES9121000418450200051332",
    )
    a2 = cli.json(
        "tenant",
        "bank-account",
        "add",
        "Second",
        "--company",
        "Payer",
        "--bank",
        str(own_bank["id"]),
        "--holder",
        "Payer SA",
        "--number",
        "2",
    )
    assert a1["legal_entity"] == "Payer LE" and a2["bank"] == "R Bank"
    # The owner cannot use a bank kept by a reseller below it.
    run = cli(
        "tenant",
        "bank-account",
        "add",
        "Own",
        "--company",
        "1",
        "--bank",
        "R Bank",
        "--holder",
        "Hub",
        "--number",
        "3",
        expect=4,
    )
    assert "bank" in run.stderr
    accounts = cli.json("tenant", "bank-account", "list", "--company", "Payer")
    assert [a["name"] for a in accounts] == ["Main", "Second"]
    assert [b["name"] for b in cli.json("tenant", "bank", "list")] == ["First Bank", "R Bank"]
    assert c["parent_id"] == r["id"]
    cli("tenant", "bank", "add", "Client bank", "--company", "Payer", "--country", "FR", "--address", "Paris", expect=4)
