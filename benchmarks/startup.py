"""Start-up time of `cpaas`: wall time of `cpaas --version` and of a simple
`cpaas tenant list` (SQLite; as a table, as an operator types it, and with
-o json), several runs each, and the slowest imports.

    .venv/bin/python benchmarks/startup.py [RUNS] [--cpaas PATH] [--before DIR]

RUNS (default 10) fresh processes per command. ``--cpaas`` times another
installation's entry point. ``--before DIR`` also times the ``cpaas_cli`` tree
exported at DIR (``git archive <commit> cpaas_cli migrations | tar -x -C DIR``)
with the same interpreter and packages, the runs of both interleaved so that
both meet the same load (this machine is shared: run-to-run noise is larger
than most changes). The line "floor" is ``python -c "import typer, sqlmodel"``,
what any command that reads the database imports before cpaas' own code.
Prints min / median / mean / max in seconds and the median CPU seconds (user +
system), then the ten imports with the largest cumulative time under
``python -X importtime``. The children may write bytecode caches
(``PYTHONDONTWRITEBYTECODE`` is dropped, and untimed runs warm them), as an
installed tool has them: without them every run compiles the project's modules.
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


def _once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _time(cases: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each case ``runs`` times, the cases interleaved run by run (after two untimed warm-up rounds)."""
    for _ in range(2):
        for cmd, env in cases.values():
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    got: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in cases}
    for _ in range(runs):
        for label, (cmd, env) in cases.items():
            wall, cpu = _once(cmd, env)
            got[label][0].append(wall)
            got[label][1].append(cpu)
    return got


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
    before_dir = None
    for flag in ("--cpaas", "--before"):
        if flag in argv:
            i = argv.index(flag)
            if flag == "--cpaas":
                cpaas = argv[i + 1]
            else:
                before_dir = str(Path(argv[i + 1]).resolve())
            del argv[i : i + 2]
    runs = int(argv[0]) if argv else 10
    python = str(Path(cpaas).with_name("python"))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "cpaas.toml").write_text("")
        env = {**os.environ, "CPAAS_DATABASE_URL": f"sqlite:///{tmp}/startup.db", "CPAAS_CONFIG": f"{tmp}/cpaas.toml"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([cpaas, "-q", "init", "--owner", "Startup"], env=env, check=True, stdout=subprocess.DEVNULL)
        trees = {"": env}
        if before_dir:
            trees = {"before: ": {**env, "PYTHONPATH": before_dir}, "now: ": env}
        cases = {f"{tag}{label}": ([cpaas, *args], e) for label, args in COMMANDS for tag, e in trees.items()}
        cases["floor (import typer, sqlmodel)"] = ([python, "-c", "import typer, sqlmodel"], env)
        print(f"{cpaas}, {runs} runs each, interleaved (seconds)")
        print(f"{'command':<34} {'min':>6} {'median':>7} {'mean':>6} {'max':>6} {'cpu median':>11}")
        for label, (t, cpu) in _time(cases, runs).items():
            print(
                f"{label:<34} {min(t):6.3f} {statistics.median(t):7.3f} {statistics.mean(t):6.3f} {max(t):6.3f}"
                f" {statistics.median(cpu):11.3f}"
            )
        for label, args in COMMANDS[:2]:
            print(f"\nslowest imports of {label} (cumulative ms, python -X importtime):")
            for us, name in _imports(python, args, env):
                print(f"  {us / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
