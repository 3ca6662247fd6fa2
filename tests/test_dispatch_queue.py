"""The outbound queue's states: one enum, and every state write in dispatch/queue.py."""

from __future__ import annotations

import re
from pathlib import Path

from cpaas_cli.dispatch.queue import QueueState, external_id
from cpaas_cli.models.campaigns import QUEUE_STATES

DISPATCH = Path(__file__).resolve().parent.parent / "cpaas_cli" / "dispatch"
# An UPDATE of the queue table (Q) that sets its state column, within one statement.
STATE_WRITE = re.compile(r"sa\.update\(Q\)(?:(?!sa\.update\(|\n\n).)*?\bstate=", re.DOTALL)


def test_the_enum_is_the_tables_list_of_states():
    assert tuple(QueueState) == QUEUE_STATES
    assert QueueState.SENDING == "sending" and f"{QueueState.UNKNOWN}" == "unknown"


def test_external_id_names_the_queue_row():
    assert external_id(42) == "om:42"


def test_only_the_queue_module_writes_queue_states():
    assert STATE_WRITE.search((DISPATCH / "queue.py").read_text())  # the pattern finds what it looks for
    writers = sorted(
        p.name for p in DISPATCH.glob("*.py") if p.name != "queue.py" and STATE_WRITE.search(p.read_text())
    )
    assert writers == []
