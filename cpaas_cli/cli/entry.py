"""The `cpaas` executable's entry point: answers `cpaas --version` before
importing Typer or any command, then hands everything else to ``app.main``."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from cpaas_cli import __version__

        sys.stdout.write(f"cpaas {__version__}\n")
        return
    from cpaas_cli.cli.app import main as app_main

    app_main()
