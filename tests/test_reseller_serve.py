"""Chain rating on the dispatch path (RAT-10), in a fresh `cpaas serve --once`
process against the SMPP simulator: a reseller's client's campaign is charged
at both levels as it is sent; when the reseller's credit runs out before the
messages are sent, they are refused at every level and nothing is charged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.api_helpers import api, assert_problem, auth, key_for  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_reseller_chain import chain, charges, edrs
from tests.test_serve import smsc  # noqa: F401 (the fixture)


def _serve_once(db_url: str) -> dict:
    env = {**os.environ, "SIM_PW": "pw"}
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "serve", "--once", "--receipt-timeout", "5", "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sending(cli, tmp_path, port: int, credit: str | None = None) -> None:
    chain(cli, tmp_path, reseller_credit=credit)
    cli.json(
        "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", str(port), "--system-id", "cpaas",
        "--password-env", "SIM_PW",
    )  # fmt: skip
    cli.json("sender", "add", "ACME", "--company", "Client C", "--agreement", "C-1", "--active", "--connection", "sim")


def _campaign(cli, phones: list[str]) -> int:
    args = ["campaign", "create", "--company", "Client C", "--sender", "ACME", "--text", "Hello"]
    for p in phones:
        args += ["--to", p]
    c = cli.json(*args)
    cli.json("campaign", "send", str(c["id"]))
    return c["id"]


def test_serve_charges_every_level(cli, db_url, smsc, tmp_path):  # noqa: F811
    _sending(cli, tmp_path, smsc.port)
    _campaign(cli, ["+34600000001", "+34600000002", "+34600000003"])
    out = _serve_once(db_url)
    assert out["submitted"] == 3, out
    # C-1: 3 × 0.045; R-PUR: 3 × 0.030
    assert charges(cli) == {"C-1": 135_000, "R-PUR": 90_000}
    assert cli.json("balance", "show", "R-PUR")["charges"] == "0.09"


def test_reseller_credit_spent_before_dispatch_refuses_at_every_level(cli, db_url, smsc, tmp_path):  # noqa: F811
    # R may owe 0.10: the campaign (3 × 0.030 = 0.09) fits when it starts ...
    _sending(cli, tmp_path, smsc.port, credit="0.10")
    cid = _campaign(cli, ["+34600000001", "+34600000002", "+34600000003"])
    # ... then other traffic of R's client takes 0.060 of it (2 × 0.030): one message still fits.
    cli.json("edr", "ingest", edrs(tmp_path, [("x1", "34600000009", 2)]))
    assert charges(cli) == {"C-1": 90_000, "R-PUR": 60_000}
    out = _serve_once(db_url)
    assert out["submitted"] == 1, out
    assert charges(cli) == {"C-1": 135_000, "R-PUR": 90_000}
    shown = cli.json("campaign", "show", str(cid))
    assert shown["state"] == "failed" and "insufficient credit" in (shown["failure_reason"] or "")


def test_api_send_checks_the_resellers_funds_402(api, cli, smsc, tmp_path):  # noqa: F811
    # R may owe 0.05: two ES messages cost R 0.060 (C pays 0.090 from unlimited credit).
    _sending(cli, tmp_path, smsc.port, credit="0.05")
    key = key_for(cli, "carol", "Client C")
    body = {"from": "ACME", "to": ["34600000001", "34600000002"], "text": "Hi"}
    got = assert_problem(api.post("/v1/messages", headers=auth(key), json=body), 402, "insufficient-credit")
    assert (got["required"], got["available"], got["currency"]) == ("0.06", "0.05", "EUR")
    assert "level 1" in got["detail"] and "R-PUR" in got["detail"]
    one = api.post("/v1/messages", headers=auth(key), json={**body, "to": "34600000001"})
    assert one.status_code == 202, one.text
