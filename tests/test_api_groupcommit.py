"""Group commit of POST /v1/messages: many requests in one transaction, each with its own
rules and answer (cpaas_cli/sending/batch.py, cpaas_cli/db/groupcommit.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.db.groupcommit import GroupCommit
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.models.campaigns import Campaign
from cpaas_cli.sending import batch
from cpaas_cli.sending.idempotency import IdempotencyConflict
from cpaas_cli.sending.service import CreditShort
from tests.api_helpers import auth, key_for
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_api_send import queue_rows
from tests.test_serve import setup, smsc  # noqa: F401

ES = "3462000{:04d}"  # Spanish mobiles: 0.08 EUR a message on tests/data/example1.yaml


def answer(sent):
    return {
        "queued": [[q, p] for s in sent for q, p in s.queued],
        "refused": [list(r) for s in sent for r in s.refused],
    }


def ids(db_url) -> tuple[int, int]:
    """(Client A's id, the API key's id)."""
    with get_engine(db_url).connect() as conn:
        return tuple(
            conn.execute(sa.text("select u.company_id, k.id from api_key k join app_user u on u.id = k.user_id")).one()
        )


def req(company_id, key_id, n, *, sender="ACME", text="Code 1", label="otp", key=None, to=None):
    m = batch.Message(sender=sender, to=to or [ES.format(n)], text=text, label=label)
    return batch.Request(company_id=company_id, api_key_id=key_id, messages=[m], key=key, digest=f"d{text}{n}")


def run(db_url, requests, lookups=None):
    s = make_session(get_engine(db_url), actor="test")
    try:
        out = batch.send_requests(s, requests, answer=answer, lookups=lookups)
        s.commit()
    finally:
        s.close()
    return out


def campaigns(db_url) -> list[dict]:
    t = Campaign.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


@pytest.fixture
def ready(cli, smsc, identity_env):  # noqa: F811
    def make(**kw):
        setup(cli, smsc.port, **kw)
        key_for(cli, "alice", "Client A")

    return make


def test_one_campaign_for_a_group_and_each_request_its_own_answer(ready, cli, db_url):
    ready()
    cli.json("contacts", "stoplist", "add", "+" + ES.format(3), "--company", "Client A", "--sender", "ALL")
    co, key = ids(db_url)
    reqs = [req(co, key, n, text=f"Code {n}") for n in range(1, 6)]
    reqs[3] = req(co, key, 4, to=[ES.format(4), ES.format(4), "12"])  # a duplicate and a bad number
    out = run(db_url, reqs)
    assert all(isinstance(o, batch.Done) for o in out), out
    (c,) = campaigns(db_url)
    assert c["state"] == "in_progress" and c["messages"] == 4 and c["name"] == "API otp" and c["text"] is None
    rows = {r["id"]: r for r in queue_rows(db_url)}
    for n, o in zip(range(1, 6), out, strict=True):
        if n == 3:
            assert o.answer["queued"] == [] and o.answer["refused"] == [[ES.format(3), "blocked by the stop list"]]
            continue
        ((qid, phone),) = o.answer["queued"]
        assert phone == ES.format(n) and rows[qid]["phone"] == phone and rows[qid]["label"] == "otp"
        assert rows[qid]["text"] == ("Code 1" if n == 4 else f"Code {n}")  # each request keeps its own text
    assert out[3].answer["refused"] == [["12", "invalid number: is too short"]]
    assert c["estimated_cost"] == 4 * 80_000


def test_a_group_that_does_not_fit_is_written_request_by_request(ready, cli, db_url):
    """Credit is checked per request, as for a lone request (the balance, not what others queued)."""
    ready(credit="0.20")  # one request of up to two messages of 0.08 fits; the group as a whole does not
    co, key = ids(db_url)
    three = [ES.format(n) for n in (3, 4, 5)]  # 0.24 > 0.20
    out = run(db_url, [req(co, key, 1), req(co, key, 2), req(co, key, 3, to=three), req(co, key, 6)])
    assert [type(o).__name__ for o in out] == ["Done", "Done", "CreditShort", "Done"]
    assert out[2].problem_fields == {"required": "0.24", "available": "0.20", "currency": "EUR"}
    assert [r["phone"] for r in queue_rows(db_url)] == [ES.format(n) for n in (1, 2, 6)]
    assert [c["state"] for c in campaigns(db_url)] == ["in_progress"] * 3  # one campaign each, as alone


def test_errors_stay_with_their_request(ready, cli, db_url):
    ready()
    co, key = ids(db_url)
    out = run(db_url, [req(co, key, 1), req(co, key, 2, sender="NOPE"), req(co, key, 4, to=["1"]), req(co, key, 5)])
    assert isinstance(out[0], batch.Done) and len(out[0].answer["queued"]) == 1
    assert isinstance(out[1], NotFound) and "NOPE" in out[1].message
    assert isinstance(out[2], batch.Done) and out[2].answer["queued"] == [] and out[2].answer["refused"]
    assert isinstance(out[3], batch.Done) and len(out[3].answer["queued"]) == 1
    assert len(queue_rows(db_url)) == 2 and len(campaigns(db_url)) == 1


def test_the_same_idempotency_key_twice_in_one_group(ready, cli, db_url):
    ready()
    co, key = ids(db_url)
    a = req(co, key, 1, key="k-1")
    same = req(co, key, 1, key="k-1")
    other_body = req(co, key, 2, key="k-1")
    out = run(db_url, [a, same, other_body])
    assert isinstance(out[0], batch.Done) and out[0].replay is None
    assert isinstance(out[1], batch.Done) and out[1].replay == (202, out[0].answer)
    assert isinstance(out[2], IdempotencyConflict)
    assert len(queue_rows(db_url)) == 1
    again = run(db_url, [req(co, key, 1, key="k-1")])
    assert again[0].replay == (202, out[0].answer) and len(queue_rows(db_url)) == 1


def test_a_failed_request_keeps_nothing_under_its_key(ready, cli, db_url):
    ready(credit="0.05")  # not even one message fits
    co, key = ids(db_url)
    (out,) = run(db_url, [req(co, key, 1, key="k-2")])
    assert isinstance(out, CreditShort)
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from api_idempotency")).scalar() == 0
    assert campaigns(db_url) == [] and queue_rows(db_url) == []


def test_lookups_are_kept_ttl_seconds_then_read_again(ready, cli, db_url):
    """A writer reuses a sender ID it read for ``ttl`` seconds: a sender disabled meanwhile is
    refused once they have passed (and at once with ttl 0)."""
    ready()
    co, key = ids(db_url)
    now = [0.0]
    look = batch.Lookups(ttl=1.0, clock=lambda: now[0])
    assert isinstance(run(db_url, [req(co, key, 1)], look)[0], batch.Done)
    cli.json("sender", "disable", "ACME")
    now[0] = 0.5
    assert isinstance(run(db_url, [req(co, key, 2)], look)[0], batch.Done)  # within the second: the one read
    assert isinstance(run(db_url, [req(co, key, 3)])[0], InvalidInput)  # a fresh read refuses it
    now[0] = 1.0
    (refused,) = run(db_url, [req(co, key, 4)], look)
    assert isinstance(refused, InvalidInput) and "disabled" in refused.message


def test_a_cached_sender_id_outlives_a_group_rolled_back(ready, cli, db_url):
    """The writer's Lookups keep a sender ID across sessions: a session rolled back as a whole
    (an error after the group, a failed commit) must not leave the cached row expired."""
    ready()
    co, key = ids(db_url)
    look = batch.Lookups(ttl=60.0)
    s = make_session(get_engine(db_url), actor="test")
    try:
        assert isinstance(batch.send_requests(s, [req(co, key, 1)], answer=answer, lookups=look)[0], batch.Done)
        s.rollback()
    finally:
        s.close()
    (done,) = run(db_url, [req(co, key, 2)], look)
    assert isinstance(done, batch.Done) and [p for _q, p in done.sent[0].queued] == [ES.format(2)]


def outbox_statuses(db_url) -> list[tuple[str, str]]:
    with get_engine(db_url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("select dnis, status from callback_outbox order by id"))]


def test_a_group_writes_prepared_callbacks_only_for_a_key_with_a_callback_url(ready, cli, db_url):
    """The writer remembers for ``ttl`` seconds whether the key has a callback URL: a group of a
    key without one writes no PREPARED rows; once set (and the second passed) every message of
    the group gets its PREPARED row with the queue rows."""
    ready()
    co, key = ids(db_url)
    now = [0.0]
    look = batch.Lookups(ttl=1.0, clock=lambda: now[0])
    out = run(db_url, [req(co, key, n) for n in (1, 2)], look)
    assert all(isinstance(o, batch.Done) for o in out) and outbox_statuses(db_url) == []
    cli.json("apikey", "update", str(key), "--callback-url", "http://127.0.0.1:9/cb")
    now[0] = 1.0
    out = run(db_url, [req(co, key, n) for n in (3, 4, 5)], look)
    assert all(isinstance(o, batch.Done) for o in out) and len(campaigns(db_url)) == 2
    assert outbox_statuses(db_url) == [(ES.format(n), "PREPARED") for n in (3, 4, 5)]


def test_concurrent_http_requests_are_committed_in_groups(ready, cli, db_url):
    """Through the ASGI app with a real HTTP client: 60 requests at once, answered 202 each
    with its own message, written in fewer transactions than requests."""
    ready()
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k2")["key"]
    from cpaas_cli.api.app import create_app
    from cpaas_cli.config import load_settings

    app = create_app(load_settings(db=db_url))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            bodies = [{"from": "ACME", "to": ES.format(n), "text": f"Code {n}"} for n in range(60)]
            return await asyncio.gather(*(client.post("/v1/messages", json=b, headers=auth(key)) for b in bodies))

    got = asyncio.run(go())
    assert [r.status_code for r in got] == [202] * 60, got[0].text
    by_to = {r.json()["messages"][0]["to"]: r.json()["messages"][0]["id"] for r in got}
    rows = {str(r["id"]): r for r in queue_rows(db_url)}
    assert len(by_to) == len(rows) == 60 and all(rows[i]["phone"] == to for to, i in by_to.items())
    writer = app.state.api.extra["sends"]
    assert writer.items == 60 and writer.groups < 60, (writer.groups, writer.items)
    app.state.api.close()


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
def test_group_commit_failure_answers_every_request_with_the_error(db_url, identity_env, inline):  # noqa: F811
    engine = get_engine(db_url)

    def handler(session, items):
        session.connection().execute(sa.text("create table if not exists gc_probe (v text)"))
        for i in items:
            session.connection().execute(sa.text("insert into gc_probe values (:v)"), {"v": i})
        if "slow" in items:
            time.sleep(0.3)  # (thread) the next items queue up meanwhile: they form one group
        if "boom" in items:
            raise Conflict("the group failed")
        return [f"ok {i}" for i in items]

    async def go():
        w = GroupCommit(engine, handler, inline=inline)
        try:
            first = asyncio.ensure_future(w.submit("slow"))
            await asyncio.sleep(0.1)  # (inline) the first group is written before the next ones come
            rest = await asyncio.gather(*(w.submit(i) for i in ("c", "boom")), return_exceptions=True)
            return [await first, *rest], (w.groups, w.items)
        finally:
            w.close()

    got, counts = asyncio.run(go())
    assert got[0] == "ok slow" and all(isinstance(e, Conflict) for e in got[1:]), got
    assert counts == (2, 3)
    with engine.connect() as conn:
        kept = [r[0] for r in conn.execute(sa.text("select v from gc_probe"))]
    assert kept == ["slow"]  # nothing of the failed group is kept


def test_a_group_waits_for_another_writer_instead_of_failing(ready, cli, db_url, monkeypatch):
    """SQLite: another connection writes while a group is being priced (after the group's
    savepoint has read). The group holds the write lock from its first statement, so the other
    writer waits for it; a group that had only read could not upgrade ('database is locked')."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer")
    import sqlite3
    import threading

    from cpaas_cli.campaigns import materialise

    ready()
    co, key = ids(db_url)
    path = db_url.split("sqlite:///", 1)[1]
    price = materialise.price_campaign
    other: list[threading.Thread] = []

    def write_elsewhere():
        conn = sqlite3.connect(path, timeout=10)
        conn.execute("INSERT INTO audit_log (at, actor, action, object_type) VALUES ('2026-01-01', 'x', 'x', 'x')")
        conn.commit()
        conn.close()

    def priced(*args, **kw):
        if not other:
            t = threading.Thread(target=write_elsewhere)
            t.start()
            other.append(t)
            t.join(1.0)  # without the lock taken first, the other write commits here, under the group's reads
        return price(*args, **kw)

    monkeypatch.setattr(materialise, "price_campaign", priced)
    out = run(db_url, [req(co, key, 1), req(co, key, 2)])
    other[0].join(10)
    assert all(isinstance(o, batch.Done) for o in out), out
    assert len(queue_rows(db_url)) == 2


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
def test_a_busy_writer_gathers_an_idle_one_writes_at_once(db_url, identity_env, inline):  # noqa: F811
    """``gather``: a lone request on an idle writer is written at once; while the writer is busy
    (its last group written less than ``gather`` ago) it waits that long and writes what came."""
    engine = get_engine(db_url)
    groups: list[list[str]] = []

    def handler(session, items):
        groups.append(list(items))
        return [f"ok {i}" for i in items]

    async def go():
        w = GroupCommit(engine, handler, inline=inline, gather=1.0)
        try:
            t0 = time.monotonic()
            assert await w.submit("a") == "ok a"
            idle = time.monotonic() - t0
            t1 = time.monotonic()
            second = asyncio.ensure_future(w.submit("b"))  # busy now: "a" was written just before
            await asyncio.sleep(0.1)
            third = await w.submit("c")
            return idle, time.monotonic() - t1, [await second, third]
        finally:
            w.close()

    idle, busy, got = asyncio.run(go())
    assert got == ["ok b", "ok c"]
    assert groups == [["a"], ["b", "c"]]  # b waited for c: one group
    assert idle < 0.7 and busy >= 0.9, (idle, busy)  # (a lone write takes milliseconds)
