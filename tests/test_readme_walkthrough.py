"""The README's "A week as an operator" runs as written (issue 25, item 8).

Every ```console block of that section is read from README.md itself: each
`$ cpaas …` line (a trailing backslash continues it on the next line) runs in a
fresh `python -m cpaas_cli` process, in order, against one new SQLite database,
from a directory holding a copy of sample_data/walkthrough/. Each command must
exit 0, and each line the README shows under a command must be a line of that
command's output (stdout or stderr), so the section cannot drift from the tool.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SECTION = "## A week as an operator"


@dataclass
class Step:
    line: str  # the command as the README writes it, without "$ "
    shown: list[str] = field(default_factory=list)  # the output lines the README shows under it

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.line)
        assert words[0] == "cpaas", f"the walkthrough runs cpaas commands only: {self.line}"
        return [sys.executable, "-m", "cpaas_cli", *words[1:]]


def walkthrough(text: str) -> list[Step]:
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        pending = ""
        for raw in block.splitlines():
            if pending:
                pending += " " + raw.strip()
            elif raw.startswith("$ "):
                pending = raw[2:].strip()
            elif raw.strip():
                assert steps, f"output shown before any command: {raw!r}"
                steps[-1].shown.append(raw.rstrip())
                continue
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip()
                continue
            if pending:
                steps.append(Step(pending))
                pending = ""
        assert not pending, f"a command continues past its block: {pending}"
    return steps


STEPS = walkthrough(README.read_text())


def test_the_section_is_there_and_has_the_week():
    """The control: the parser finds the commands of every day of the week."""
    lines = [s.line for s in STEPS]
    assert len(STEPS) >= 15
    for needed in ("init --owner", "rates import", "--dry-run", "edr ingest", "rerate run", "invoice confirm",
                   "invoice export"):  # fmt: skip
        assert any(needed in line for line in lines), needed
    assert any(s.shown for s in STEPS)


def test_the_parser_joins_continued_lines_and_keeps_output():
    text = f"{SECTION}\n\n```console\n$ cpaas a \\\n    --b 'c d'\nout 1\n$ cpaas e\n```\n\n## Next\n"
    steps = walkthrough(text)
    assert [(s.line, s.shown) for s in steps] == [("cpaas a --b 'c d'", ["out 1"]), ("cpaas e", [])]
    assert steps[0].argv[-3:] == ["a", "--b", "c d"]


@pytest.fixture
def week(tmp_path) -> dict[str, str]:
    shutil.copytree(ROOT / "sample_data" / "walkthrough", tmp_path / "sample_data" / "walkthrough")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPAAS_")}
    env.update(
        CPAAS_DATABASE_URL=f"sqlite:///{tmp_path / 'cpaas.db'}",
        CPAAS_ACTOR="walkthrough",
        COLUMNS="100",
        NO_COLOR="1",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_a_week_as_an_operator(week, tmp_path):
    for step in STEPS:
        run = _run(step.argv, week, tmp_path)
        assert run.returncode == 0, f"$ {step.line}\nexit {run.returncode}\n{run.stdout}\n{run.stderr}"
        if "-o json" in step.line:
            json.loads(run.stdout)  # stdout is data only
        printed = {line.rstrip() for line in (run.stdout + run.stderr).splitlines()}
        missing = [line for line in step.shown if line not in printed]
        assert not missing, f"$ {step.line}\nshown in the README but not printed: {missing}\n{run.stdout}{run.stderr}"

    # the key results, read back through the CLI
    def cpaas(*args: str):
        run = _run([sys.executable, "-m", "cpaas_cli", *args, "-o", "json"], week, tmp_path)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    [invoice] = cpaas("invoice", "list")
    assert (invoice["reference"], invoice["status"], invoice["net"]) == ("INV-1", "confirmed", "0.27")

    def price(mccmnc: str) -> str:
        return cpaas("rates", "lookup", "--agreement", "IC-1", "--mccmnc", mccmnc, "--at", "2025-01-15")["price"]

    assert price("21401") == "0.038"  # the notice's price
    assert price("21407") == "0.031"  # merge kept what the notice did not name
    assert (tmp_path / "INV-1.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "INV-1-charges.xlsx").exists()
