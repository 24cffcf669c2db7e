"""`credits balance`, `history` and `adjust` against the Firestore emulator."""

from __future__ import annotations

from shared.ledger import collections
from shared.spending import service as spending
from tests.support.cli import credits, records_of, user_doc
from tests.support.ledger import assert_ledger_invariant


def test_an_adjustment_adds_credits_as_an_adjustment_record_naming_operator_and_reason(db, capsys):
    run = credits(
        capsys, "adjust", "u1", "--pool", "permanent", "--amount", "120",
        "--reason", "goodwill after outage", "--operator", "alice", "--json",
    )
    assert run.code == 0, run.err
    body = run.json
    assert body["replayed"] is False
    assert body["balance"]["credits_permanent"] == 120 and body["balance"]["balance"] == 120
    doc = user_doc(db, "u1")
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"]) == (0, 120, 120)
    [record] = records_of(db, "u1")
    assert record["type"] == "adjustment" and record["pool"] == "permanent" and record["amount"] == 120
    assert "alice" in record["description"] and "goodwill after outage" in record["description"]
    assert record["source"] == body["adjustment_id"]
    audit = db.collection(collections.ADJUSTMENTS).document(body["adjustment_id"]).get().to_dict()
    assert audit["operator"] == "alice" and audit["reason"] == "goodwill after outage"
    assert audit["transaction_id"] == record["transaction_id"]
    assert (record["seq"], record["balance_after"]) == (1, {"credits_monthly": 0, "credits_permanent": 120})
    assert body["transaction"]["seq"] == 1


def test_a_negative_adjustment_below_zero_is_refused_and_writes_nothing(db, capsys):
    assert credits(capsys, "adjust", "u2", "--pool", "monthly", "--amount", "30", "--reason", "r", "--operator", "bob").code == 0
    run = credits(capsys, "adjust", "u2", "--pool", "monthly", "--amount=-31", "--reason", "too much", "--operator", "bob", "--json")
    assert run.code == 3
    assert run.json["error"]["code"] == "pool_underflow"
    assert "below zero" in run.err
    assert user_doc(db, "u2")["credits_monthly"] == 30
    assert len(records_of(db, "u2")) == 1
    # Exactly down to zero is allowed.
    run = credits(capsys, "adjust", "u2", "--pool", "monthly", "--amount=-30", "--reason", "clawback", "--operator", "bob")
    assert run.code == 0, run.err
    assert user_doc(db, "u2")["credits_monthly"] == 0
    assert_ledger_invariant(db, "u2")


def test_a_negative_adjustment_for_an_unknown_user_is_refused_without_creating_one(db, capsys):
    run = credits(capsys, "adjust", "ghost", "--pool", "permanent", "--amount=-1", "--reason", "r", "--operator", "bob")
    assert run.code == 3
    assert user_doc(db, "ghost") is None


def test_the_same_idempotency_key_changes_nothing_the_second_time(db, capsys):
    argv = ["adjust", "u3", "--pool", "permanent", "--amount", "50", "--reason", "refund ticket 77",
            "--operator", "carol", "--idempotency-key", "ticket-77", "--json"]
    first = credits(capsys, *argv)
    second = credits(capsys, *argv[:-3], "--operator", "dave", "--idempotency-key", "ticket-77", "--json")
    assert first.code == 0 and second.code == 0
    assert second.json["replayed"] is True
    assert second.json["transaction"] == first.json["transaction"]
    assert user_doc(db, "u3")["credits_permanent"] == 50
    assert len(records_of(db, "u3")) == 1
    # The same key for a different adjustment is refused.
    other = credits(capsys, "adjust", "u3", "--pool", "permanent", "--amount", "51", "--reason", "refund ticket 77",
                    "--operator", "carol", "--idempotency-key", "ticket-77")
    assert other.code == 3 and "idempotency" in other.err
    assert user_doc(db, "u3")["credits_permanent"] == 50


def test_adjusting_a_legacy_user_migrates_the_balance_first(db, capsys):
    db.collection(collections.USERS).document("old").set({"user_id": "old", "balance": 70, "total_earned": 90, "total_spent": 20})
    run = credits(capsys, "adjust", "old", "--pool", "monthly", "--amount", "5", "--reason", "r", "--operator", "erin")
    assert run.code == 0, run.err
    doc = user_doc(db, "old")
    assert "balance" not in doc
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"], doc["total_spent"]) == (5, 70, 95, 20)
    assert sorted(r["type"] for r in records_of(db, "old")) == ["adjustment", "migration"]


def test_invalid_adjustments_are_usage_errors(db, capsys):
    assert credits(capsys, "adjust", "u4", "--pool", "permanent", "--amount", "0", "--reason", "r", "--operator", "x").code == 2
    assert credits(capsys, "adjust", "u4", "--pool", "permanent", "--amount", "5", "--reason", " ", "--operator", "x").code == 2
    assert credits(capsys, "adjust", "u4", "--pool", "both", "--amount", "5", "--reason", "r").code == 2
    assert credits(capsys, "adjust", "u4", "--pool", "permanent", "--amount", "1.5", "--reason", "r").code == 2
    assert user_doc(db, "u4") is None


def test_balance_and_history_show_the_stored_state_as_tables_and_json(db, capsys):
    credits(capsys, "adjust", "u5", "--pool", "permanent", "--amount", "40", "--reason", "welcome", "--operator", "x")
    spending.spend("u5", 15, "Story generation")
    run = credits(capsys, "balance", "u5", "--json")
    assert run.code == 0
    assert run.json["credits_permanent"] == 25 and run.json["total_spent"] == 15
    table = credits(capsys, "balance", "u5")
    assert "credits_permanent" in table.out and "25" in table.out

    page = credits(capsys, "history", "u5", "--limit", "1", "--json").json
    assert [t["type"] for t in page["transactions"]] == ["spent"]
    rest = credits(capsys, "history", "u5", "--limit", "1", "--page-token", page["next_page_token"], "--json").json
    assert [t["type"] for t in rest["transactions"]] == ["adjustment"] and rest["next_page_token"] is None
    table = credits(capsys, "history", "u5", "--limit", "1")
    assert "Story generation (from permanent pool)" in table.out and "--page-token" in table.out
    assert credits(capsys, "history", "u5", "--limit", "101").code == 2
    assert credits(capsys, "history", "u5", "--page-token", "forged").code == 2


def test_every_command_has_help(capsys):
    for command in ("balance", "history", "adjust", "migrate", "reconcile", "replay", "report"):
        run = credits(capsys, command, "--help")
        assert run.code == 0 and "usage: credits " + command in run.out
