"""Token buckets: the pure rule, the in-process limiter, the database-shared one."""

from __future__ import annotations

from datetime import timedelta

from cpaas_cli import clock
from cpaas_cli.ratelimit import Limit, LocalLimiter, decide, retry_after, take_shared


def test_decide_refills_up_to_the_burst_and_says_how_long_to_wait():
    lim = Limit.per_minute(30)
    assert decide(30, 0, lim) == (True, 29, 0.0)
    ok, left, wait = decide(0, 0, lim)
    assert (ok, left) == (False, 0) and wait == 2.0  # one token every 2 s
    assert decide(0, 10_000, lim)[1] == 29  # capped at the burst, then one taken
    assert retry_after(0.01) == 1 and retry_after(2.2) == 3


def test_local_limiter_counts_per_name():
    t = [0.0]
    lim = LocalLimiter(Limit.per_second(2, burst=2), clock=lambda: t[0])
    assert [lim.take("a")[0] for _ in range(3)] == [True, True, False]
    assert lim.take("b")[0] is True
    t[0] += 0.5
    assert lim.take("a")[0] is True and lim.take("a")[0] is False


def test_shared_bucket_is_one_for_every_session(session, db_url):
    from cpaas_cli.db.engine import get_engine, make_session

    lim = Limit.per_minute(30)
    now = clock.now()
    got = []
    for _ in range(31):
        s = make_session(get_engine(db_url), actor="pytest")  # a session per request, as processes would
        try:
            got.append(take_shared(s, "bulk:user:1", lim, now=now))
            s.commit()
        finally:
            s.close()
    assert [ok for ok, _ in got] == [True] * 30 + [False]
    assert got[-1][1] == 2.0
    s = make_session(get_engine(db_url), actor="pytest")
    try:
        assert take_shared(s, "bulk:user:1", lim, now=now + timedelta(seconds=2))[0] is True
        assert take_shared(s, "bulk:user:2", lim, now=now)[0] is True
        s.commit()
    finally:
        s.close()
