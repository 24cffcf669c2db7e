"""Rendering the pool-usage report: rows for a table, CSV, and a PNG chart.

matplotlib is a development dependency of the operator tool only (never of the functions); it is
imported when a chart is asked for, with the Agg backend so no display is needed.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Optional

from shared.operations.usage_rules import CATEGORIES, DayUsage

COLUMNS = (
    ["date"]
    + [f"monthly_{c}" for c in CATEGORIES]
    + ["monthly_spend_share"]
    + [f"permanent_{c}" for c in CATEGORIES]
    + ["permanent_spend_share", "total_spent"]
)


def _share(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with a header; a share is a fraction with four decimals, empty when nothing was spent."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (_share(v) if k.endswith("_share") else v) for k, v in row.items() if k in COLUMNS})
    return buffer.getvalue()


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for the terminal: per pool granted/spent/expired/other and spend share.

    The pool names head their group on a line of their own, so the table fits 100 columns."""
    headers = ["date"]
    for pool in ("monthly", "permanent"):
        headers += [f"{pool if i == 0 else ''}\n{c}" for i, c in enumerate(CATEGORIES)] + ["\nshare"]
    cells = []
    for row in rows:
        line = [row["date"]]
        for pool in ("monthly", "permanent"):
            line += [str(row[f"{pool}_{c}"]) for c in CATEGORIES]
            share = row[f"{pool}_spend_share"]
            line.append("-" if share is None else f"{share:.1%}")
        cells.append(line)
    return headers, cells


def to_png(days: list[DayUsage], path: str, title: str) -> None:
    """Two panels over the days: credits granted per pool, and credits spent and expired per pool."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [day.day.isoformat() for day in days]
    x = list(range(len(days)))
    monthly = [day.figures["monthly"] for day in days]
    permanent = [day.figures["permanent"] for day in days]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, len(days) * 0.35), 7), sharex=True)
    try:
        width = 0.4
        top.bar([i - width / 2 for i in x], [f["granted"] for f in monthly], width, label="monthly", color="#4C72B0")
        top.bar([i + width / 2 for i in x], [f["granted"] for f in permanent], width, label="permanent", color="#DD8452")
        top.set_ylabel("credits granted")
        top.legend(loc="upper left")
        top.set_title(title)

        spent_m = [f["spent"] for f in monthly]
        spent_p = [f["spent"] for f in permanent]
        bottom.bar(x, spent_p, label="spent from permanent", color="#DD8452")
        bottom.bar(x, spent_m, bottom=spent_p, label="spent from monthly", color="#4C72B0")
        bottom.plot(x, [f["expired"] for f in monthly], color="#C44E52", marker="o", linewidth=1, label="monthly expired")
        bottom.set_ylabel("credits spent / expired")
        bottom.legend(loc="upper left")
        bottom.set_xticks(x)
        bottom.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
