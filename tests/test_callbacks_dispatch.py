"""Callbacks of API messages through real dispatch (`serve --once` against the
smpp34 SMSC): each status change writes its outbox row in the same
transaction, so every API message's receiver sees PREPARED, BILLED, SENT and
its final status, in that order, signed; campaign messages make none."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.callbacks import outbox, signing
from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.models.callbacks import CallbackOutbox
from cpaas_cli.models.campaigns import OutboundMessage
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_serve import campaign, edrs, serve_once, setup, smsc  # noqa: F401

Q = OutboundMessage.__table__
OB = CallbackOutbox.__table__


def test_every_status_change_of_an_api_message_is_called_back_in_order(cli, db_url, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(30)], "Hello from ACME", "api")
    make_user(cli, "apiuser")
    key = cli.json("apikey", "create", "--user", "apiuser", "--name", "app")
    with Receiver() as rx:
        secret = cli.json("apikey", "update", str(key["id"]), "--callback-url", rx.url)["callback_secret"]
        # the first 20 messages were accepted through the API (as its send does: key on the row, PREPARED)
        s = make_session(get_engine(db_url), actor="pytest")
        try:
            ids = s.execute(sa.select(Q.c.id).order_by(Q.c.id).limit(20)).scalars().all()
            s.execute(sa.update(Q).where(Q.c.id.in_(ids)).values(api_key_id=key["id"]))
            assert outbox.record_queued(s, ids, now=clock.now()) == 20
            api_ids = {str(i) for i in ids}
            s.commit()
        finally:
            s.close()
        out = serve_once(cli)
        assert out["submitted"] == 30 and out["receipts"] == 30, out
        assert out["callbacks"]["delivered"] == 80 and out["callbacks"]["dead"] == 0
        got = list(rx.got)
    final = {r["external_id"][3:]: r["status"].upper() for r in edrs(db_url) if r["api_key_id"] == key["id"]}
    assert set(final) == api_ids  # the transaction id is the queue id the send API answers
    seen: dict[str, list[str]] = defaultdict(list)
    for headers, body in got:
        assert signing.verify(secret, headers["x-cpaas-signature"], body, now=time.time())
        data = json.loads(body)
        assert data["channel"] == "SMS" and data["dnis"].startswith("3460")
        seen[data["transactionID"]].append(data["status"])
    assert set(seen) == set(final)
    for tx, statuses in seen.items():
        assert statuses == ["PREPARED", "BILLED", "SENT", final[tx]], tx
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OB)).scalar_one() == 80
