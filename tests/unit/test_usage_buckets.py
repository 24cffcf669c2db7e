"""Grouping a report's days into weeks or months for its chart: sizes, edges, and sums kept."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.operations.usage_rules import DayUsage, bucket_size, bucket_start, bucket_usage, usage_totals
from tools.credits.report_render import totals_text


def days(start: date, n: int) -> list[DayUsage]:
    out = []
    for i in range(n):
        day = DayUsage(start + timedelta(days=i))
        day.figures["monthly"]["spent"] = i + 1
        day.figures["permanent"]["granted"] = 10
        out.append(day)
    return out


@pytest.mark.parametrize("n, size", [(1, "day"), (60, "day"), (61, "week"), (365, "week"), (400, "week"),
                                     (401, "month"), (3660, "month")])
def test_a_chart_uses_days_up_to_60_weeks_up_to_400_and_months_beyond(n, size):
    assert bucket_size(n) == size


def test_a_bucket_starts_on_the_day_its_monday_or_the_first_of_its_month():
    thursday = date(2026, 1, 1)
    assert bucket_start(thursday, "day") == thursday
    assert bucket_start(thursday, "week") == date(2025, 12, 29)
    assert bucket_start(date(2026, 1, 5), "week") == date(2026, 1, 5)
    assert bucket_start(date(2026, 2, 28), "month") == date(2026, 2, 1)
    with pytest.raises(ValueError):
        bucket_start(thursday, "year")


def test_weeks_from_a_thursday_start_with_a_partial_week_labelled_by_its_first_day_in_range():
    weeks = bucket_usage(days(date(2026, 1, 1), 14), "week")
    assert [w.day for w in weeks] == [date(2026, 1, 1), date(2026, 1, 5), date(2026, 1, 12)]
    assert [w.figures["permanent"]["granted"] for w in weeks] == [40, 70, 30]
    assert [w.figures["monthly"]["spent"] for w in weeks] == [1 + 2 + 3 + 4, sum(range(5, 12)), 12 + 13 + 14]


def test_months_follow_the_calendar_and_a_year_has_twelve():
    year = days(date(2026, 1, 1), 365)
    months = bucket_usage(year, "month")
    assert [m.day for m in months] == [date(2026, k, 1) for k in range(1, 13)]
    assert months[1].figures["permanent"]["granted"] == 280  # February 2026 has 28 days


@pytest.mark.parametrize("size", ["day", "week", "month"])
def test_grouping_neither_loses_nor_doubles_a_credit(size):
    all_days = days(date(2026, 3, 17), 500)
    whole = usage_totals(all_days, all_days[0].day).figures
    assert usage_totals(bucket_usage(all_days, size), all_days[0].day).figures == whole


def test_the_totals_text_names_granted_spent_and_expired_per_pool():
    text = totals_text(days(date(2026, 1, 1), 3))
    assert text.splitlines() == ["monthly: granted 0  spent 6  expired 0", "permanent: granted 30  spent 0  expired 0"]
