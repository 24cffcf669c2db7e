"""Rendering the pool-usage report: rows for a table, CSV, and a PNG chart.

matplotlib is a development dependency of the operator tool only (never of the functions); it is
imported when a chart is asked for, with the Agg backend so no display is needed. The chart has
one size whatever the range: over 60 days its bars are weeks, over 400 days months. Rules: grants
are drawn on a symmetric log scale with their values written on the bars, so a small grant is
never a sliver beside a large one; expiries are a series of their own, never drawn over a bar of
another series.
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


def grant_scale_threshold(values: list[int]) -> float:
    """Where the grants axis turns from linear to logarithmic: a tenth of the smallest grant that
    is not zero (at least 1), so every grant sits in the logarithmic part, where a 1,500 grant
    still has a visible bar beside a 62,500 one, and zero stays zero."""
    smallest = min((abs(v) for v in values if v), default=10)
    return max(1.0, smallest / 10)


def decade_ticks(threshold: float, lowest: int, highest: int) -> list[int]:
    """0 and the powers of ten from the threshold up to the largest grant (and down to the
    smallest, below zero): the linear part near zero gets no ticks of its own to crowd it."""
    import math

    first = max(0, math.ceil(math.log10(threshold)))
    up = [10**k for k in range(first, math.ceil(math.log10(max(highest, 1))) + 1) if 10**k <= highest * 3]
    down = [-(10**k) for k in range(first, math.ceil(math.log10(max(-lowest, 1))) + 1) if 10**k <= -lowest * 3]
    return sorted(down) + [0] + up


# Bars are labelled with their value while there are at most this many buckets.
MAX_LABELLED_BUCKETS = 31


def figure(days: list[DayUsage], title: str):
    """The chart as a matplotlib figure (closed by the caller): two panels at a fixed size.

    Top: credits granted per pool, side by side, on a symmetric log scale (linear near zero),
    each bar labelled with its value, so small and large grants both show and read exactly; a
    day's grants are net of pack refunds and can be below zero. Bottom: credits spent, stacked
    per pool, and beside them, on their own series, the monthly credits that expired, per day,
    week or month (`usage_rules.bucket_size`); the range's totals under the title."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    size = bucket_size(len(days))
    buckets = bucket_usage(days, size)
    x = list(range(len(buckets)))
    monthly = [b.figures["monthly"] for b in buckets]
    permanent = [b.figures["permanent"] for b in buckets]
    per = {"day": "per day", "week": "per week (from Monday)", "month": "per month"}[size]
    labelled = len(buckets) <= MAX_LABELLED_BUCKETS
    thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=PNG_SIZE_IN, sharex=True)
    try:
        fig.suptitle(f"{title}, {per}", fontsize=13)
        fig.text(0.5, 0.925, "Totals  " + totals_text(days).replace("\n", "     "), ha="center", fontsize=9.5,
                 bbox={"boxstyle": "round,pad=0.4", "facecolor": "#F2F2F2", "edgecolor": "#BBBBBB"})
        width = 0.4
        granted_m = [f["granted"] for f in monthly]
        granted_p = [f["granted"] for f in permanent]
        bars = [
            top.bar([i - width / 2 for i in x], granted_m, width, label="monthly granted", color=MONTHLY_COLOR),
            top.bar([i + width / 2 for i in x], granted_p, width, label="permanent granted", color=PERMANENT_COLOR),
        ]
        threshold = grant_scale_threshold(granted_m + granted_p)
        top.set_yscale("symlog", linthresh=threshold, linscale=0.5)
        top.set_ylabel("credits granted (log scale)")
        if labelled:
            for container in bars:
                top.bar_label(container, labels=[f"{v:,}" if v else "" for v in container.datavalues],
                              fontsize=7, padding=1.5)
        highest = max([1, *granted_m, *granted_p])
        lowest = min([0, *granted_m, *granted_p])
        # Room above the tallest bar for its label (a factor, since the scale is logarithmic).
        top.set_ylim(lowest * 3 if lowest < 0 else 0, highest * 3)
        top.set_yticks(decade_ticks(threshold, lowest, highest))
        top.yaxis.set_minor_locator(NullLocator())
        _legend_above(top)

        spent_m = [f["spent"] for f in monthly]
        spent_p = [f["spent"] for f in permanent]
        expired = [f["expired"] for f in monthly]
        left = [i - width / 2 for i in x]
        bottom.bar(left, spent_p, width, label="spent from permanent", color=PERMANENT_COLOR)
        bottom.bar(left, spent_m, width, bottom=spent_p, label="spent from monthly", color=MONTHLY_COLOR)
        # Expiries are a series of their own, beside the spending: never drawn over another bar.
        expiries = bottom.bar([i + width / 2 for i in x], expired, width, label="monthly expired", color=EXPIRED_COLOR)
        if labelled:
            bottom.bar_label(expiries, labels=[f"{v:,}" if v else "" for v in expired], fontsize=7, padding=1.5)
        bottom.set_ylabel("credits spent / expired")
        bottom.yaxis.set_major_formatter(thousands)
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        bottom.set_ylim(bottom=0, top=max([1, *expired, *(m + p for m, p in zip(spent_m, spent_p))]) * 1.12)
        _legend_above(bottom)

        top.yaxis.set_major_formatter(thousands)
        for axis in (top, bottom):
            axis.grid(axis="y", color="#DDDDDD", linewidth=0.8)
            axis.set_axisbelow(True)
            axis.set_xlim(-0.6, len(buckets) - 0.4)
        step = max(1, -(-len(buckets) // MAX_LABELS))
        ticks = x[::step]
        bottom.set_xticks(ticks)
        bottom.set_xticklabels([_label(buckets[i].day, size) for i in ticks], rotation=35, ha="right", fontsize=8.5)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
    except BaseException:
        plt.close(fig)
        raise
    return fig


def to_png(days: list[DayUsage], path: str, title: str) -> None:
    """The chart (`figure`) as a PNG of 1200 x 750 pixels."""
    fig = figure(days, title)
    from matplotlib import pyplot as plt

    try:
        fig.savefig(path, format="png", dpi=PNG_DPI)
    finally:
        plt.close(fig)
