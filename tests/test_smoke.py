from tests.helpers import client, owner_le


def test_owner_exists_after_upgrade(cli):
    rows = cli.json("tenant", "list")
    assert [(r["name"], r["type"]) for r in rows] == [("System owner", "owner")]


def test_client_and_agreement(cli):
    owner_le(cli)
    c = client(cli)
    ag = cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "eur")
    assert ag["currency"] == "EUR"
    assert ag["seller"] == "System owner"
    assert ag["version"]["unlimited_credit"] is True
