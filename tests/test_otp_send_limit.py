"""The per-number send limit under concurrency: sends to one number that arrive at
once are counted one after the other (a lock per integration and number until the
send commits), so exactly ``max_sends`` pass and the rest are 429 ``otp-send-limit``
with nothing written; another number is not held up by the limit."""

from __future__ import annotations

import threading
from collections import Counter

from cpaas_cli.models.campaigns import OutboundMessage
from cpaas_cli.models.otp import OtpRequest
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_otp_api import ES, basic, integration, short_sync, table  # noqa: F401
from tests.test_serve import setup

THREADS = 9


def _at_once(api, key: str, numbers: list[str]) -> list:  # noqa: F811
    """POST one send per number from its own thread, all released together."""
    start = threading.Barrier(len(numbers))
    out: list = [None] * len(numbers)

    def one(i: int) -> None:
        start.wait()
        try:
            out[i] = api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": numbers[i]})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(numbers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_sends_to_one_number_pass_exactly_max_sends(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", "--max-sends", "4")
    got = _at_once(api, key, [ES] * THREADS)
    assert Counter(getattr(r, "status_code", r) for r in got) == {200: 4, 429: THREADS - 4}, got
    for r in got:
        if r.status_code == 429:
            assert 1 <= assert_problem(r, 429, "otp-send-limit")["retryAfter"] <= 600
    rows = table(db_url, OtpRequest)
    # the refused sends wrote nothing (the sends of one group share one campaign: count messages)
    assert len(rows) == 4 and len(table(db_url, OutboundMessage)) == 4
    assert sorted(r["state"] for r in rows) == ["cancelled"] * 3 + ["pending"]
    assert {r["request_id"] for r in rows} == {r.json()["requestId"] for r in got if r.status_code == 200}


def test_concurrent_sends_to_different_numbers_each_pass(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", "--max-sends", "1")
    numbers = [f"3462000{i:04d}" for i in range(4)] * 2  # two sends each: one passes per number
    got = _at_once(api, key, numbers)
    assert Counter(getattr(r, "status_code", r) for r in got) == {200: 4, 429: 4}, got
    assert sorted(r["number"] for r in table(db_url, OtpRequest)) == sorted(set(numbers))
