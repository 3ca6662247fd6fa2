"""The jobs `cpaas serve` runs: plain functions of an engine, with their interval.

Domain modules provide the functions (they never import this package); this
list wires them to the scheduler. Each job returns a small dict of counts for
the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[Engine], dict[str, Any] | None]
    every_seconds: int


def all_jobs() -> list[Job]:
    """Every periodic job. Imports happen here so domain modules stay independent."""
    from cpaas_cli.billing import packs
    from cpaas_cli.edr import tasks as edr_tasks
    from cpaas_cli.invoices import service as invoices
    from cpaas_cli.recurring import service as recurring
    from cpaas_cli.rerate import tasks as rerate
    from cpaas_cli.sending import idempotency

    return [
        Job("edr-export-tasks", edr_tasks.process_waiting, every_seconds=30),
        Job("fees-run", recurring.run_job, every_seconds=300),
        Job("invoice-run", invoices.run_job, every_seconds=3600),
        Job("pack-purchases", packs.run_job, every_seconds=60),
        Job("rerate-run", rerate.run_job, every_seconds=60),
        Job("idempotency-purge", idempotency.purge_job, every_seconds=3600),
    ]
