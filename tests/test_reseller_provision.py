"""`tenant reseller create NAME --from-file reseller.yaml` (TEN-12, SID-15): the
tenant's steps in one transaction, --dry-run, every bad field named, and top-ups
on each level (PAY-08)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from cpaas_cli.agreements import reselling
from tests.helpers import owner_le

ROOT = Path(__file__).resolve().parent.parent

DOC = {
    "description": "Nordic SMS reseller",
    "legal_entity": {
        "name": "Nordic Reach AB",
        "legal_name": "Nordic Reach Messaging AB",
        "country": "SE",
        "legal_id": "556123-4567",
        "portal": "sms.nordic.example",
    },
    "agreement": {
        "code": "NR-1",
        "currency": "EUR",
        "effective_from": "2026-01-01",
        "timezone": "Europe/Stockholm",
        "credit_limit": "500",
        "days_for_payment": 14,
    },
    "services": ["SMS Standard", {"name": "SMS Pack", "billing": "free"}],
    "admin": {"login": "nordic.admin", "first_name": "Sara", "last_name": "Lind", "email": "sara@nordic.example"},
    "payment": {"amount": "1000.00", "reference": "NR-OPEN"},
    "sender_ids": ["NordicReach", {"sender": "72000", "type": "short_code", "active": True}],
}


def _world(cli) -> None:
    owner_le(cli)
    cli.json("service", "create", "SMS Standard", "--type", "payg", "--currency", "EUR")
    cli.json("service", "create", "SMS Pack", "--type", "unit-pack", "--size", "1000")
    cli.json("service", "create", "SMS USD", "--type", "payg", "--currency", "USD")


def _file(tmp_path: Path, doc: dict, name: str = "reseller.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return str(path)


def _everything(cli) -> dict:
    """What the command may write, as the list commands show it."""
    return {
        "companies": cli.json("tenant", "list"),
        "legal_entities": cli.json("tenant", "legal-entity", "list"),
        "agreements": cli.json("agreement", "list"),
        "enabled": cli.json("agreement", "enabled", "list"),
        "users": cli.json("user", "list"),
        "payments": cli.json("payment", "list"),
        "senders": cli.json("sender", "list"),
    }


def test_provisioning_creates_every_step_in_one_go(cli, tmp_path, session):
    _world(cli)
    run = cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, DOC), "-o", "json")
    rows = run.json
    objects = [(r["step"], r["object"], r["name"]) for r in rows]
    assert objects == [
        (1, "company", "Nordic Reach"),
        (2, "legal_entity", "Nordic Reach AB"),
        (3, "agreement", "NR-1"),
        (4, "reselling_agreement", "Nordic Reach AB / NR-1"),
        (5, "enabled_service", "SMS Standard"),
        (5, "enabled_service", "SMS Pack"),
        (6, "user", "nordic.admin"),
        (6, "activation_token", "nordic.admin"),
        (8, "portal", "sms.nordic.example"),
        (9, "payment", "NR-OPEN"),
        (10, "sender_id", "NordicReach"),
        (10, "sender_id", "72000"),
    ]
    assert all(r["id"] for r in rows if r["object"] != "activation_token")
    assert "shown once" in run.stderr
    token = next(r["detail"] for r in rows if r["object"] == "activation_token")
    assert token not in run.stderr

    company = cli.json("tenant", "show", "Nordic Reach")
    assert (company["type"], company["parent"], company["own_legal_entity"]) == ("reseller", "System owner", "Hub SL")
    assert company["creator_of_resellers"] is False
    assert [le["portal"] for le in company["legal_entities"]] == ["sms.nordic.example"]
    ag = cli.json("agreement", "show", "NR-1")
    assert (ag["company"], ag["currency"]) == ("Nordic Reach", "EUR")
    assert cli.json("balance", "show", "NR-1") | {"at": None} == {
        "agreement": "NR-1",
        "currency": "EUR",
        "at": None,
        "payments": "1000.00",
        "charges": "0.00",
        "balance": "1000.00",
        "credit_limit": "500.00",
        "available": "1500.00",
    }
    links = reselling.rows(session)
    assert [(r["reseller"], r["legal_entity"], r["agreement"]) for r in links] == [
        ("Nordic Reach", "Nordic Reach AB", "NR-1")
    ]
    assert links[0]["effective_from"].isoformat().startswith("2025-12-31T23:00")  # midnight in Stockholm
    enabled = cli.json("agreement", "enabled", "list", "--agreement", "NR-1")
    assert [(e["service"], e["billing"]) for e in enabled] == [("SMS Standard", None), ("SMS Pack", "free")]
    user = cli.json("user", "show", "nordic.admin")
    assert (user["kind"], user["roles"], user["enabled"]) == ("backoffice", ["Admin"], False)
    activated = cli.json("user", "activate", token, "--password-stdin", input="Str0ng-Passw0rd!x\n")
    assert activated["enabled"] is True
    senders = cli.json("sender", "list")
    assert [(s["company"], s["sender"], s["agreement"], s["status"]) for s in senders] == [
        ("Nordic Reach", "NordicReach", "NR-1", "draft"),
        ("Nordic Reach", "72000", "NR-1", "active"),
    ]


def test_every_output_format(cli, tmp_path):
    _world(cli)
    doc = {k: v for k, v in DOC.items() if k not in ("services", "sender_ids", "payment")}
    run = cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, doc), "-o", "csv")
    lines = run.stdout.splitlines()
    assert lines[0] == "step,object,id,name,detail"
    assert lines[1].startswith("1,company,2,Nordic Reach,")
    doc["admin"] = {**doc["admin"], "login": "other.admin"}
    doc["agreement"] = {**doc["agreement"], "code": "NR-2"}
    run = cli("tenant", "reseller", "create", "Nordic Two", "--from-file", _file(tmp_path, doc), "-o", "jsonl")
    assert [r["object"] for r in run.jsonl][:2] == ["company", "legal_entity"]


def test_dry_run_writes_nothing(cli, tmp_path):
    _world(cli)
    before = _everything(cli)
    run = cli(
        "tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, DOC), "--dry-run", "-o", "json"
    )
    rows = run.json
    assert [r["object"] for r in rows][:4] == ["company", "legal_entity", "agreement", "reselling_agreement"]
    assert all(r["id"] is None for r in rows)
    assert "activation_token" not in [r["object"] for r in rows]
    assert "dry run" in run.stderr
    assert _everything(cli) == before
    # and the same document then goes through for real
    cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, DOC), "-o", "json")
    assert len(cli.json("tenant", "list")) == len(before["companies"]) + 1


def test_bad_fields_are_all_named_by_their_path_and_nothing_is_written(cli, tmp_path):
    _world(cli)
    before = _everything(cli)
    bad = json.loads(json.dumps(DOC))
    bad["colour"] = "blue"
    bad["legal_entity"]["country"] = "XX"
    del bad["legal_entity"]["legal_id"]
    bad["agreement"]["currency"] = "EURO"
    bad["agreement"]["billing_period"] = "yearly"
    bad["services"] = ["SMS Standard", "SMS Standard", {"name": "SMS Pack"}, {"name": "No Such Plan"}]
    bad["admin"]["email"] = "not-an-address"
    bad["payment"]["amount"] = "-5"
    bad["sender_ids"] = ["this sender is far too long", {"sender": "X", "channel": "pigeon"}]
    run = cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, bad), expect=4)
    assert run.stdout == ""
    err = run.stderr
    for path in (
        "colour: unknown field",
        "legal_entity.country:",
        "legal_entity.legal_id: is required",
        "agreement.currency:",
        "agreement.billing_period:",
        "services[1].name: 'SMS Standard' is listed twice",
        "services[2].billing:",
        "services[3].name:",
        "admin.email:",
        "payment.amount: must be more than zero",
        "sender_ids[0].sender:",
        "sender_ids[1].channel:",
    ):
        assert f"  {path}" in err, (path, err)
    assert "nothing was written" in err
    assert _everything(cli) == before


def test_services_must_be_the_parents_in_the_agreements_currency(cli, tmp_path):
    _world(cli)
    doc = {**DOC, "services": ["SMS USD"], "payment": None, "sender_ids": None}
    run = cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, doc), expect=4)
    assert "services[0].name: 'SMS USD' is in USD, the agreement in EUR" in run.stderr


def test_missing_sections_and_a_parent_that_may_not_create_resellers(cli, tmp_path):
    _world(cli)
    run = cli("tenant", "reseller", "create", "R", "--from-file", _file(tmp_path, {"description": "x"}), expect=4)
    for key in ("legal_entity", "agreement", "admin"):
        assert f"  {key}: is required" in run.stderr
    cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, DOC), "-o", "json")
    sub = {
        **DOC,
        "parent": "Nordic Reach",
        "services": None,
        "sender_ids": None,
        "agreement": {**DOC["agreement"], "code": "SUB-1"},
        "admin": {**DOC["admin"], "login": "sub.admin"},
    }
    run = cli("tenant", "reseller", "create", "Sub", "--from-file", _file(tmp_path, sub), expect=4)
    assert "parent: reseller 'Nordic Reach' is not allowed to create resellers" in run.stderr
    cli("tenant", "update", "Nordic Reach", "--creator-of-resellers", "-o", "json")
    rows = cli.json("tenant", "reseller", "create", "Sub", "--from-file", _file(tmp_path, sub))
    assert rows[0]["detail"] == "reseller under Nordic Reach"
    assert cli.json("agreement", "show", "SUB-1")["seller"] == "Nordic Reach"


def test_yaml_that_does_not_parse_or_reads_no_as_false(cli, tmp_path):
    _world(cli)
    path = tmp_path / "broken.yaml"
    path.write_text("legal_entity: [unclosed\n", encoding="utf-8")
    run = cli("tenant", "reseller", "create", "R", "--from-file", str(path), expect=4)
    assert "broken.yaml: cannot parse" in run.stderr
    text = _file(tmp_path, DOC)
    Path(text).write_text(Path(text).read_text().replace("country: SE", "country: NO"), encoding="utf-8")
    run = cli("tenant", "reseller", "create", "R", "--from-file", text, expect=4)
    assert "legal_entity.country: must be text, not false (quote it" in run.stderr


def test_a_step_that_fails_while_writing_is_named_and_rolls_back_the_others(cli, tmp_path):
    """A charged pack needs a price on the agreement: found out only when it is enabled."""
    _world(cli)
    before = _everything(cli)
    doc = {**DOC, "services": [{"name": "SMS Pack", "billing": "charge"}]}
    run = cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, doc), expect=4)
    assert run.stderr.startswith("error: services[0]: rate not found"), run.stderr
    assert _everything(cli) == before


def test_a_document_that_is_not_a_mapping(cli, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    run = cli("tenant", "reseller", "create", "R", "--from-file", str(path), expect=4)
    assert "document: must be a mapping of fields, not a list" in run.stderr


def test_top_ups_on_each_level(cli, tmp_path):
    """PAY-08: the tenant tops up the reseller's purchase agreement, the reseller its client's."""
    _world(cli)
    doc = {k: v for k, v in DOC.items() if k != "payment"}
    cli("tenant", "reseller", "create", "Nordic Reach", "--from-file", _file(tmp_path, doc), "-o", "json")
    cli.json("tenant", "create", "Fika AB", "--parent", "Nordic Reach")
    cli.json(
        "tenant", "legal-entity", "add", "Fika LE", "--company", "Fika AB", "--legal-name", "Fika", "--country", "SE"
    )
    cli.json("agreement", "create", "FIKA-1", "--company", "Fika AB", "--currency", "EUR")
    assert cli.json("agreement", "show", "FIKA-1")["seller"] == "Nordic Reach"
    cli.json("payment", "add", "--agreement", "NR-1", "--reference", "T-1", "--amount", "300", "--confirmed")
    cli.json("payment", "add", "--agreement", "FIKA-1", "--reference", "R-1", "--amount", "40.5", "--confirmed")
    assert cli.json("balance", "show", "NR-1")["balance"] == "300.00"
    assert cli.json("balance", "show", "FIKA-1")["balance"] == "40.50"


def test_the_sample_document_in_a_fresh_process(db_url, tmp_path, cli):
    _world(cli)
    env = {k: v for k, v in {**os.environ, "COLUMNS": "100"}.items() if v is not None}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cpaas_cli.cli.app import main; main()",
            "--db",
            db_url,
            "tenant",
            "reseller",
            "create",
            "Nordic Reach",
            "--from-file",
            str(ROOT / "sample_data" / "reseller_demo.yaml"),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)  # stdout is the data only
    assert [r["object"] for r in rows].count("sender_id") == 2
    assert "shown once" in run.stderr
    assert cli.json("balance", "show", "NR-1")["balance"] == "1000.00"
    assert cli.json("tenant", "show", "Nordic Reach")["type"] == "reseller"
