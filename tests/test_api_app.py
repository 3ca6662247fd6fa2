"""The HTTP API application: health, readiness, the OpenAPI document, authentication, problems."""

from __future__ import annotations

import json

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from tests.api_helpers import api, assert_problem, auth, key_for, tenants  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401


def test_health_and_readiness(api, db_url):  # noqa: F811
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0024'"))
    body = assert_problem(api.get("/readyz"), 503, "not-ready")
    assert body["current"] == ["0024"] and body["heads"] == ready.json()["migrations"]


def test_openapi_exported_is_the_served_document(api, cli):  # noqa: F811
    served = api.get("/openapi.json").json()
    exported = json.loads(cli("api", "openapi").stdout)
    assert exported == served
    assert "/v1/balance" in served["paths"] and served["info"]["title"] == "cpaas HTTP API"


def test_unknown_route_is_a_problem(api):  # noqa: F811
    assert_problem(api.get("/v1/nothing"), 404, "not-found")


def test_no_key_bad_key_and_revoked_key_are_401(api, cli):  # noqa: F811
    tenants(cli)
    key = key_for(cli, "alice", "Client A")
    body = assert_problem(api.get("/v1/balance"), 401, "unauthenticated")
    assert "Bearer" in body["detail"]
    assert api.get("/v1/balance").headers["www-authenticate"].startswith("Bearer")
    assert_problem(api.get("/v1/balance", headers={"Authorization": "Basic abc"}), 401, "unauthenticated")
    assert_problem(api.get("/v1/balance", headers=auth(key[:-4] + "AAAA")), 401, "unauthenticated")
    assert api.get("/v1/balance", headers=auth(key)).status_code == 200
    cli.json("apikey", "revoke", "alice-key", "--user", "alice")
    api.app.state.api.authenticator._seen_at = -1e9  # noqa: SLF001 - re-read the generation now, not in 1 s
    body = assert_problem(api.get("/v1/balance", headers=auth(key)), 401, "unauthenticated")
    assert "revoked" in body["detail"]


def test_permission_refused_is_403(api, cli):  # noqa: F811
    tenants(cli)
    key = key_for(cli, "noc", "Client A", role="NOC engineer")  # portal: no finance area
    body = assert_problem(api.get("/v1/balance", headers=auth(key)), 403, "forbidden")
    assert "finance.view" in body["detail"]


def test_balance_of_the_keys_company(api, cli):  # noqa: F811
    tenants(cli)
    key = key_for(cli, "alice", "Client A")
    cli.json("payment", "add", "--agreement", "AG-A", "--reference", "P1", "--amount", "12.50", "--confirmed")
    got = api.get("/v1/balance", headers=auth(key)).json()
    shown = cli.json("balance", "show", "AG-A")
    shown.pop("at")
    assert got == {"balances": [shown]} and shown["balance"] == "12.50"
    assert_problem(api.get("/v1/balance?agreement=AG-B", headers=auth(key)), 404, "not-found")


def test_domain_and_cli_startup_import_no_web_framework():
    """The API layer is the only importer of FastAPI: the sending services and `cpaas serve`
    without --http load none of it (a fresh process: nothing imported by other tests)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import cpaas_cli.sending.service, cpaas_cli.sending.views, cpaas_cli.sending.idempotency\n"
        "import cpaas_cli.sending.rate, cpaas_cli.cli.serve, cpaas_cli.scheduler.serve\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn'))\n"
        "bad += sorted(m for m in sys.modules if m.startswith('cpaas_cli.api'))\n"
        "print(bad)\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]"
