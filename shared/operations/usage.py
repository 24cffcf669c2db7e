"""Usage reports from the ledger, as an operator runs them."""

from __future__ import annotations

from datetime import date

from ..store import scans
from .usage_rules import DayUsage, aggregate_usage, report_window


def usage(start: date, end: date) -> list[DayUsage]:
    """Per-day pool usage over `start`..`end` (UTC days, both included)."""
    begin, stop = report_window(start, end)
    return aggregate_usage(scans.transactions_between(begin, stop), start, end)
