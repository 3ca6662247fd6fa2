"""Start-up time of `cpaas`: wall time of `cpaas --version` and of a simple
`cpaas tenant list` (SQLite; as a table, as an operator types it, and with
-o json), several runs each, and the slowest imports.

    .venv/bin/python benchmarks/startup.py [RUNS] [--cpaas PATH]

RUNS (default 10) fresh processes per command; ``--cpaas`` times another
installation's entry point for a before/after (or run this script with
``PYTHONPATH=<an exported tree of another commit>``: the children import that
tree's ``cpaas_cli``). Prints min / median / mean / max in seconds, the median
CPU seconds (user + system: steadier than wall time on a loaded machine), then
the ten imports with the largest cumulative time under ``python -X importtime``.
The children may write bytecode caches (``PYTHONDONTWRITEBYTECODE`` is dropped,
and one untimed run warms them), as an installed tool has them: without them
every run compiles the project's modules again.
Targets (issue 25): --version <= 0.15 s, tenant list <= 0.4 s.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (
    ("--version", ["--version"]),
    ("tenant list", ["tenant", "list"]),
    ("tenant list -o json", ["tenant", "list", "-o", "json"]),
)


def _time(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system: less sensitive to a loaded machine) per run."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall, cpu


def _imports(python: str, args: list[str], env: dict[str, str], top: int = 10) -> list[tuple[int, str]]:
    code = "import sys; from cpaas_cli.cli.app import main; sys.argv[0] = 'cpaas'; main()"
    run = subprocess.run([python, "-X", "importtime", "-c", code, *args], env=env, capture_output=True, text=True)
    rows = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    argv = sys.argv[1:]
    cpaas = str(Path(sys.executable).with_name("cpaas"))
    if "--cpaas" in argv:
        i = argv.index("--cpaas")
        cpaas = argv[i + 1]
        del argv[i : i + 2]
    runs = int(argv[0]) if argv else 10
    python = str(Path(cpaas).with_name("python"))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "cpaas.toml").write_text("")
        env = {**os.environ, "CPAAS_DATABASE_URL": f"sqlite:///{tmp}/startup.db", "CPAAS_CONFIG": f"{tmp}/cpaas.toml"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([cpaas, "-q", "init", "--owner", "Startup"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"{cpaas}, {runs} runs each (seconds of wall time)")
        print(f"{'command':<22} {'min':>6} {'median':>7} {'mean':>6} {'max':>6} {'cpu median':>11}")
        for label, args in COMMANDS:
            t, cpu = _time([cpaas, *args], runs, env)
            print(
                f"{label:<22} {min(t):6.3f} {statistics.median(t):7.3f} {statistics.mean(t):6.3f} {max(t):6.3f}"
                f" {statistics.median(cpu):11.3f}"
            )
        for label, args in COMMANDS[:2]:
            print(f"\nslowest imports of {label} (cumulative ms, python -X importtime):")
            for us, name in _imports(python, args, env):
                print(f"  {us / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
