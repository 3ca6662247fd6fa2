"""The one permission check (access.require): permissions and tenant scope as a
table of owner / reseller / sub-reseller / client users × companies."""

from __future__ import annotations

import pytest

from cpaas_cli.errors import Denied
from cpaas_cli.identity import access
from cpaas_cli.identity import users as user_svc
from tests.helpers import client, owner_le, reseller
from tests.identity_helpers import identity_env, make_user  # noqa: F401

# companies: owner(1) ─ R ─ SR ─ C_SR
#                     │    └ C_R
#                     ├ R2 ─ C_R2
#                     └ C_O
COMPANIES = ("owner", "R", "SR", "C_SR", "C_R", "R2", "C_R2", "C_O")
SEES = {
    "owner": set(COMPANIES),
    "R": {"R", "SR", "C_SR", "C_R"},
    "SR": {"SR", "C_SR"},
    "C_SR": {"C_SR"},
    "C_R": {"C_R"},
}


@pytest.fixture
def tree(cli):
    owner_le(cli)
    ids = {"owner": 1}
    ids["R"] = reseller(cli, "R", creator=True)["id"]
    ids["SR"] = reseller(cli, "SR", parent=str(ids["R"]))["id"]
    ids["C_SR"] = client(cli, "C_SR", parent=str(ids["SR"]))["id"]
    ids["C_R"] = client(cli, "C_R", parent=str(ids["R"]))["id"]
    ids["R2"] = reseller(cli, "R2")["id"]
    ids["C_R2"] = client(cli, "C_R2", parent=str(ids["R2"]))["id"]
    ids["C_O"] = client(cli, "C_O")["id"]
    for who in SEES:
        dep = {"department": "Admin"} if who.startswith("C_") else {}
        make_user(cli, f"u_{who.lower()}", str(ids[who]), role="Admin", **dep)
    return ids


@pytest.mark.parametrize("who", list(SEES))
def test_scope_table(tree, session, who):
    user = user_svc.get(session, f"u_{who.lower()}")
    p = access.principal(session, user)
    for target in COMPANIES:
        allowed = target in SEES[who]
        perm = "campaign.send"
        try:
            access.require(p, perm, tree[target])
            got = True
        except Denied:
            got = False
        assert got is allowed, f"{who} on {target}: expected {'allowed' if allowed else 'refused'}"


def test_platform_objects_only_for_the_owner(tree, session):
    owner = access.principal(session, user_svc.get(session, "u_owner"))
    access.require(owner, "connection.manage", None)
    res = access.principal(session, user_svc.get(session, "u_r"))
    with pytest.raises(Denied):
        access.require(res, "connection.manage", None)


@pytest.mark.parametrize(
    ("role", "permission", "ok"),
    [
        ("Finance manager", "payment.add", True),
        ("Finance manager", "company.view", True),
        ("Finance manager", "company.update", False),
        ("Rate manager", "rates.import", True),
        ("Rate manager", "payment.list", False),
        ("NOC engineer", "edr.list", True),
        ("NOC engineer", "edr.rate", False),
    ],
)
def test_role_permissions(cli, session, role, permission, ok):
    make_user(cli, "bo", role=role)
    p = access.principal(session, user_svc.get(session, "bo"))
    assert p.allows(permission) is ok


def test_portal_user_never_gets_backoffice_areas(cli, session):
    owner_le(cli)
    c = client(cli, "Acme")
    make_user(cli, "pa", str(c["id"]), role="Admin", department="Admin")
    p = access.principal(session, user_svc.get(session, "pa"))
    assert p.allows("campaign.send") and not p.allows("connection.manage") and not p.allows("rerate.run")


def test_refusal_is_audited_with_the_user_as_actor(cli, session, db_url):
    owner_le(cli)
    c = client(cli, "Acme")
    make_user(cli, "pa", str(c["id"]), role="Broadcast manager", department="Admin")
    p = access.principal(session, user_svc.get(session, "pa"))
    with pytest.raises(Denied):
        access.require(p, "finance.manage", c["id"], session=session, ip="203.0.113.9")
    session.rollback()  # the command fails; the audit row stays
    rows = cli.json("audit", "list", "--action", "permission_refused")
    assert rows[0]["actor"] == "user:pa" and rows[0]["new"]["ip"] == "203.0.113.9"


def test_blocked_company_and_disabled_user_cannot_authenticate(cli, session):
    owner_le(cli)
    r = reseller(cli, "R")
    c = client(cli, "Acme", parent=str(r["id"]))
    make_user(cli, "pa", str(c["id"]), role="Admin", department="Admin")
    access.principal(session, user_svc.get(session, "pa"))
    cli.json("tenant", "disable", str(r["id"]))  # a company above the user's is blocked
    session.expire_all()
    with pytest.raises(Denied, match="blocked"):
        access.principal(session, user_svc.get(session, "pa"))
    cli.json("tenant", "enable", str(r["id"]))
    cli.json("user", "disable", "pa")
    session.expire_all()
    with pytest.raises(Denied, match="disabled"):
        access.principal(session, user_svc.get(session, "pa"))
