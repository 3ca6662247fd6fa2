"""`cpaas dev smsc --record FILE --record-text`: each accepted submit's line carries its text
(benchmarks/otp.py reads the codes there, as a user reads them on the phone)."""

from __future__ import annotations

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.test_serve import campaign, serve_once, setup


def test_record_text_adds_each_submits_text(cli, tmp_path):
    record = tmp_path / "smsc.txt"
    sim = SimSmsc(SmscOptions(port=free_port(), lifetime=60, record_path=str(record), record_text=True))
    sim.start()
    try:
        setup(cli, sim.port)
        campaign(cli, tmp_path, ["+34620000001", "+34620000002"], "Your code is 4321 ¿ok?", "rec")
        assert serve_once(cli)["submitted"] == 2
    finally:
        sim.stop()
    lines = sorted(line.split(" ", 1)[1] for line in record.read_text().splitlines())
    assert lines == ["34620000001 Your code is 4321 ¿ok?", "34620000002 Your code is 4321 ¿ok?"]


def test_record_text_without_a_record_file_is_refused(cli):
    got = cli("dev", "smsc", "--record-text", "--lifetime", "1", expect=4)
    assert "--record-text" in got.stderr and "--record" in got.stderr
