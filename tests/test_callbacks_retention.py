"""The outbox's retention: delivered callbacks go after keep_delivered_days,
dead letters after keep_dead_days, pending ones never; `serve`'s hourly job
and the operator's `cpaas callback purge`."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.callbacks import retention
from cpaas_cli.callbacks.sender import SenderOptions
from cpaas_cli.db.engine import get_engine
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.audit import AuditLog
from cpaas_cli.models.callbacks import CallbackOutbox
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_callbacks import _key

OB = CallbackOutbox.__table__
DAY = timedelta(days=1)


def _outbox(db_url, key_id: int) -> dict[str, int]:
    """One row per case, written (created) when its story began; name -> id."""
    now = clock.now()
    cases = {
        # name: (state, created, delivered, given up)
        "delivered-10d": ("delivered", now - 10 * DAY, now - 10 * DAY, None),
        "delivered-late": ("delivered", now - 12 * DAY, now - 6 * DAY, None),  # written 12 days ago, delivered 6
        "delivered-1d": ("delivered", now - DAY, now - DAY, None),
        "dead-40d": ("dead", now - 41 * DAY, None, now - 40 * DAY),
        "dead-10d": ("dead", now - 11 * DAY, None, now - 10 * DAY),
        "pending-retried": ("pending", now - 40 * DAY, None, now + DAY),  # `callback retry` of an old one
        "pending-new": ("pending", now, None, now + DAY),
    }
    ids = {}
    with get_engine(db_url).begin() as conn:
        # in the order they were written, as the outbox's ids are
        for name, (state, created, delivered, give_up) in sorted(cases.items(), key=lambda c: c[1][1]):
            ids[name] = conn.execute(
                sa.insert(OB)
                .values(
                    api_key_id=key_id, transaction_id=name, dnis="447900000001", status="SENT", event_at=created,
                    channel="SMS", state=state, attempts=1, next_at=created, give_up_at=give_up or created + DAY,
                    created_at=created, delivered_at=delivered,
                )
                .returning(OB.c.id)
            ).scalar_one()  # fmt: skip
    return ids


def _left(db_url) -> set[str]:
    with get_engine(db_url).connect() as conn:
        return set(conn.execute(sa.select(OB.c.transaction_id)).scalars())


def test_the_serve_job_keeps_7_days_of_delivered_and_30_of_dead(cli, db_url):
    from cpaas_cli.scheduler.serve import ServeOptions, serve_jobs

    _outbox(db_url, _key(cli)["id"])
    (job,) = [j for j in serve_jobs(ServeOptions()) if j.name == "callback-purge"]
    assert job.every_seconds == 3600
    assert job.func(get_engine(db_url)) == {"delivered": 1, "dead": 1}
    assert _left(db_url) == {"delivered-late", "delivered-1d", "dead-10d", "pending-retried", "pending-new"}
    assert job.func(get_engine(db_url)) == {"delivered": 0, "dead": 0}  # nothing more is due

    shorter = ServeOptions(callback_retention=retention.Retention(keep_delivered_days=2, keep_dead_days=5))
    (job,) = [j for j in serve_jobs(shorter) if j.name == "callback-purge"]
    job.func(get_engine(db_url))
    assert _left(db_url) == {"delivered-1d", "pending-retried", "pending-new"}


@pytest.mark.parametrize("chunk", [1, 2, 3, 5000])
def test_the_purge_walks_in_chunks_to_the_same_result(cli, db_url, chunk):
    _outbox(db_url, _key(cli)["id"])
    now = clock.now()
    got = retention.purge(get_engine(db_url), delivered_before=now - 5 * DAY, dead_before=now - 5 * DAY, chunk=chunk)
    assert got.as_dict() == {"delivered": 2, "dead": 2}
    assert _left(db_url) == {"delivered-1d", "pending-retried", "pending-new"}


def test_callback_purge_command(cli, db_url):
    _outbox(db_url, _key(cli)["id"])
    everything = {"delivered-10d", "delivered-late", "delivered-1d", "dead-40d", "dead-10d"}
    everything |= {"pending-retried", "pending-new"}
    dry = cli.json("callback", "purge", "--older-than", "5", "--dead", "--dry-run")
    assert (dry["delivered"], dry["dead"], dry["dry_run"], dry["older_than_days"]) == (2, 2, True, 5)
    assert _left(db_url) == everything
    refused = cli("callback", "purge", "--older-than", "5", expect=2)  # not a terminal, no --yes
    assert "--yes" in refused.stderr and _left(db_url) == everything
    got = cli.json("callback", "purge", "--older-than", "5", "--yes")  # delivered only
    assert (got["delivered"], got["dead"], got["dry_run"]) == (2, 0, False)
    assert _left(db_url) == everything - {"delivered-10d", "delivered-late"}
    got = cli.json("callback", "purge", "--older-than", "0", "--dead", "--yes")
    assert (got["delivered"], got["dead"]) == (1, 2)
    assert _left(db_url) == {"pending-retried", "pending-new"}  # pending rows are never purged
    assert cli.json("callback", "purge", "--older-than", "0", "--dead")["delivered"] == 0  # nothing to ask about
    cli("callback", "purge", "--older-than", "-1", expect=2)
    with get_engine(db_url).connect() as conn:
        audit = conn.execute(
            sa.select(AuditLog.__table__.c.new).where(AuditLog.__table__.c.object_type == "callback_outbox")
        ).scalars()
        assert [(a["delivered"], a["dead"]) for a in audit] == [(2, 0), (1, 2)]


def test_retention_settings_are_checked(tmp_path):
    assert retention.Retention.from_config({}) == retention.Retention(7, 30)
    got = retention.Retention.from_config({"keep_delivered_days": 2, "keep_dead_days": 60, "batch": 10})
    assert got == retention.Retention(2, 60)
    assert SenderOptions.from_config({"keep_delivered_days": 2, "batch": 10}).batch == 10
    for bad in (0, -1, 1.5, "7", True):
        with pytest.raises(InvalidInput, match="keep_delivered_days"):
            retention.Retention.from_config({"keep_delivered_days": bad})
    with pytest.raises(InvalidInput, match="keep_dead_days"):
        SenderOptions.from_config({"keep_dead_dayz": 1})


def test_serve_refuses_a_bad_retention_setting(cli, tmp_path):
    config = tmp_path / "cpaas.toml"
    config.write_text("[callbacks]\nkeep_delivered_days = 0\n")
    got = cli("--config", str(config), "serve", "--once", expect=4)
    assert "keep_delivered_days" in got.stderr
