"""Receipts reach the right message whatever way the SMSC writes its ids, with
the connection's default ``--message-id-format auto``: `serve --once` against
the project's SMSC in its id modes (8-hex upper-case, decimal, hex in
submit_sm_resp with decimal ids in the receipt text, receipts as data_sm).

Each receipt the SMSC sends names the handset it was for (``SimSmsc.receipted``):
every EDR must end with the status the SMSC gave its own handset."""

from __future__ import annotations

import pytest

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port, parse_stat_mix
from tests.test_serve import campaign, edrs, serve_once, setup

MODES = {
    # 00000001 ... 0000000A ... 00000010: the old auto read 0000000A as hex and 00000010 as decimal (both 10)
    "hex8-upper-text": {"id_width": 8, "id_upper": True, "receipt_tlv": False},
    "hex8-upper-tlv": {"id_width": 8, "id_upper": True},
    "dec": {"id_format": "dec", "id_width": 8, "receipt_tlv": False},
    "hex-resp-dec-text": {"id_width": 8, "receipt_tlv": False, "receipt_id_format": "dec"},
    "data_sm": {"id_width": 8, "receipt_pdu": "data_sm"},
}
LEARNED = {"hex8-upper-text": "same", "dec": "same", "hex-resp-dec-text": "converted"}


def sim(**kw) -> SimSmsc:
    opts = SmscOptions(port=free_port(), lifetime=120, **kw)
    opts.stat_mix = parse_stat_mix("DELIVRD=1,UNDELIV=1")  # every other receipt says undelivered
    return SimSmsc(opts)


def expected_status(smsc: SimSmsc) -> dict[str, str]:
    return {dest: ("delivered" if stat == "DELIVRD" else "undelivered") for _mid, dest, stat in smsc.receipted}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_receipt_reaches_its_own_handset(cli, db_url, tmp_path, mode):
    phones = [f"3460{i:07d}" for i in range(60)]  # ids 1..0x3C: 0A-0F and 10-3C meet
    with sim(**MODES[mode]) as smsc:
        setup(cli, smsc.port, id_format=None)
        campaign(cli, tmp_path, phones, "Hello", "c")
        out = serve_once(cli)
    assert out["submitted"] == 60 and out["receipts"] == 60, out
    assert out["receipts_unmatched"] == 0 and out["receipts_ambiguous"] == 0, out
    want = expected_status(smsc)
    assert len(want) == 60
    got = {r["destination"]: r["status"] for r in edrs(db_url)}
    wrong = {d: (got[d], want[d]) for d in want if got[d] != want[d]}
    assert wrong == {}
    shown = cli.json("connection", "show", "sim")
    assert shown["message_id_format"] == "auto"
    if mode in LEARNED:
        assert shown["message_id_learned"] == LEARNED[mode]
    if mode == "data_sm":
        c = smsc.counters
        assert (c.data_sm, c.data_sm_resp, c.wrong_resp) == (60, 60, 0)


def test_a_learned_relation_is_kept_and_used_by_the_next_run(cli, db_url, tmp_path):
    """Learned once, stored on the connection, then fixed: the next run reads
    decimal receipt ids as hex from its first receipt on."""
    with sim(id_width=8, receipt_tlv=False, receipt_id_format="dec") as smsc:
        setup(cli, smsc.port, id_format=None)
        campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(40)], "Hello", "a")
        serve_once(cli)
        assert cli.json("connection", "show", "sim")["message_id_learned"] == "converted"
        campaign(cli, tmp_path, [f"3461{i:07d}" for i in range(20)], "Again", "b")
        out = serve_once(cli)
    assert out["receipts"] == 20 and out["receipts_unmatched"] == 0, out
    want = expected_status(smsc)
    got = {r["destination"]: r["status"] for r in edrs(db_url)}
    assert all(got[d] == want[d] for d in want)
    # Declaring a format again starts over: nothing learned is kept.
    upd = cli.json("connection", "update", "sim", "--message-id-format", "auto")
    assert upd["message_id_learned"] is None


def test_dev_smsc_refuses_an_unknown_receipt_mode(cli):
    r = cli("dev", "smsc", "--receipt-pdu", "submit_sm", expect=4)
    assert r.stderr.strip() == "error: --receipt-pdu: 'submit_sm' is not deliver_sm or data_sm"
    r = cli("dev", "smsc", "--receipt-id-format", "oct", expect=4)
    assert "--receipt-id-format" in r.stderr
