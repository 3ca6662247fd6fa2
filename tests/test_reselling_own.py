"""Reselling, part 1 (issue 29): reselling agreements (TEN-06), who owns a service
and who may enable it (TEN-11), reseller plans and what a reseller sees (TEN-13,
RIM-14)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cpaas_cli.catalog import importer, ownership
from cpaas_cli.catalog import service as catalog
from cpaas_cli.errors import Denied, NotFound
from cpaas_cli.identity import access
from cpaas_cli.identity import users as user_svc
from tests.helpers import client, owner_le, reseller
from tests.identity_helpers import identity_env, make_user  # noqa: F401

FROM = "2026-01-01"


@pytest.fixture
def world(cli):
    """The owner sells to R1 (R1-BUY), R2 (R2-BUY) and C0 (C0-AG); R1 sells to C1 (C1-AG); all in EUR."""
    owner_le(cli)
    reseller(cli, "R1")
    reseller(cli, "R2")
    client(cli, "C1", parent="R1")
    client(cli, "C0")
    for code, company in (("R1-BUY", "R1"), ("R2-BUY", "R2"), ("C1-AG", "C1"), ("C0-AG", "C0")):
        cli.json("agreement", "create", code, "--company", company, "--currency", "EUR", "--from", FROM)
    cli.json("service", "create", "SMS Std", "--type", "payg", "--currency", "EUR")
    return cli


def _link(cli, le="R1 LE", ag="R1-BUY", *extra, expect=0):
    return cli("agreement", "reselling", "add", le, ag, "--from", FROM, *extra, "-o", "json", expect=expect)


def _enable(cli, service, agreement, *extra, expect=0):
    return cli("agreement", "enable", service, "--agreement", agreement, "--from", FROM, *extra, "-o", "json",
               expect=expect)  # fmt: skip


# ------------------------------------------------------------ reselling agreements


def test_link_list_and_end(world):
    cli = world
    row = _link(cli).json
    assert (row["reseller"], row["legal_entity"], row["agreement"], row["currency"]) == ("R1", "R1 LE", "R1-BUY", "EUR")
    assert (row["effective_from"], row["effective_till"]) == ("2026-01-01T00:00:00Z", None)
    assert [r["id"] for r in cli.json("agreement", "reselling", "list")] == [row["id"]]
    assert cli.json("agreement", "reselling", "list", "--company", "R2") == []
    csv = cli("agreement", "reselling", "list", "-o", "csv").stdout.splitlines()
    assert csv[0] == "id,reseller,legal_entity,agreement,currency,effective_from,effective_till"
    assert csv[1].startswith(f"{row['id']},R1,R1 LE,R1-BUY,EUR,2026-01-01")
    assert [r["agreement"] for r in cli("agreement", "reselling", "list", "-o", "jsonl").jsonl] == ["R1-BUY"]
    ended = cli.json("agreement", "reselling", "end", str(row["id"]), "--at", "2026-06-01")
    assert (ended["result"], ended["effective_till"]) == ("ended", "2026-06-01T00:00:00Z")
    assert cli("agreement", "reselling", "end", "999", "-o", "json", expect=3).stdout == ""
    audit = cli.json("audit", "list", "--object", "reselling_agreement")
    assert {a["action"] for a in audit} >= {"insert", "update"}


def test_link_refused_for_a_legal_entity_that_is_not_a_resellers(world):
    run = _link(world, "C1 LE", "C1-AG", expect=4)
    assert run.stdout == ""
    assert run.stderr == "error: legal_entity: 'C1 LE' belongs to 'C1', a client, not a reseller; nothing was written\n"


def test_link_refused_for_an_agreement_where_another_company_buys(world):
    run = _link(world, "R1 LE", "R2-BUY", expect=4)
    assert "agreement 'R2-BUY' is with 'R2'; a reselling agreement of 'R1' must be one where 'R1' buys" in run.stderr


def test_link_refused_when_periods_overlap(world):
    cli = world
    first = _link(cli, "R1 LE", "R1-BUY", "--till", "2026-07-01").json
    run = _link(cli, "R1 LE", "R1-BUY", expect=5)
    assert f"reselling agreement #{first['id']} in an overlapping period" in run.stderr
    cli.json("agreement", "reselling", "add", "R1 LE", "R1-BUY", "--from", "2026-07-01")  # back to back: fine


def test_link_refused_when_a_client_agreement_sold_from_the_le_has_another_currency(world):
    cli = world
    cli.json("agreement", "create", "C1-USD", "--company", "C1", "--currency", "USD", "--from", FROM)
    run = _link(cli, expect=5)
    assert "client agreement 'C1-USD' sold from legal entity 'R1 LE' is in USD" in run.stderr
    assert cli.json("agreement", "reselling", "list") == []


def test_client_agreement_in_another_currency_refused_once_linked(world):
    cli = world
    _link(cli)
    run = cli("agreement", "create", "C1-USD", "--company", "C1", "--currency", "USD", "--from", FROM, "-o", "json",
              expect=5)  # fmt: skip
    assert "'R1 LE' buys on reselling agreement" in run.stderr and "in EUR, not USD" in run.stderr
    # before the link starts it is fine
    cli.json("agreement", "create", "C1-OLD", "--company", "C1", "--currency", "USD", "--from", "2025-01-01",
             "--till", FROM)  # fmt: skip


# ------------------------------------------------------------------- ownership


def test_service_owner_and_reseller_plan_shown(world):
    cli = world
    mine = cli.json("service", "create", "R1 SMS", "--type", "payg", "--currency", "EUR", "--company", "R1")
    assert (mine["owner"], mine["reseller_plan"]) == ("R1", False)
    plan = cli.json("service", "create", "Wholesale", "--type", "payg", "--currency", "EUR", "--reseller-plan")
    assert (plan["owner"], plan["reseller_plan"]) == ("System owner", True)
    shown = cli.json("service", "show", "R1 SMS")
    assert (shown["owner"], shown["reseller_plan"]) == ("R1", False)
    by_name = {r["name"]: (r["owner"], r["reseller_plan"]) for r in cli.json("service", "list")}
    assert by_name == {"SMS Std": ("System owner", False), "R1 SMS": ("R1", False), "Wholesale": ("System owner", True)}
    run = cli("service", "create", "X", "--type", "payg", "--currency", "EUR", "--company", "C1", "-o", "json",
              expect=4)  # fmt: skip
    assert "'C1' is a client" in run.stderr
    old = cli("service", "create", "Y", "--type", "payg", "--currency", "EUR", "--owner", "R1", "-o", "json")
    assert old.json["owner"] == "R1" and "use `--company`" in old.stderr


def test_enable_only_by_the_services_owner(world):
    cli = world
    cli.json("service", "create", "R1 SMS", "--type", "payg", "--currency", "EUR", "--company", "R1")
    _enable(cli, "SMS Std", "R1-BUY")  # the owner sells its services to its reseller
    _enable(cli, "SMS Std", "C0-AG")  # and to its own clients
    _enable(cli, "R1 SMS", "C1-AG")  # the reseller sells its own to its clients
    run = _enable(cli, "SMS Std", "C1-AG", expect=5)
    assert run.stdout == ""
    assert (
        "service 'SMS Std' belongs to 'System owner', but agreement 'C1-AG' is sold by 'R1': "
        "only the service's owner enables it on the agreements it sells"
    ) in run.stderr
    run = _enable(cli, "R1 SMS", "C0-AG", expect=5)
    assert "service 'R1 SMS' belongs to 'R1', but agreement 'C0-AG' is sold by 'System owner'" in run.stderr
    assert [(e["service"], e["agreement"]) for e in cli.json("agreement", "enabled", "list")] == [
        ("SMS Std", "R1-BUY"),
        ("SMS Std", "C0-AG"),
        ("R1 SMS", "C1-AG"),
    ]


def test_enable_of_a_resellers_service_refused_when_its_purchase_is_in_another_currency(world):
    cli = world
    cli.json("agreement", "create", "C1-USD", "--company", "C1", "--currency", "USD", "--from", FROM,
             "--till", "2026-03-01")  # fmt: skip
    _link(cli, "R1 LE", "R1-BUY", "--from", "2026-03-01")  # no overlap with C1-USD
    cli.json("service", "create", "R1 USD", "--type", "payg", "--currency", "USD", "--company", "R1")
    run = _enable(cli, "R1 USD", "C1-USD", expect=5)
    assert "service 'R1 USD' on agreement 'C1-USD' in USD" in run.stderr and "in EUR, not USD" in run.stderr
    _enable(cli, "R1 USD", "C1-USD", "--till", "2026-03-01")  # within the agreement, before the link: fine


# -------------------------------------------------------------- reseller plans


def test_reseller_plan_assignment_rules(world):
    cli = world
    cli.json("service", "create", "Wholesale", "--type", "payg", "--currency", "EUR", "--reseller-plan")
    run = _enable(cli, "Wholesale", "R1-BUY", expect=5)
    assert "'Wholesale' is a reseller plan not assigned to 'R1'" in run.stderr
    row = cli.json("service", "resellers", "assign", "Wholesale", "R1")
    assert (row["service"], row["owner"], row["reseller"]) == ("Wholesale", "System owner", "R1")
    assert cli("service", "resellers", "assign", "Wholesale", "R1", "-o", "json", expect=5).stdout == ""
    assert "is a client, not a reseller" in cli("service", "resellers", "assign", "Wholesale", "C1", expect=4).stderr
    run = cli("service", "resellers", "assign", "SMS Std", "R1", expect=4)
    assert "'SMS Std' is not a reseller plan" in run.stderr
    cli.json("service", "resellers", "assign", "Wholesale", "R2")
    assert [r["reseller"] for r in cli.json("service", "resellers", "list", "Wholesale")] == ["R1", "R2"]
    _enable(cli, "Wholesale", "R1-BUY")
    cli.json("service", "resellers", "unassign", "Wholesale", "R2")
    assert "not assigned to 'R2'" in cli("service", "resellers", "unassign", "Wholesale", "R2", expect=3).stderr
    assert "not assigned to 'R2'" in _enable(cli, "Wholesale", "R2-BUY", expect=5).stderr
    # a sub-reseller's plan goes only to resellers directly below its owner
    cli.json("service", "create", "R1 Plan", "--type", "payg", "--currency", "EUR", "--company", "R1",
             "--reseller-plan")  # fmt: skip
    assert "does not buy from 'R1'" in cli("service", "resellers", "assign", "R1 Plan", "R2", expect=4).stderr


# ------------------------------------------------------------------ visibility


@pytest.fixture
def seen_world(world):
    cli = world
    cli.json("service", "create", "R1 SMS", "--type", "payg", "--currency", "EUR", "--company", "R1")
    cli.json("service", "create", "R2 SMS", "--type", "payg", "--currency", "EUR", "--company", "R2")
    cli.json("service", "create", "Wholesale", "--type", "payg", "--currency", "EUR", "--reseller-plan")
    cli.json("service", "create", "Other plan", "--type", "payg", "--currency", "EUR", "--reseller-plan")
    cli.json("service", "resellers", "assign", "Wholesale", "R1")
    cli.json("service", "resellers", "assign", "Other plan", "R2")
    _enable(cli, "SMS Std", "R1-BUY")
    make_user(cli, "r1_admin", "R1")
    return cli


def test_a_reseller_user_sees_its_own_its_plans_and_its_purchases(seen_world, session):
    p = access.principal(session, user_svc.get(session, "r1_admin"))
    seen = ownership.seen_by(session, p)
    names = [s.name for s in catalog.list_services(session, seen=seen)]
    assert names == ["SMS Std", "R1 SMS", "Wholesale"]
    with pytest.raises(NotFound):
        catalog.get(session, "R2 SMS", seen=seen)
    assert catalog.get(session, "R1 SMS", seen=seen).name == "R1 SMS"
    # RIM-14: prices go only into a service its company owns
    with pytest.raises(Denied, match="may not import rates into 'SMS Std': it belongs to 'System owner'"):
        importer.run(session, path="none.csv", service_ref="SMS Std", scope_id=None, node_path="sms", maps={},
                     principal=p)  # fmt: skip
    ownership.may_import(session, p, catalog.get(session, "R1 SMS"))
    # its purchase prices: the agreement where it buys; never another reseller's
    from cpaas_cli.agreements import service as agreements

    ownership.may_export(session, p, agreements.get(session, "R1-BUY"))
    with pytest.raises(NotFound):
        ownership.may_export(session, p, agreements.get(session, "R2-BUY"))


def test_service_list_as_seen_by_a_company(seen_world):
    cli = seen_world
    assert [r["name"] for r in cli.json("service", "list", "--company", "R1")] == ["SMS Std", "R1 SMS", "Wholesale"]
    assert [r["name"] for r in cli.json("service", "list", "--company", "R2")] == ["R2 SMS", "Other plan"]
    _enable(cli, "R1 SMS", "C1-AG")
    assert [r["name"] for r in cli.json("service", "list", "--company", "C1")] == ["R1 SMS"]
    assert len(cli.json("service", "list", "--company", "System owner")) == 5


def test_enable_rule_in_a_fresh_process(world):
    """The rule crosses packages (agreements → catalog → tenancy): checked in a new `cpaas` process."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = subprocess.run(
        [sys.executable, "-m", "cpaas_cli", "--db", world.url, "agreement", "enable", "SMS Std", "--agreement",
         "C1-AG", "--from", FROM, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 5 and run.stdout == ""
    assert "service 'SMS Std' belongs to 'System owner', but agreement 'C1-AG' is sold by 'R1'" in run.stderr
