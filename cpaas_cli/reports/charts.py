"""Charts of message counts or cost over one dimension (day, week, month, country…).

Terminal charts with plotext, image files (PNG, SVG, PDF) with matplotlib's
Agg backend. Amounts become floats here only to be drawn; the numbers printed
next to a chart come from the exact summary.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from cpaas_cli.errors import InvalidInput

METRICS = ("count", "parts", "cost")
IMAGE_TYPES = (".png", ".svg", ".pdf")


def series(rows: list[dict[str, Any]], *, by: str, metric: str) -> tuple[list[str], dict[str, list[float]]]:
    """Labels along ``by`` and one list of values per series (per currency for cost)."""
    if metric not in METRICS:
        raise InvalidInput(f"--metric: choose one of {', '.join(METRICS)}")
    labels: list[str] = []
    for r in rows:
        label = "(none)" if r[by] is None else str(r[by])
        if label not in labels:
            labels.append(label)
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        label = "(none)" if r[by] is None else str(r[by])
        if metric == "cost":
            if r["currency"] is None:
                continue
            name = r["currency"]
            v = float(Decimal(r["cost"]))
        else:
            name = "messages" if metric == "count" else "parts"
            v = float(r["messages"] if metric == "count" else r["parts"])
        values[name][label] = values[name].get(label, 0.0) + v
    if not values:
        values["messages" if metric == "count" else "cost"] = {}
    return labels, {k: [v.get(lb, 0.0) for lb in labels] for k, v in sorted(values.items())}


def title(metric: str, by: str) -> str:
    what = {"count": "Messages", "parts": "Message parts", "cost": "Cost"}[metric]
    return f"{what} by {by}"


def terminal(labels: list[str], data: dict[str, list[float]], *, heading: str, width: int | None = None) -> str:
    """The chart as plain text (plotext 6), for stdout."""
    import plotext as plt

    if not labels:
        return f"{heading}: no data\n"
    f = plt.figure
    f.clear()
    f.theme("colorless")
    f.plot_size(width or 100, 22)
    names = list(data)
    if len(names) == 1:
        sig = f.bar(labels, data[names[0]])
        sig.label(names[0])
    else:
        sig = f.bar(labels, [data[n] for n in names])
        heading = f"{heading} (bars: {', '.join(names)})"
    f.draw(sig)
    f.title(heading)
    text = plt.uncolorize(str(f.build()))
    f.clear()
    return text.rstrip("\n") + "\n"


def check_suffix(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() not in IMAGE_TYPES:
        raise InvalidInput(f"--out: choose a .png, .svg or .pdf file, not {p.name!r}")
    return p


def image(
    labels: list[str], data: dict[str, list[float]], path: str | Path, *, heading: str, ymax: float | None = None
) -> Path:
    """Write the chart to a PNG, SVG or PDF file (matplotlib, Agg backend); ``ymax``: a fixed top (100 for a %)."""
    p = check_suffix(path)
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, min(24.0, 0.35 * len(labels) + 4)), 4.5), layout="constrained")
    ax = fig.add_subplot()
    names = list(data)
    n = max(1, len(names))
    width = 0.8 / n
    xs = list(range(len(labels)))
    for i, name in enumerate(names):
        ax.bar([x + (i - (n - 1) / 2) * width for x in xs], data[name], width=width, label=name)
    ax.set_xticks(xs, labels, rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
    ax.set_title(heading)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    if len(names) > 1 or heading.startswith("Cost"):
        ax.legend()
    from cpaas_cli import files

    with files.AtomicFile(p) as fh:  # the old file stays if writing fails
        fig.savefig(fh, format=p.suffix.lower().lstrip("."))
    return p
