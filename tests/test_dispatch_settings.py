"""Per-connection SMPP settings (issue 22 items 8-10) against the project's SMSC:
TON/NPI by sender kind and overrides, the GSM-7 data coding, UDH 8/16-bit and
SAR, enquire_link timers, the long pause after refused credentials, flash as
message class 0, channels without a gateway refused, and the RPS limit shared
per connection × sender ID by every worker of a process.

Nothing asserts on speed: the one timed check is a lower bound on how long N
messages take at R per second (a throttle that works cannot be faster).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch import connections
from cpaas_cli.dispatch.gateway import CredentialsRefused, LinkChanged, SubmitAccepted, WireMessage
from cpaas_cli.dispatch.outbound import OutboundBuilder
from cpaas_cli.dispatch.smpp import SmppGateway, SmppSettings
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from cpaas_cli.dispatch.throttle import Backoff, SenderLimits
from cpaas_cli.messaging import gsm
from cpaas_cli.models.campaigns import Campaign
from tests.test_dispatch_pure import FakeClock
from tests.test_serve import campaign, edrs, serve_once, setup

SAR_REF, SAR_TOTAL, SAR_SEQ = 0x020C, 0x020E, 0x020F


@pytest.fixture
def smsc():
    sim = SimSmsc(SmscOptions(port=free_port(), lifetime=120))
    sim.start()
    yield sim
    sim.stop()


def builder(**settings) -> OutboundBuilder:
    return OutboundBuilder(SimpleNamespace(**settings))


def by_dest(sim: SimSmsc) -> dict:
    out: dict = {}
    for rec in sim.submit_log:
        out.setdefault(rec.destination, []).append(rec)
    return out


def drive(gw, until, deadline: float = 20.0) -> list:
    events: list = []
    end = time.monotonic() + deadline
    while not until(events):
        assert time.monotonic() < end, events
        events.extend(gw.poll(0.05))
    return events


# ---------------------------------------------------------------- connection options


def test_connection_settings_are_stored_shown_and_reach_the_gateway(cli, db_url):
    row = cli.json(
        "connection", "add-smpp", "v", "--host", "h", "--port", "2775", "--system-id", "x", "--password-env", "V_PW",
        "--source-ton", "1", "--source-npi", "1", "--dest-ton", "0", "--dest-npi", "0", "--gsm7-coding", "latin1",
        "--concat", "sar", "--enquire-link", "15", "--response-timeout", "4", "--bind-retry-after", "600",
    )  # fmt: skip
    got = {k: row[k] for k in ("source_ton", "source_npi", "dest_ton", "dest_npi", "gsm7_coding", "concat")}
    assert got == {
        "source_ton": 1,
        "source_npi": 1,
        "dest_ton": 0,
        "dest_npi": 0,
        "gsm7_coding": "latin1",
        "concat": "sar",
    }
    assert (row["enquire_link"], row["response_timeout"], row["bind_retry_after"]) == (15, 4, 600)
    upd = cli.json("connection", "update", "v", "--source-ton", "auto", "--source-npi", "auto", "--concat", "udh16")
    assert (upd["source_ton"], upd["source_npi"], upd["concat"], upd["gsm7_coding"]) == (
        "auto",
        "auto",
        "udh16",
        "latin1",
    )
    plain = cli.json(
        "connection", "add-smpp", "p", "--host", "h", "--port", "2775", "--system-id", "x", "--password-env", "P_PW"
    )
    assert (plain["source_ton"], plain["dest_ton"], plain["dest_npi"], plain["gsm7_coding"], plain["concat"]) == (
        "auto",
        1,
        1,
        "gsm7",
        "udh8",
    )
    assert (plain["enquire_link"], plain["response_timeout"], plain["bind_retry_after"]) == (30, 10, 300)
    with get_engine(db_url).connect() as conn:
        from sqlmodel import Session

        s = Session(bind=conn)
        settings = connections.smpp_settings(connections.connection(s, "v"), {"V_PW": "pw"})
    assert (settings.enquire_every, settings.response_timeout, settings.auth_retry_after) == (15, 4, 600)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--source-ton", "9"], "--source-ton"),
        (["--source-npi", "2"], "--source-npi"),
        (["--dest-ton", "7"], "--dest-ton"),
        (["--source-ton", "abc"], "--source-ton"),
        (["--enquire-link", "0"], "--enquire-link"),
        (["--response-timeout", "-1"], "--response-timeout"),
        (["--bind-retry-after", "0"], "--bind-retry-after"),
    ],
)
def test_bad_connection_settings_are_refused(cli, args, named):
    run = cli(
        "connection", "add-smpp", "v", "--host", "h", "--port", "2775", "--system-id", "x", "--password-env", "V",
        *args, expect=4,
    )  # fmt: skip
    assert named in run.stderr and run.stderr.startswith("error:")
    assert cli.json("connection", "list") == []


def test_unknown_coding_or_concat_is_a_usage_error(cli):
    base = ["connection", "add-smpp", "v", "--host", "h", "--port", "2775", "--system-id", "x", "--password-env", "V"]
    cli(*base, "--gsm7-coding", "utf8", expect=2)
    cli(*base, "--concat", "udh32", expect=2)


# ---------------------------------------------------------------- wire form (pure)


def test_gsm7_codings():
    text = "Hola señor, 10 @ cafe"  # GSM-7, also Latin-1, not ASCII (ñ)
    (p,) = builder().parts(text, 1)
    assert (p.data_coding, p.payload) == (0x00, gsm.encode_septets(text))
    (p,) = builder(gsm7_coding="latin1").parts(text, 1)
    assert (p.data_coding, p.payload) == (0x03, text.encode("latin-1"))
    (p,) = builder(gsm7_coding="gsm7-packed").parts(text, 1)
    assert (p.data_coding, p.payload) == (0x00, gsm.pack(gsm.encode_septets(text)))
    # IA5 cannot hold ñ: the text goes as UCS-2 rather than garbled.
    (p,) = builder(gsm7_coding="ia5").parts(text, 1)
    assert (p.data_coding, p.payload) == (0x08, text.encode("utf-16-be"))
    (p,) = builder(gsm7_coding="ia5").parts("Hello {x}", 1)
    assert (p.data_coding, p.payload) == (0x01, b"Hello {x}")
    (p,) = builder(gsm7_coding="latin1").parts("Price 5€", 1)  # € is GSM-7 (extension), not Latin-1
    assert p.data_coding == 0x08
    # Long Latin-1 texts are cut by the GSM-7 count (153 a part), each part in Latin-1 with its UDH.
    parts = builder(gsm7_coding="latin1").parts("é" * 200, 7)
    assert [len(p.payload) for p in parts] == [153, 47] and all(p.data_coding == 0x03 for p in parts)
    assert parts[0].udh == bytes((5, 0, 3, 7, 2, 1)) and parts[0].payload == ("é" * 153).encode("latin-1")


def test_flash_is_message_class_0():
    (p,) = builder().parts("Your code is 1234", 1, flash=True)
    assert p.data_coding == 0x10 and p.payload == gsm.encode_septets("Your code is 1234")
    (p,) = builder().parts("Код 1234", 1, flash=True)
    assert p.data_coding == 0x18 and p.payload == "Код 1234".encode("utf-16-be")
    # Class 0 exists for the default alphabet only: a Latin-1 connection sends flash as GSM-7.
    (p,) = builder(gsm7_coding="latin1").parts("café", 1, flash=True)
    assert p.data_coding == 0x10


def test_concatenation_choices():
    text = "x" * 306  # 2 parts of 153 (udh8/sar), 3 of 152 (udh16)
    p8 = builder().parts(text, 0x1234)
    assert len(p8) == 2 and p8[0].udh == bytes((5, 0, 3, 0x34, 2, 1)) and p8[0].sar is None
    p16 = builder(concat="udh16").parts(text, 0x1234)
    assert len(p16) == 3 and p16[2].udh == bytes((6, 8, 4, 0x12, 0x34, 3, 3))
    sar = builder(concat="sar").parts(text, 0x1234)
    assert [(p.udh, p.sar) for p in sar] == [(b"", (0x1234, 2, 1)), (b"", (0x1234, 2, 2))]
    (single,) = builder(concat="sar").parts("short", 1)
    assert single.sar is None and single.udh == b""


# ---------------------------------------------------------------- on the wire (the SMSC)


def gw_settings(port: int, **kw) -> SmppSettings:
    kw.setdefault("reconnect", Backoff(0.05, 2.0, 0.5))
    kw.setdefault("password", "pw")
    return SmppSettings(name="sim", host="127.0.0.1", port=port, system_id="cpaas", **kw)


def test_sar_and_udh16_parts_reach_the_smsc(smsc):
    gw = SmppGateway(gw_settings(smsc.port))
    gw.open()
    sar = builder(concat="sar").parts("a" * 200, 0x0102)
    u16 = builder(concat="udh16").parts("b" * 200, 0x0304)
    gw.submit(WireMessage("CPAAS", "33600000001", sar, dest_ton=1))
    gw.submit(WireMessage("CPAAS", "33600000002", u16))
    drive(gw, lambda ev: sum(isinstance(e, SubmitAccepted) for e in ev) == 4)
    gw.close()
    got = by_dest(smsc)
    a, b = got["33600000001"], got["33600000002"]
    assert [r.esm_class for r in a] == [0, 0] and all(r.short_message[:1] == b"a" for r in a)
    assert sorted((r.tlvs[SAR_REF], r.tlvs[SAR_TOTAL], r.tlvs[SAR_SEQ]) for r in a) == [
        (b"\x01\x02", b"\x02", b"\x01"),
        (b"\x01\x02", b"\x02", b"\x02"),
    ]
    assert [r.esm_class for r in b] == [0x40, 0x40]
    assert sorted(r.short_message[:7] for r in b) == [bytes((6, 8, 4, 3, 4, 2, 1)), bytes((6, 8, 4, 3, 4, 2, 2))]
    assert SAR_REF not in b[0].tlvs


def test_enquire_link_interval_comes_from_the_connection(cli, db_url, smsc):
    cli.json(
        "connection", "add-smpp", "idle", "--host", "127.0.0.1", "--port", str(smsc.port), "--system-id", "x",
        "--password-env", "I_PW", "--enquire-link", "0.2", "--response-timeout", "2",
    )  # fmt: skip
    from sqlmodel import Session

    with get_engine(db_url).connect() as conn:
        settings = connections.smpp_settings(connections.connection(Session(bind=conn), "idle"), {"I_PW": "pw"})
    gw = SmppGateway(settings)
    gw.open()
    end = time.monotonic() + 20
    while gw.stats.enquire_links < 2:  # the default (30 s of silence) would send none here
        assert time.monotonic() < end
        assert not [e for e in gw.poll(0.1) if isinstance(e, LinkChanged)]
    assert gw.connected
    gw.close()


def test_refused_credentials_wait_the_long_interval_and_alert(caplog):
    sim = SimSmsc(SmscOptions(port=free_port(), lifetime=60, password="right"))
    sim.start()
    try:
        gw = SmppGateway(gw_settings(sim.port, password="wrong", auth_retry_after=300.0))
        with caplog.at_level(logging.ERROR, logger="cpaas.smpp"), pytest.raises(CredentialsRefused) as err:
            gw.open()
        assert "Invalid Password" in err.value.message and "next bind in 300s" in err.value.message
        assert caplog.records == []  # raised, not logged: the caller reports it (once)
        # The network back-off here (0.05 s doubling to 0.5 s) would bind again 3-4 times.
        end = time.monotonic() + 1.0
        events = []
        while time.monotonic() < end:
            events.extend(gw.poll(0.1))
        assert sim.counters.binds_refused == 1 and events == [] and not gw.connected
        assert gw.stats.extra["auth_failures"] == 1
        gw.close()
        # The right password binds through the same gate and sends.
        ok = SmppGateway(gw_settings(sim.port, password="right"))
        ok.open()
        ok.submit(WireMessage.single("CPAAS", "33600000003", b"hi"))
        drive(ok, lambda ev: any(isinstance(e, SubmitAccepted) for e in ev))
        ok.close()
        assert sim.counters.binds_refused == 1 and len(sim.submit_log) == 1
    finally:
        sim.stop()


# ---------------------------------------------------------------- serve end to end


def senders(cli) -> None:
    for sender, kind in (("55555", "short_code"), ("+34600000999", "long_code")):
        cli.json(
            "sender", "add", sender, "--company", "Client A", "--agreement", "AG-1", "--type", kind, "--active",
            "--connection", "sim",
        )  # fmt: skip


def send_from(cli, tmp_path, sender: str, phone: str, text: str, *extra: str) -> int:
    f = tmp_path / f"{sender}-{phone}.csv"
    f.write_text(f"phone\n{phone}\n")
    c = cli.json(
        "campaign", "create", "--company", "Client A", "--sender", sender, "--file", str(f), "--text", text, *extra
    )
    cli.json("campaign", "send", str(c["id"]))
    return c["id"]


def test_serve_sends_ton_npi_by_sender_kind_then_the_connection_override(cli, db_url, smsc, tmp_path):
    setup(cli, smsc.port)
    senders(cli)
    send_from(cli, tmp_path, "ACME", "34600000001", "alpha")
    send_from(cli, tmp_path, "55555", "34600000002", "short")
    send_from(cli, tmp_path, "34600000999", "34600000003", "long")
    out = serve_once(cli)
    assert out["submitted"] == 3 and out["errors"] == [], out
    got = {d: (r[0].source_ton, r[0].source_npi, r[0].dest_ton, r[0].dest_npi) for d, r in by_dest(smsc).items()}
    assert got == {"34600000001": (5, 0, 1, 1), "34600000002": (3, 0, 1, 1), "34600000003": (1, 1, 1, 1)}

    cli.json("connection", "update", "sim", "--source-ton", "0", "--source-npi", "0", "--dest-ton", "0")
    send_from(cli, tmp_path, "55555", "34600000004", "short again")
    assert serve_once(cli)["submitted"] == 1
    rec = by_dest(smsc)["34600000004"][0]
    assert (rec.source_ton, rec.source_npi, rec.dest_ton, rec.dest_npi) == (0, 0, 0, 1)


def test_serve_sends_flash_as_class_0_and_the_connection_coding(cli, db_url, smsc, tmp_path):
    setup(cli, smsc.port)
    send_from(cli, tmp_path, "ACME", "34600000001", "Flash now", "--flash")
    send_from(cli, tmp_path, "ACME", "34600000002", "Срочно", "--flash")
    send_from(cli, tmp_path, "ACME", "34600000003", "Normal")
    cli.json("connection", "update", "sim", "--gsm7-coding", "latin1")
    out = serve_once(cli)
    assert out["submitted"] == 3 and out["errors"] == [], out
    got = {d: (r[0].data_coding, r[0].short_message) for d, r in by_dest(smsc).items()}
    assert got["34600000001"] == (0x10, gsm.encode_septets("Flash now"))
    assert got["34600000002"] == (0x18, "Срочно".encode("utf-16-be"))
    assert got["34600000003"] == (0x03, b"Normal")


def test_channels_without_a_gateway_are_refused(cli, db_url, smsc, tmp_path):
    setup(cli, smsc.port)
    run = cli("sender", "add", "Acme V", "--company", "Client A", "--agreement", "AG-1", "--channel", "viber", expect=5)
    assert "no gateway serves channel viber" in run.stderr
    cli("sender", "add", "Acme W", "--company", "Client A", "--agreement", "AG-1", "--channel", "whatsapp", expect=5)
    # A campaign that is on another channel already (made before the refusal) is
    # neither started nor sent as SMS.
    c = cli.json(
        "campaign", "create", "--company", "Client A", "--sender", "ACME", "--to", "34600000001", "--text", "x"
    )
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.update(Campaign.__table__).where(Campaign.__table__.c.id == c["id"]).values(channel="viber"))
    run = cli("campaign", "send", str(c["id"]), expect=5)
    assert "no gateway serves channel viber" in run.stderr
    running = send_from(cli, tmp_path, "ACME", "34600000002", "queued")
    with engine.begin() as conn:
        conn.execute(sa.update(Campaign.__table__).where(Campaign.__table__.c.id == running).values(channel="viber"))
    out = serve_once(cli)
    assert out["claimed"] == 0 and out["submitted"] == 0 and smsc.submit_log == []  # held, not charged


# ---------------------------------------------------------------- throttling


def test_sender_limits_are_shared_per_connection_and_sender():
    clock = FakeClock()
    limits = SenderLimits(clock)
    a1, a2 = limits.bucket("sim", "ACME", 10), limits.bucket("sim", "ACME", 10)
    assert a1 is a2  # two workers of one connection, one sender: one bucket
    assert limits.bucket("sim", "INFO", 10) is not a1  # each sender ID has its own limit
    assert limits.bucket("other", "ACME", 10) is not a1  # and each connection
    assert limits.bucket("sim", "ACME", None) is None
    taken = 0
    for _ in range(100):  # 10 simulated seconds, two takers
        clock.t += 0.1
        taken += a1.take() + a2.take()
    assert taken == 100  # 10/s in total, not 10/s each
    assert limits.bucket("sim", "ACME", 20) is not a1  # a changed limit starts a new bucket


def test_two_gateways_of_one_connection_share_the_rate(smsc):
    clock = FakeClock()  # frozen: only the burst (one token) may go
    limits = SenderLimits(clock)
    gws = [SmppGateway(gw_settings(smsc.port, rps=10, limits=limits), clock=clock) for _ in range(2)]
    for g in gws:
        g.open()
        for i in range(5):
            g.submit(WireMessage.single("ACME", f"3460000{i:04d}", b"x"))
    for _ in range(5):
        for g in gws:
            g.poll(0)
    assert sum(g.stats.submitted for g in gws) == 1
    other = SmppGateway(gw_settings(smsc.port, rps=10, limits=limits), clock=clock)
    other.open()
    other.submit(WireMessage.single("INFO", "34600000009", b"x"))
    other.poll(0)
    assert other.stats.submitted == 1  # another sender ID is not held back by ACME's limit
    for g in [*gws, other]:
        g.close()


def test_serve_with_two_workers_keeps_the_connection_rps(cli, db_url, smsc, tmp_path):
    setup(cli, smsc.port)
    cli.json("connection", "update", "sim", "--rps", "20")
    n, rps = 60, 20
    campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(n)], "Hi", "paced")
    out = serve_once(cli, "--workers", "2", "--batch", "5")
    assert out["submitted"] == n and out["workers"] == 2, out
    times = sorted(r.at for r in smsc.submit_log)
    # Lower bound only: at 20/s (one token of burst) 60 submits span at least
    # 59/20 s; two workers with a limit each would need half of that.
    assert times[-1] - times[0] >= (n - 2) / rps * 0.8


def test_the_edr_counts_the_parts_the_connection_sends(cli, db_url, smsc, tmp_path):
    """A 16-bit UDH leaves 152 GSM-7 characters a part: 306 characters are 3
    parts, not the standard 2, and 3 parts are charged; a text a Latin-1
    connection cannot hold goes (and is charged) as UCS-2."""
    setup(cli, smsc.port)
    cli.json("connection", "update", "sim", "--concat", "udh16", "--gsm7-coding", "latin1")
    send_from(cli, tmp_path, "ACME", "33612345678", "x" * 306)
    send_from(cli, tmp_path, "ACME", "33612345679", "5€ " * 30)  # 90 GSM-7 characters, 30 of them ESC pairs
    out = serve_once(cli)
    assert out["submitted"] == 2 and out["errors"] == [], out
    got = by_dest(smsc)
    assert len(got["33612345678"]) == 3 and {r.data_coding for r in got["33612345678"]} == {0x03}
    assert len(got["33612345679"]) == 2 and {r.data_coding for r in got["33612345679"]} == {0x08}
    rows = {r["destination"]: r for r in edrs(db_url)}
    assert (rows["33612345678"]["encoding"], rows["33612345678"]["segments"]) == ("GSM7", 3)
    assert (rows["33612345679"]["encoding"], rows["33612345679"]["segments"]) == ("UCS2", 2)
    assert rows["33612345678"]["cost"] == 3 * 50_000 and rows["33612345679"]["cost"] == 2 * 50_000  # 0.05 a part


# ---------------------------------------------------------------- transmitter + receiver binds


def test_tx_plus_rx_binds_send_on_one_and_receive_on_the_other(cli, db_url, tmp_path):
    import threading

    opts = SmscOptions(port=free_port(), lifetime=60, receipt_delay=0.5)
    with SimSmsc(opts) as sim:
        setup(cli, sim.port)
        upd = cli.json("connection", "update", "sim", "--bind", "tx+rx")
        assert upd["bind"] == "tx+rx"
        campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(20)], "Hi", "pair")

        def inject():
            end = time.monotonic() + 20
            while sim.counters.binds < 2 and time.monotonic() < end:
                time.sleep(0.01)
            # Not awaited: smpp34 does not take the deliver_sm_resp on a receiver
            # session (its quirk), so its future only ends with the session.
            sim.inject_mo("+34600000001", "ACME", "STOP")

        t = threading.Thread(target=inject)
        t.start()
        out = serve_once(cli)
        t.join()
        # Two binds (a transmitter and a receiver); the receipts and the MO came on the receiver.
        assert sim.counters.binds == 2 and len(sim.submit_log) == 20
        assert out["submitted"] == 20 and out["receipts"] == 20 and out["mo"] == 1 and out["opt_outs"] == 1, out
        assert out["errors"] == []
        probe = cli.json("connection", "test", "sim", env={"SIM_PW": "pw"})
        assert probe["ok"] and probe["bind"] == "tx+rx" and probe["rx_bind_ms"] >= 0


def test_serve_once_reports_refused_credentials(cli, db_url, tmp_path):
    with SimSmsc(SmscOptions(port=free_port(), lifetime=60, password="right")) as sim:
        setup(cli, sim.port)
        campaign(cli, tmp_path, ["34600000001"], "Hi", "locked")
        run = cli("serve", "--once", "--receipt-timeout", "1", env={"SIM_PW": "wrong"}, expect=6)
        assert "connection 'sim'" in run.stderr and "Invalid Password" in run.stderr
        assert sim.counters.binds_refused == 1 and sim.submit_log == []


def test_the_pair_is_a_gateway():
    from cpaas_cli.dispatch.gateway import Gateway
    from cpaas_cli.dispatch.txrx import TxRxGateway, make_gateway

    pair = make_gateway(gw_settings(2775, bind_mode="tx+rx"))
    assert isinstance(pair, TxRxGateway) and isinstance(pair, Gateway)
    assert (pair.tx.settings.bind_mode, pair.rx.settings.bind_mode) == ("tx", "rx")
    assert isinstance(make_gateway(gw_settings(2775)), SmppGateway)
