"""No callback is lost when `cpaas serve` is killed (SIGKILL) while posting:
a row is delivered only once its 2xx is stored, and a dead sender's lease
ends, so the next `serve` posts what the killed one had in flight. Delivery
is at-least-once: a receiver may see an id twice, never miss one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.callbacks import CallbackOutbox
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_callbacks import _key, _rows

OB = CallbackOutbox.__table__
N = 300
BATCH = 40


def _cpaas(db_url: str, config: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cpaas_cli", "--config", config, "--db", db_url, *args]


def test_sigkill_mid_flight_loses_no_callback(cli, db_url, tmp_path):
    config = tmp_path / "cpaas.toml"
    config.write_text(f"[callbacks]\nlease_seconds = 1\nbatch = {BATCH}\nconcurrency = 8\npoll_seconds = 0.05\n")
    env = {**os.environ}
    with Receiver(delay=0.02) as rx:
        key = _key(cli, rx.url)
        _rows(db_url, key["id"], [(f"tx-{n}", "SENT") for n in range(N)])
        proc = subprocess.Popen(
            _cpaas(db_url, str(config), "serve"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            end = time.monotonic() + 60
            while len(rx.got) < N // 3 and time.monotonic() < end and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        seen_at_kill = set(rx.ids())
        with get_engine(db_url).connect() as conn:
            delivered = set(conn.execute(sa.select(OB.c.id).where(OB.c.state == "delivered")).scalars())
        assert N // 3 <= len(seen_at_kill) < N  # killed mid-flight
        assert delivered <= seen_at_kill  # delivered only after the receiver had it
        time.sleep(1.2)  # the dead sender's leases end
        got = subprocess.run(
            _cpaas(db_url, str(config), "serve", "--once", "-o", "json"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert got.returncode == 0, got.stderr[-3000:]
        summary = json.loads(got.stdout)
        ids = rx.ids()
    with get_engine(db_url).connect() as conn:
        rows = dict(conn.execute(sa.select(OB.c.id, OB.c.state)).all())
    assert len(rows) == N and set(rows.values()) == {"delivered"}
    assert set(ids) == set(rows)  # every callback arrived
    assert summary["callbacks"]["delivered"] == N - len(delivered)
    assert len(ids) - N <= BATCH  # repeats: at most what the killed sender had in flight
