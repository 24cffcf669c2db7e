"""Every table the operator command prints fits 100 columns, however long the text in it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.billing import service as webhooks
from shared.common import settings
from shared.ledger import collections
from shared.spending import holds_service
from shared.spending import service as spending
from shared.spending.holds import HoldRequest
from tests.support.cli import credits
from tests.support.functions import function_app
from tests.support.ledger import seed
from tests.support.promo import push_body
from tools.local import stripe_events as sf

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 100
# As long as the API allows: a user id of 128 characters, a description of 500.
LONG_USER = "u" + "x" * 127
LONG_TEXT = ("Generated a long illustrated story about a lighthouse keeper and the sea " * 7)[:500]


def assert_fits(text: str) -> None:
    too_long = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not too_long, f"{len(too_long)} lines over {WIDTH} characters, e.g. {too_long[0]!r}"


def test_history_wraps_long_descriptions_within_100_columns(db, capsys):
    seed(LONG_USER, monthly=500)
    spending.spend(LONG_USER, 30, LONG_TEXT, "k" * 255)
    spending.spend(LONG_USER, 5, "short")
    run = credits(capsys, "history", LONG_USER)
    assert run.code == 0, run.err
    assert_fits(run.out)
    # Wrapped, not cut: every word of the description is still there.
    assert run.out.count("lighthouse") == LONG_TEXT.count("lighthouse")
    assert "short (from monthly pool)" in run.out


def test_holds_list_fits_100_columns(db, capsys):
    seed("hold-user", monthly=50)
    holds_service.hold(HoldRequest("hold-user", 10, "h" * 120, LONG_TEXT, 600))
    run = credits(capsys, "holds", "list", "hold-user")
    assert run.code == 0, run.err
    assert_fits(run.out)
    assert "lighthouse" in run.out


@pytest.fixture
def example_catalog(monkeypatch):
    monkeypatch.setenv("CREDITS_CATALOG", str(ROOT / "config" / "catalog.example.json"))
    settings.reset()
    yield
    monkeypatch.undo()
    settings.reset()


def test_replay_listing_and_results_fit_100_columns(db, capsys, example_catalog):
    line = sf.invoice_line("current", "price_unknown_" + "p" * 80, sf.period(1), "sub_w")
    evt = sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], "sub_w", "cus_w", LONG_USER))
    assert webhooks.handle(evt, json.dumps(evt)).outcome == "unapplied"
    response = function_app("promo_grant").test_client().post("/", json=push_body(b"{" + b"x" * 400, "width-1"))
    assert response.status_code == 200
    listed = credits(capsys, "replay")
    assert listed.code == 1 and evt["id"] in listed.out
    assert_fits(listed.out)
    replayed = credits(capsys, "replay", "--all")
    assert replayed.code == 1
    assert_fits(replayed.out)


def test_reconcile_and_health_fit_100_columns(db, capsys):
    seed(LONG_USER, permanent=100)
    db.collection(collections.USERS).document(LONG_USER).update({"credits_permanent": 77})
    run = credits(capsys, "reconcile", "--no-progress")
    assert run.code == 1 and "credits_permanent" in run.out
    assert_fits(run.out)
    health = credits(capsys, "health")
    assert_fits(health.out)
    assert "nothing needs attention" in health.out


def test_the_report_table_fits_100_columns(db, capsys):
    seed("reporter", monthly=1_000_000, permanent=2_000_000)
    spending.spend("reporter", 1_234_567, "work")
    run = credits(capsys, "report", "--from", "2026-01-01")
    assert run.code == 0, run.err
    assert_fits(run.out)
    assert run.out.splitlines()[-1].startswith("total")


TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ")


def test_history_shows_whole_times_and_types_beside_long_sources(db, capsys):
    seed(LONG_USER, monthly=500)
    for n in range(3):
        spending.spend(LONG_USER, 5 + n, LONG_TEXT, f"{n}" + "k" * 254)
    run = credits(capsys, "history", LONG_USER)
    assert run.code == 0, run.err
    assert_fits(run.out)
    records = [line for line in run.out.splitlines() if line[:1].isdigit()]
    assert len(records) == 4  # the seed's grant and three spends
    assert all(TIME.match(line) for line in records), records
    assert "subscription_grant" in run.out and "spent" in run.out


def test_health_shows_whole_check_names(db, capsys):
    from shared.operations import health

    run = credits(capsys, "health")
    assert_fits(run.out)
    names = list(health.check().as_dict()["checks"])
    assert names and all(re.search(rf"^{name}\s", run.out, re.M) for name in names), run.out


def test_balance_lists_each_debt_on_a_line_of_its_own(db, capsys):
    seed("debtor", permanent=10)
    db.collection(collections.USERS).document("debtor").update(
        {"credits_owed": 1600, "credits_owed_by": {"ch_" + "c" * 40: 1000, "dp_dispute_1": 600}})
    run = credits(capsys, "balance", "debtor")
    assert run.code == 0, run.err
    assert_fits(run.out)
    assert "{" not in run.out and "'" not in run.out
    lines = run.out.splitlines()
    assert next(line for line in lines if line.startswith("credits_owed ")).split() == ["credits_owed", "1600"]
    debts = lines[lines.index(next(line for line in lines if line.startswith("owed for"))) + 2:]
    assert [line.split() for line in debts] == [["ch_" + "c" * 40, "1000"], ["dp_dispute_1", "600"]]
    assert "last_updated" in run.out
