"""`balance tree RESELLER [--at]` (PAY-08): the reseller's purchase agreement and every
company below it with balance, credit limit, available and at risk; figures by hand."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers import owner_le

DOC = {
    "creator_of_resellers": True,
    "legal_entity": {"name": "R LE", "legal_name": "R Ltd", "country": "GB", "legal_id": "R-1"},
    "agreement": {"code": "R-1", "currency": "EUR", "effective_from": "2026-01-01", "credit_limit": "500"},
    "admin": {"login": "r.admin", "first_name": "Rita", "last_name": "Reid"},
    "payment": {"amount": "1000", "reference": "R-OPEN", "paid_at": "2026-02-01"},
}


def _company(cli, name: str, parent: str, *, kind: str = "client") -> None:
    cli.json("tenant", "create", name, "--parent", parent, "--type", kind)
    extra = ["--legal-id", f"{name}-1"] if kind == "reseller" else []
    cli.json(
        "tenant",
        "legal-entity",
        "add",
        f"{name} LE",
        "--company",
        name,
        "--legal-name",
        name,
        "--country",
        "GB",
        *extra,
    )


def _pay(cli, code: str, amount: str, direction: str = "inbound") -> None:
    cli.json("payment", "add", "--agreement", code, "--reference", f"{code}-{amount}-{direction}", "--amount", amount,
             "--direction", direction, "--confirmed")  # fmt: skip


def _tree(cli, tmp_path: Path) -> None:
    """R (1000 paid, limit 500) → C1 (50 in, 80 out: -30, limit 100), S sub-reseller
    (20 out: -20, unlimited) → C2 (5 in, limit 10), and C3 with no agreement."""
    owner_le(cli)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(DOC), encoding="utf-8")
    cli("tenant", "reseller", "create", "R", "--from-file", str(path), "-o", "json")
    _company(cli, "C1", "R")
    cli.json("agreement", "create", "C1-1", "--company", "C1", "--currency", "EUR", "--credit-limit", "100")
    _pay(cli, "C1-1", "50")
    _pay(cli, "C1-1", "80", "outbound")
    _company(cli, "S", "R", kind="reseller")
    cli.json("agreement", "create", "S-1", "--company", "S", "--currency", "EUR")
    _pay(cli, "S-1", "20", "outbound")
    _company(cli, "C2", "S")
    cli.json("agreement", "create", "C2-1", "--company", "C2", "--currency", "EUR", "--credit-limit", "10")
    _pay(cli, "C2-1", "5")
    _company(cli, "C3", "R")


def test_balance_tree_figures(cli, tmp_path):
    _tree(cli, tmp_path)
    run = cli("balance", "tree", "R", "-o", "json")
    rows = run.json
    got = [
        (r["depth"], r["company"], r["parent"], r["agreement"], r["balance"], r["credit_limit"], r["available"], r["at_risk"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        (0, "R", "System owner", "R-1", "1000.00", "500.00", "1500.00", "0.00"),
        (1, "C1", "R", "C1-1", "-30.00", "100.00", "70.00", "30.00"),
        (1, "S", "R", "S-1", "-20.00", "unlimited", "unlimited", "20.00"),
        (2, "C2", "S", "C2-1", "5.00", "10.00", "15.00", "0.00"),
        (1, "C3", "R", None, None, None, None, None),
    ]
    assert "tree" not in rows[0]
    assert "owed by the companies below 'R' to their sellers: 50.00 EUR" in run.stderr
    csv = cli("balance", "tree", "R", "-o", "csv").stdout.splitlines()
    assert csv[0].startswith("depth,company_id,company,type,parent_id,parent,agreement_id,agreement,currency,balance")
    assert [line.split(",")[0] for line in csv[1:]] == ["0", "1", "1", "2", "1"]
    assert len(cli("balance", "tree", "S", "-o", "jsonl").jsonl) == 2


def test_balance_tree_at_a_past_time(cli, tmp_path):
    _tree(cli, tmp_path)
    rows = cli.json("balance", "tree", "R", "--at", "2026-01-15")
    # R-1 started 2026-01-01, its payment came 2026-02-01; the others did not exist yet
    assert [(r["company"], r["agreement"], r["balance"], r["available"]) for r in rows] == [
        ("R", "R-1", "0.00", "500.00"),
        ("C1", None, None, None),
        ("S", None, None, None),
        ("C2", None, None, None),
        ("C3", None, None, None),
    ]
    assert rows[0]["at"] == "2026-01-15T00:00:00Z"


def test_balance_tree_table_indents_and_fits(cli, tmp_path):
    _tree(cli, tmp_path)
    for width in ("80", "120"):
        run = cli("balance", "tree", "R", env={"COLUMNS": width})
        lines = run.stdout.splitlines()
        assert all(len(line) <= int(width) for line in lines), run.stdout
        body = "\n".join(lines)
        assert "│ R " in body and "│   C1 " in body and "│     C2 " in body
        assert "-30.00" in body and "unlimited" in body
        assert "hidden to fit" not in run.stderr, run.stderr
