"""`credits refund` and `credits holds` against the Firestore emulator."""

from __future__ import annotations

from datetime import timedelta

from shared.spending import holds_service
from shared.spending import service as spending
from shared.spending.holds import HoldRequest
from shared.store import client as store_client
from tests.support.cli import credits
from tests.support.ledger import assert_ledger_invariant, seed


def test_an_operator_refunds_part_of_a_spend_then_the_rest(db, capsys):
    seed("opal", monthly=50)
    spending.spend("opal", 30, "Story", "opal-story")
    run = credits(capsys, "refund", "opal", "opal-story", "--amount", "10", "--json")
    assert run.code == 0, run.err
    assert (run.json["amount"], run.json["refundable"]) == (10, 20)
    run = credits(capsys, "refund", "opal", "opal-story", "--json")
    assert run.code == 0 and run.json["refunded_total"] == 30
    run = credits(capsys, "refund", "opal", "opal-story", "--json")
    assert run.code == 3 and run.json["error"]["code"] == "refund_exceeds_spend"
    assert credits(capsys, "refund", "opal", "missing").code == 1
    assert_ledger_invariant(db, "opal")


def test_an_operator_lists_open_holds_and_sweeps_the_expired_ones(db, capsys, monkeypatch):
    seed("otto", monthly=50)
    holds_service.hold(HoldRequest("otto", 10, "otto-a", "Render", 60))
    holds_service.hold(HoldRequest("otto", 5, "otto-b", "Render", 600))
    run = credits(capsys, "holds", "list", "otto", "--json")
    assert [h["hold_id"] for h in run.json["holds"]] == ["otto-a", "otto-b"]
    real = store_client.utcnow
    for module in ("shared.store.commit", "shared.spending.holds_service"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: real() + timedelta(seconds=61))
    assert [h["hold_id"] for h in credits(capsys, "holds", "list", "otto", "--json").json["holds"]] == ["otto-b"]
    run = credits(capsys, "holds", "sweep", "--json")
    assert run.code == 0 and run.json["released"] == 1 and run.json["more"] is False
    assert credits(capsys, "holds", "sweep", "--json").json["released"] == 0
    assert "released" in credits(capsys, "holds", "sweep").out
    assert_ledger_invariant(db, "otto")
