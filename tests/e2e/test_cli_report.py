"""`credits report`: pool usage per day, checked against a known history on the emulator."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from shared.ledger import collections
from tests.support.cli import credits

HISTORY = [
    # (created_at, user, type, pool, amount)
    ("2026-02-28T23:59:59", "u1", "promo_grant", "permanent", 999),  # the day before: not counted
    ("2026-03-01T00:00:00", "u1", "subscription_grant", "monthly", 1000),
    ("2026-03-01T08:00:00", "u2", "promo_grant", "permanent", 200),
    ("2026-03-01T09:00:00", "u1", "spent", "permanent", -150),
    ("2026-03-01T23:59:59", "u1", "spent", "monthly", -50),
    ("2026-03-02T10:00:00", "u2", "spent", "monthly", -300),
    ("2026-03-02T11:00:00", "u2", "refund", "monthly", 20),
    ("2026-03-02T12:00:00", "u3", "adjustment", "permanent", 30),
    ("2026-03-02T12:30:00", "u3", "adjustment", "permanent", -10),
    ("2026-03-02T13:00:00", "u4", "migration", "permanent", 500),
    ("2026-03-04T00:00:01", "u1", "monthly_expired", "monthly", -670),
    ("2026-03-04T00:00:02", "u1", "subscription_grant", "monthly", 1000),
    ("2026-03-04T05:00:00", "u2", "addon_purchase", "permanent", 500),
    ("2026-03-05T00:00:00", "u2", "spent", "permanent", -1),  # the day after: not counted
]


def plant(db):
    for i, (when, user_id, kind, pool, amount) in enumerate(HISTORY):
        created = datetime.fromisoformat(when).replace(tzinfo=timezone.utc) + timedelta(microseconds=i)
        db.collection(collections.TRANSACTIONS).document(f"h{i:02d}").set(
            {"transaction_id": f"h{i:02d}", "user_id": user_id, "type": kind, "pool": pool, "amount": amount,
             "description": "", "source": None, "created_at": created}
        )


def test_the_report_counts_granted_spent_expired_and_shares_per_day_and_pool(db, capsys):
    plant(db)
    run = credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-04", "--json")
    assert run.code == 0, run.err
    days = {row["date"]: row for row in run.json["days"]}
    assert list(days) == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]

    d1 = days["2026-03-01"]
    assert (d1["monthly_granted"], d1["monthly_spent"], d1["monthly_expired"]) == (1000, 50, 0)
    assert (d1["permanent_granted"], d1["permanent_spent"], d1["permanent_other"]) == (200, 150, 0)
    assert (d1["monthly_spend_share"], d1["permanent_spend_share"], d1["total_spent"]) == (0.25, 0.75, 200)

    d2 = days["2026-03-02"]
    assert d2["monthly_spent"] == 280  # spends less refunds
    assert (d2["permanent_granted"], d2["permanent_other"]) == (30, 490)  # +30 adjustment; migration less -10
    assert (d2["monthly_spend_share"], d2["permanent_spend_share"]) == (1.0, 0.0)

    d3 = days["2026-03-03"]
    assert d3["total_spent"] == 0 and d3["monthly_spend_share"] is None and d3["permanent_spend_share"] is None

    d4 = days["2026-03-04"]
    assert (d4["monthly_granted"], d4["monthly_expired"], d4["permanent_granted"]) == (1000, 670, 500)

    total = run.json["total"]
    assert (total["monthly_granted"], total["monthly_spent"], total["monthly_expired"]) == (2000, 330, 670)
    assert (total["permanent_granted"], total["permanent_spent"], total["permanent_other"]) == (730, 150, 490)
    assert (total["monthly_spend_share"], total["permanent_spend_share"]) == (0.6875, 0.3125)


def test_the_report_as_a_table_csv_and_png(db, capsys, tmp_path):
    plant(db)
    table = credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-02")
    assert table.code == 0
    lines = table.out.splitlines()
    # The pool names head their columns on a line of their own.
    assert lines[0].split() == ["monthly", "permanent"]
    assert lines[1].split() == ["date"] + ["granted", "spent", "expired", "other", "share"] * 2
    assert lines[3].startswith("2026-03-01") and "25.0%" in lines[3] and "75.0%" in lines[3]
    assert lines[-1].startswith("total")

    out = credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-04", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [r["date"] for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert rows[0]["monthly_spend_share"] == "0.2500" and rows[2]["monthly_spend_share"] == ""
    assert rows[3]["monthly_expired"] == "670"

    path = tmp_path / "usage.csv"
    assert credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-04", "--format", "csv", "--output", str(path)).code == 0
    assert path.read_text() == out.out

    png = tmp_path / "usage.png"
    run = credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-04", "--format", "png", "--output", str(png))
    assert run.code == 0, run.err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bad_report_arguments_are_usage_errors(db, capsys):
    assert credits(capsys, "report", "--from", "2026-03-02", "--to", "2026-03-01").code == 2
    assert credits(capsys, "report", "--from", "March", "--to", "2026-03-01").code == 2
    assert credits(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-02", "--format", "png").code == 2
    assert credits(capsys, "report", "--from", "2000-01-01", "--to", "2026-03-01").code == 2


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (bytes 16 to 24, big-endian)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_png_has_one_size_for_a_week_a_quarter_and_a_year(db, capsys, tmp_path):
    plant(db)
    sizes = set()
    for first, last in (("2026-03-01", "2026-03-07"), ("2026-02-01", "2026-05-01"), ("2026-01-01", "2026-12-31")):
        path = tmp_path / f"{first}.png"
        run = credits(capsys, "report", "--from", first, "--to", last, "--format", "png", "--output", str(path))
        assert run.code == 0, run.err
        sizes.add(png_size(path.read_bytes()))
    assert sizes == {(1200, 750)}


def test_the_chart_shows_a_small_grant_beside_a_large_one_and_expiries_beside_spending():
    from datetime import date

    from matplotlib import pyplot as plt

    from shared.operations.usage_rules import DayUsage
    from tools.credits import report_render as render

    days = [DayUsage(date(2026, 3, d)) for d in range(1, 8)]
    days[0].figures["monthly"]["granted"] = 1_500
    days[0].figures["permanent"]["granted"] = 62_500
    days[2].figures["permanent"]["granted"] = -500  # a pack refunded: grants are net of it
    for day in days:
        day.figures["monthly"]["spent"], day.figures["permanent"]["spent"] = 400, 300
    days[3].figures["monthly"]["expired"] = 670
    fig = render.figure(days, "usage")
    try:
        top, bottom = fig.axes
        assert top.get_yscale() == "symlog"
        zero = top.transData.transform((0, 0))[1]

        def pixels(value):
            return abs(top.transData.transform((0, value))[1] - zero)

        # On a linear axis 1,500 would be 2.4% of 62,500's bar; here it is well over a third of it.
        assert pixels(1_500) > 0.4 * pixels(62_500) > 0
        assert pixels(-500) > 0.3 * pixels(62_500)
        labels = {text.get_text() for text in top.texts}
        assert {"1,500", "62,500", "-500"} <= labels

        series = {container.get_label(): container for container in bottom.containers}
        expired = [bar for bar in series["monthly expired"] if bar.get_height()]
        spent = [bar for name in ("spent from permanent", "spent from monthly") for bar in series[name]]
        assert len(expired) == 1
        for bar in expired:
            left, right = bar.get_x(), bar.get_x() + bar.get_width()
            assert all(other.get_x() + other.get_width() <= left or other.get_x() >= right for other in spent)
        assert "670" in {text.get_text() for text in bottom.texts}
    finally:
        plt.close(fig)
