"""The pure rules of usage reports (no I/O).

Rules enforced here:
- a report counts per UTC day and pool: granted (what `total_earned` counts), spent (spends less
  refunds), expired (`monthly_expired`), and other (migrations and negative adjustments), so that
  granted - spent - expired + other is the pool's net change that day;
- every day of the range has a row, zero or not; records that cannot be read are skipped;
- a chart over more than 60 days sums its days per ISO week, over more than 400 per calendar
  month (partial buckets at either end hold only days of the range), so no credit is lost or
  counted twice by the grouping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Optional

from ..ledger.accounts import totals_change
from ..ledger.models import CreditPool, TransactionType

POOLS = (CreditPool.MONTHLY, CreditPool.PERMANENT)
CATEGORIES = ("granted", "spent", "expired", "other")


def categorize(kind: TransactionType, amount: int) -> tuple[str, int]:
    """The report column a record counts in, and the (non-negative for the first three) value."""
    earned, spent = totals_change(kind, amount)
    if earned:
        return "granted", earned
    if kind in (TransactionType.SPENT, TransactionType.REFUND):
        return "spent", spent
    if kind is TransactionType.MONTHLY_EXPIRED:
        return "expired", -amount
    return "other", amount


@dataclass
class DayUsage:
    """One day's figures: `figures[pool][category]` in credits."""

    day: date
    figures: dict[str, dict[str, int]] = field(
        default_factory=lambda: {pool.value: {c: 0 for c in CATEGORIES} for pool in POOLS}
    )

    def spent_total(self) -> int:
        return sum(self.figures[pool.value]["spent"] for pool in POOLS)

    def share(self, pool: str) -> Optional[float]:
        """The pool's share of the day's spending, or None when nothing was spent."""
        total = self.spent_total()
        return round(self.figures[pool]["spent"] / total, 4) if total else None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"date": self.day.isoformat()}
        for pool in POOLS:
            for category in CATEGORIES:
                row[f"{pool.value}_{category}"] = self.figures[pool.value][category]
            row[f"{pool.value}_spend_share"] = self.share(pool.value)
        row["total_spent"] = self.spent_total()
        return row


def report_window(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants [start 00:00, day after end 00:00) a report over `start`..`end` covers."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    begin = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    return begin, datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(days=1)


def aggregate_usage(records: Iterable[Mapping[str, Any]], start: date, end: date) -> list[DayUsage]:
    """Per-day usage over `start`..`end` (UTC, both included), a row for every day."""
    days = {start + timedelta(days=i): DayUsage(start + timedelta(days=i)) for i in range((end - start).days + 1)}
    for record in records:
        created = record.get("created_at")
        pool = record.get("pool")
        amount = record.get("amount")
        if not isinstance(created, datetime) or pool not in ("monthly", "permanent"):
            continue
        if not isinstance(amount, int) or isinstance(amount, bool):
            continue
        try:
            kind = TransactionType(record.get("type"))
        except ValueError:
            continue
        day = days.get(created.astimezone(timezone.utc).date())
        if day is None:
            continue
        category, value = categorize(kind, amount)
        day.figures[pool][category] += value
    return [days[d] for d in sorted(days)]


def usage_totals(days: Iterable[DayUsage], start: date) -> DayUsage:
    """The sum of several days' figures (its `day` is the first day, for display only)."""
    total = DayUsage(start)
    for day in days:
        for pool, figures in day.figures.items():
            for category, value in figures.items():
                total.figures[pool][category] += value
    return total


# A chart of more days than these groups them by week, then by month, so its bars stay readable.
WEEKLY_AFTER_DAYS = 60
MONTHLY_AFTER_DAYS = 400


def bucket_size(days: int) -> str:
    """How a chart of `days` days groups them: "day", "week" (over 60) or "month" (over 400)."""
    if days > MONTHLY_AFTER_DAYS:
        return "month"
    if days > WEEKLY_AFTER_DAYS:
        return "week"
    return "day"


def bucket_start(day: date, size: str) -> date:
    """The first day of the bucket `day` falls in: itself, its ISO week's Monday, or its month's 1st."""
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    if size == "day":
        return day
    raise ValueError(f"unknown bucket size {size!r}")


def bucket_usage(days: Iterable[DayUsage], size: str) -> list[DayUsage]:
    """Consecutive days summed per bucket; each bucket's `day` is its first day in the range (a
    range starting mid-week or mid-month has a partial first bucket, and the same at its end)."""
    buckets: dict[date, DayUsage] = {}
    for day in days:
        key = bucket_start(day.day, size)
        total = buckets.get(key)
        if total is None:
            total = buckets[key] = DayUsage(day.day)
        for pool, figures in day.figures.items():
            for category, value in figures.items():
                total.figures[pool][category] += value
    return [buckets[key] for key in sorted(buckets)]
