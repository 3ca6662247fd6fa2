"""Callbacks (SPEC CMP-25): the key's URL and signing secret, the outbox, the
sender (signed POSTs to a real receiver on 127.0.0.1, order per message,
back-off, dead letters, retry)."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.callbacks import signing
from cpaas_cli.callbacks.sender import Sender, SenderOptions
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.callbacks import ApiKeyCallback, CallbackOutbox
from cpaas_cli.secretbox import load_keyring
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env, make_user  # noqa: F401

OB = CallbackOutbox.__table__


# ---------------------------------------------------------------- pure rules


def test_body_has_the_seeds_fields_and_time_format():
    at = datetime(2026, 12, 7, 10, 15, 30, 250_999, tzinfo=UTC)
    body = signing.body(transaction_id="t-1", dnis="4479", status="SENT", event_at=at, channel="sms", message=None)
    assert json.loads(body) == {
        "transactionID": "t-1",
        "dnis": "4479",
        "status": "SENT",
        "eventTime": "2026-12-07T10:15:30.250+00:00",
        "channel": "SMS",
    }
    mo = signing.body(transaction_id="t", dnis="1", status="DELIVERED", event_at=at, channel="sms", message="hi ü")
    assert json.loads(mo)["message"] == "hi ü"


def test_signature_verifies_only_the_same_body_secret_and_recent_time():
    sig = signing.signature("s3cret", 1_000_000, b'{"a":1}')
    assert signing.verify("s3cret", sig, b'{"a":1}', now=1_000_100)
    assert not signing.verify("s3cret", sig, b'{"a":2}', now=1_000_100)
    assert not signing.verify("other", sig, b'{"a":1}', now=1_000_100)
    assert not signing.verify("s3cret", sig, b'{"a":1}', now=1_000_000 + signing.TOLERANCE_S + 1)
    assert not signing.verify("s3cret", "garbage", b'{"a":1}', now=1_000_000)


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(1)
    for n in range(1, 30):
        d = signing.backoff(n, rng)
        full = min(signing.BASE_S * 2 ** (n - 1), signing.CAP_S)
        assert full * 0.5 <= d < full
    assert signing.backoff(40, rng) < signing.CAP_S


# ---------------------------------------------------------------- set-up


def _key(cli, url: str | None = None) -> dict:
    make_user(cli, "apiuser")
    key = cli.json("apikey", "create", "--user", "apiuser", "--name", "app")
    if url:
        got = cli.json("apikey", "update", str(key["id"]), "--callback-url", url)
        key["secret"] = got["callback_secret"]
    return key


def _rows(db_url, key_id: int, events: list[tuple[str, str]], *, give_up_in: timedelta = timedelta(hours=24)) -> None:
    now = clock.now()
    with get_engine(db_url).begin() as conn:
        conn.execute(
            sa.insert(OB),
            [
                {
                    "api_key_id": key_id,
                    "transaction_id": tx,
                    "dnis": "447900000001",
                    "status": status,
                    "event_at": now,
                    "channel": "SMS",
                    "state": "pending",
                    "attempts": 0,
                    "next_at": now,
                    "give_up_at": now + give_up_in,
                    "created_at": now,
                }
                for tx, status in events
            ],
        )


def _sender(db_url, **kw) -> Sender:
    from cpaas_cli.config import load_settings

    keys = load_keyring(load_settings(db=db_url))
    return Sender(get_engine(db_url), keys, options=SenderOptions(**kw))


def _states(db_url) -> list[tuple]:
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(OB.c.id, OB.c.state, OB.c.attempts).order_by(OB.c.id)).all()


# ---------------------------------------------------------------- the key's callback


def test_callback_url_and_secret_shown_once_stored_encrypted(cli, db_url):
    key = _key(cli)
    got = cli.json("apikey", "update", str(key["id"]), "--callback-url", "https://hooks.example.com/cb")
    assert got["callback_url"] == "https://hooks.example.com/cb"
    secret = got["callback_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    again = cli.json("apikey", "update", str(key["id"]), "--callback-url", "https://hooks.example.com/v2")
    assert "callback_secret" not in again and again["callback_url"] == "https://hooks.example.com/v2"
    with get_engine(db_url).connect() as conn:
        stored = conn.execute(sa.select(ApiKeyCallback.__table__.c.secret)).scalar_one()
    assert secret not in stored and stored.startswith("gAAAA")  # a Fernet token
    rotated = cli.json("apikey", "update", str(key["id"]), "--rotate-secret")
    assert rotated["callback_secret"] != secret
    gone = cli.json("apikey", "update", str(key["id"]), "--no-callback")
    assert gone["callback_url"] is None and "callback_secret" not in gone


def test_callback_url_bad_input_and_revoked_key(cli):
    key = _key(cli)
    for bad in ("ftp://x/cb", "not a url", "https:///nohost", "https://h/" + "x" * 2000):
        run = cli("apikey", "update", str(key["id"]), "--callback-url", bad, expect=4)
        assert "--callback-url" in run.stderr
    cli("apikey", "update", str(key["id"]), "--rotate-secret", expect=4)  # no URL yet
    cli("apikey", "update", str(key["id"]), expect=4)
    cli("apikey", "revoke", str(key["id"]))
    cli("apikey", "update", str(key["id"]), "--callback-url", "https://h/cb", expect=5)


# ---------------------------------------------------------------- the sender


def test_sender_posts_signed_bodies_and_keeps_order_per_message(cli, db_url):
    with Receiver() as rx:
        key = _key(cli, rx.url)
        _rows(db_url, key["id"], [("a", "PREPARED"), ("b", "PREPARED"), ("a", "BILLED"), ("a", "SENT"), ("b", "SENT")])
        sender = _sender(db_url)
        try:
            tried = [sender.step() for _ in range(4)]
        finally:
            sender.close()
        assert tried == [2, 2, 1, 0]  # one event per message in flight at a time
        per_tx: dict[str, list[str]] = {}
        now = time.time()
        for headers, body in rx.got:
            assert headers["content-type"] == "application/json"
            assert signing.verify(key["secret"], headers["x-cpaas-signature"], body, now=now)
            data = json.loads(body)
            per_tx.setdefault(data["transactionID"], []).append(data["status"])
        assert per_tx == {"a": ["PREPARED", "BILLED", "SENT"], "b": ["PREPARED", "SENT"]}
    assert [s for _i, s, _n in _states(db_url)] == ["delivered"] * 5
    listed = cli.json("callback", "list", "--state", "delivered")
    assert len(listed) == 5 and all(r["attempts"] == 1 for r in listed)


def test_failures_back_off_then_dead_letter_then_retry(cli, db_url):
    with Receiver(status=500) as rx:
        key = _key(cli, rx.url)
        _rows(db_url, key["id"], [("a", "SENT")])
        _rows(db_url, key["id"], [("b", "SENT")], give_up_in=timedelta(seconds=-1))
        sender = _sender(db_url)
        try:
            assert sender.step() == 2
            assert sender.step() == 0  # the live one waits for its back-off
        finally:
            sender.close()
        assert len(rx.got) == 2
    (a_id, a_state, a_n), (b_id, b_state, b_n) = _states(db_url)
    assert (a_state, a_n, b_state, b_n) == ("pending", 1, "dead", 1)
    with get_engine(db_url).connect() as conn:
        nxt, err = conn.execute(sa.select(OB.c.next_at, OB.c.last_error).where(OB.c.id == a_id)).one()
    assert err == "HTTP 500"
    wait = (nxt - clock.now()).total_seconds()
    assert signing.BASE_S * 0.5 - 1 <= wait <= signing.BASE_S
    failed = cli.json("callback", "list", "--failed")
    assert [r["id"] for r in failed] == [b_id] and failed[0]["last_error"] == "HTTP 500"
    cli("callback", "retry", str(a_id), expect=5)  # not dead
    cli("callback", "retry", "999999", expect=3)
    again = cli.json("callback", "retry", str(b_id))
    assert again["state"] == "pending" and again["attempts"] == 0
    with Receiver() as rx:
        cli("apikey", "update", str(key["id"]), "--callback-url", rx.url)
        sender = _sender(db_url)
        try:
            assert sender.step() == 1
        finally:
            sender.close()
        assert rx.ids() == [b_id]


def test_rows_of_a_key_without_callback_fail_and_are_not_lost(cli, db_url):
    key = _key(cli, "http://127.0.0.1:9/cb")
    _rows(db_url, key["id"], [("a", "SENT")])
    cli("apikey", "update", str(key["id"]), "--no-callback")
    sender = _sender(db_url)
    try:
        assert sender.step() == 1
    finally:
        sender.close()
    [(_i, state, n)] = _states(db_url)
    assert (state, n) == ("pending", 1)
    assert cli.json("callback", "list")[0]["last_error"] == "the key has no callback URL"


# ---------------------------------------------------------------- the poster (httpclient.AsyncPoster)


def test_the_sender_reuses_keep_alive_connections(cli, db_url):
    with Receiver() as rx:
        key = _key(cli, rx.url)
        _rows(db_url, key["id"], [(f"tx-{n}", "SENT") for n in range(60)])
        sender = _sender(db_url, batch=20, concurrency=4)
        sender.drain(30)
        assert sender.stats.delivered == 60
        assert len(rx.got) == 60 and len(set(rx.ports)) <= 4  # 4 connections in flight at most, kept open


def test_the_sender_follows_no_redirect_and_reads_no_huge_answer(cli, db_url):
    with Receiver() as target, Receiver(status=302, headers={"Location": target.url}) as moved:
        key = _key(cli, moved.url)
        _rows(db_url, key["id"], [("tx-r", "SENT")])
        sender = _sender(db_url)
        assert sender.step() == 1
        assert sender.stats.delivered == 0 and sender.stats.retried == 1 and target.got == []
        [(r_id, r_state, r_n)] = _states(db_url)
        assert (r_state, r_n) == ("pending", 1)
        sender.close()
    # The redirected row's back-off is 1-2 s; a slow machine reaches it before the next step.
    # Park it an hour ahead so the next step sees the new row alone.
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.update(OB).where(OB.c.id == r_id).values(next_at=clock.now() + timedelta(hours=1)))
    time.sleep(2.1)
    with Receiver(body=b"x" * (4 << 20)) as big:  # a 4 MiB answer: the status is enough
        cli.json("apikey", "update", str(key["id"]), "--callback-url", big.url)
        _rows(db_url, key["id"], [("tx-b", "SENT")])
        sender = _sender(db_url)
        assert sender.step() == 1 and sender.stats.delivered == 1
        sender.close()
