"""Rendering the pool-usage report: rows for a table, CSV, and a PNG chart.

matplotlib is a development dependency of the operator tool only (never of the functions); it is
imported when a chart is asked for, with the Agg backend so no display is needed. The chart has
one size whatever the range: over 60 days its bars are weeks, over 400 days months.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Optional

from shared.operations.usage_rules import CATEGORIES, DayUsage, bucket_size, bucket_usage

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


# The chart's size in pixels (inches at 100 dpi): the same for a week or ten years.
PNG_SIZE_IN = (12, 7.5)
PNG_DPI = 100
# At most this many date labels on the x axis; the others are left out.
MAX_LABELS = 14
MONTHLY_COLOR, PERMANENT_COLOR, EXPIRED_COLOR = "#4C72B0", "#DD8452", "#C44E52"


def _label(day, size: str) -> str:
    return day.strftime("%Y-%m") if size == "month" else day.isoformat()


def totals_text(days: list[DayUsage]) -> str:
    """The range's totals per pool, for the chart: granted, spent, expired (and other if any)."""
    lines = []
    for pool in ("monthly", "permanent"):
        sums = {c: sum(day.figures[pool][c] for day in days) for c in CATEGORIES}
        text = f"{pool}: granted {sums['granted']:,}  spent {sums['spent']:,}  expired {sums['expired']:,}"
        if sums["other"]:
            text += f"  other {sums['other']:+,}"
        lines.append(text)
    return "\n".join(lines)


def _legend_above(axis) -> None:
    # Above the panel, not in it, so it never covers a tall bar.
    axis.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, fontsize=9, frameon=False, borderaxespad=0.2)


def to_png(days: list[DayUsage], path: str, title: str) -> None:
    """Two panels at a fixed size: credits granted per pool, and credits spent (stacked) and
    expired per pool, per day, week or month (`usage_rules.bucket_size`), with the range's totals."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    size = bucket_size(len(days))
    buckets = bucket_usage(days, size)
    x = list(range(len(buckets)))
    monthly = [b.figures["monthly"] for b in buckets]
    permanent = [b.figures["permanent"] for b in buckets]
    per = {"day": "per day", "week": "per week (from Monday)", "month": "per month"}[size]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=PNG_SIZE_IN, sharex=True)
    try:
        fig.suptitle(f"{title}, {per}", fontsize=13)
        fig.text(0.5, 0.925, "Totals  " + totals_text(days).replace("\n", "     "), ha="center", fontsize=9.5,
                 bbox={"boxstyle": "round,pad=0.4", "facecolor": "#F2F2F2", "edgecolor": "#BBBBBB"})
        width = 0.4
        top.bar([i - width / 2 for i in x], [f["granted"] for f in monthly], width, label="monthly", color=MONTHLY_COLOR)
        top.bar([i + width / 2 for i in x], [f["granted"] for f in permanent], width, label="permanent",
                color=PERMANENT_COLOR)
        top.set_ylabel("credits granted")
        _legend_above(top)

        spent_m = [f["spent"] for f in monthly]
        spent_p = [f["spent"] for f in permanent]
        bottom.bar(x, spent_p, 0.8, label="spent from permanent", color=PERMANENT_COLOR)
        bottom.bar(x, spent_m, 0.8, bottom=spent_p, label="spent from monthly", color=MONTHLY_COLOR)
        # Expiries as markers only where something expired: a row of zeros says nothing.
        expired = [(i, f["expired"]) for i, f in zip(x, monthly) if f["expired"]]
        if expired:
            bottom.scatter([i for i, _ in expired], [v for _, v in expired], color=EXPIRED_COLOR, marker="D",
                           s=30, zorder=3, edgecolors="white", linewidths=0.6, label="monthly expired")
        bottom.set_ylabel("credits spent / expired")
        _legend_above(bottom)

        thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")
        for axis in (top, bottom):
            axis.yaxis.set_major_formatter(thousands)
            axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            axis.grid(axis="y", color="#DDDDDD", linewidth=0.8)
            axis.set_axisbelow(True)
            axis.set_ylim(bottom=0)
            axis.set_xlim(-0.6, len(buckets) - 0.4)
        step = max(1, -(-len(buckets) // MAX_LABELS))
        ticks = x[::step]
        bottom.set_xticks(ticks)
        bottom.set_xticklabels([_label(buckets[i].day, size) for i in ticks], rotation=35, ha="right", fontsize=8.5)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        fig.savefig(path, format="png", dpi=PNG_DPI)
    finally:
        plt.close(fig)
