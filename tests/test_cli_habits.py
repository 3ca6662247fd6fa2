"""Habits of good CLIs (issue 25 item 7): no prompt off a terminal, NO_COLOR,
shell completion, "did you mean" for names typed slightly wrong."""

from __future__ import annotations

import os
import subprocess
import sys

from cpaas_cli import __version__
from tests.helpers import client, owner_le

SMPP = ("connection", "add-smpp", "vend", "--host", "127.0.0.1", "--port", "2775", "--system-id", "x")


def _fresh(*args: str, env: dict | None = None, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    full = {**os.environ, "COLUMNS": "100", **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", "from cpaas_cli.cli.app import main; main()", *args],
        capture_output=True,
        text=True,
        env=full,
        stdin=stdin,
    )


# ---------------------------------------------------------------- add-smpp off a terminal


def test_add_smpp_off_a_terminal_without_a_password_source_fails_at_once(cli):
    run = cli(*SMPP, "-o", "json", expect=2)
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert lines == [
        "error: stdin is not a terminal, so the password cannot be asked: give --password-env VAR "
        "or pipe it in with --password-stdin"
    ]
    assert cli.json("connection", "list") == []


def test_add_smpp_off_a_terminal_in_a_fresh_process_does_not_wait_for_input(db_url):
    run = _fresh("--db", db_url, *SMPP, env={"CPAAS_SECRET_KEY": None})
    assert run.returncode == 2, run.stderr
    assert "stdin is not a terminal" in run.stderr and "--password-env" in run.stderr
    assert "SMPP password" not in run.stderr


def test_add_smpp_password_stdin_stores_it_encrypted(cli):
    from cryptography.fernet import Fernet

    key = {"CPAAS_SECRET_KEY": Fernet.generate_key().decode()}
    row = cli.json(*SMPP, "--password-stdin", input="s3cret\n", env=key)
    assert row["password"] == "***" and row["password_env"] is None
    run = cli(*SMPP[:2], "other", *SMPP[3:], "--password-stdin", input="\n", env=key, expect=2)
    assert "stdin has no password" in run.stderr
    run = cli(*SMPP[:2], "both", *SMPP[3:], "--password-stdin", "--password-env", "V", input="x\n", expect=2)
    assert "do not go together" in run.stderr
    run = cli("connection", "update", "vend", "--new-password", env=key, expect=2)
    assert "stdin is not a terminal" in run.stderr
    assert cli.json("connection", "update", "vend", "--password-stdin", input="n3w\n", env=key)["password"] == "***"


# ---------------------------------------------------------------- NO_COLOR


def test_no_color_means_no_escape_codes_even_when_colour_is_forced(db_url):
    plain = _fresh("--db", db_url, "tenant", "list")
    assert plain.returncode == 0 and "owner" in plain.stdout, plain.stderr
    forced = _fresh("--db", db_url, "tenant", "list", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[" in forced.stdout  # the control: forced colour does colour the table
    for args in (["tenant", "list"], ["tenant", "--help"], ["tenant", "show", "nobody"]):
        run = _fresh("--db", db_url, *args, env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": "1"})
        assert "\x1b" not in run.stdout + run.stderr, args


# ---------------------------------------------------------------- completion


def test_show_completion_prints_a_bash_script_for_bash():
    """`cpaas --show-completion` (and --install-completion) detect the shell they run in."""
    # "; exit $?": bash stays the parent process (a lone command would be exec'd in its place)
    code = f"{sys.executable} -c 'from cpaas_cli.cli.app import main; main()' --show-completion; exit $?"
    run = subprocess.run(["bash", "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "complete -o default -F _cpaas_completion cpaas" in run.stdout
    assert "_CPAAS_COMPLETE=complete_bash" in run.stdout


def test_completion_offers_groups_and_their_commands():
    groups = _fresh(env={"_CPAAS_COMPLETE": "complete_bash", "COMP_WORDS": "cpaas doc", "COMP_CWORD": "1"})
    assert groups.stdout.split() == ["doctor"]
    verbs = _fresh(env={"_CPAAS_COMPLETE": "complete_bash", "COMP_WORDS": "cpaas tenant li", "COMP_CWORD": "2"})
    assert verbs.stdout.split() == ["list"]


def test_a_named_shells_script():
    """The script for a shell named explicitly, as the README says (`_CPAAS_COMPLETE=source_zsh cpaas`)."""
    for shell, marker in (
        ("bash", "_cpaas_completion"),
        ("zsh", "#compdef cpaas"),
        ("fish", "complete --command cpaas"),
    ):
        run = _fresh(env={"_CPAAS_COMPLETE": f"source_{shell}"})
        assert run.returncode == 0 and marker in run.stdout, (shell, run.stdout[:200])


# ---------------------------------------------------------------- did you mean


def test_unknown_company_offers_the_name_that_differs_in_case(cli):
    owner_le(cli)
    client(cli, "Acme Telecom")
    run = cli("tenant", "show", "acme telecom", expect=3)
    assert run.stderr.strip() == "error: company 'acme telecom' not found; did you mean 'Acme Telecom'?"
    run = cli("tenant", "show", "Acme Telcom", expect=3)
    assert "did you mean 'Acme Telecom'?" in run.stderr
    run = cli("tenant", "show", "Zebra", expect=3)
    assert run.stderr.strip() == "error: company 'Zebra' not found"


def test_unknown_agreement_and_service_offer_a_match(cli):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("agreement", "create", "AC-1", "--company", "Acme", "--currency", "EUR")
    run = cli("agreement", "show", "ac-1", expect=3)
    assert "agreement 'ac-1' not found; did you mean 'AC-1'?" in run.stderr
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    run = cli("service", "show", "sms service", expect=3)
    assert "service 'sms service' not found; did you mean 'SMS service'?" in run.stderr


# ---------------------------------------------------------------- start-up


def test_version_answers_before_typer_is_imported():
    code = (
        "import sys; sys.argv = ['cpaas', '--version']\n"
        "from cpaas_cli.cli.entry import main\nmain()\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'sqlalchemy', 'rich')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"cpaas {__version__}", "LOADED []"]
    full = _fresh("--version")  # through the Typer app, the same answer
    assert full.returncode == 0 and full.stdout == f"cpaas {__version__}\n"
