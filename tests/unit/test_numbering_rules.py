"""Every record's place in its user's ledger (`seq`) and the pools right after it (`balance_after`):
the pure rules, and the commit pipeline on the in-memory Firestore."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.ledger import codec, collections, holds
from shared.ledger.accounts import Account, Entry
from shared.ledger.change import Change, Snapshot
from shared.ledger.models import CreditPool, TransactionType
from shared.ledger.records import Position, UnknownPosition, check_numbering, position_of, records
from shared.spending import service as spending
from shared.spending.holds import HoldRequest, decide_hold
from shared.spending.rules import SpendOrder, SpendRequest, decide_spend
from shared.store import commit, group, pipeline
from tests.support.fake_ledger import assert_pools_match_records, numbered, seed, spend_decision
from tests.support.fake_ledger import records as stored_records

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
MONTHLY, PERMANENT = CreditPool.MONTHLY, CreditPool.PERMANENT


def entry(pool, amount, kind=TransactionType.ADJUSTMENT):
    return Entry(kind, pool, amount, "x")


def test_records_take_the_next_seqs_and_carry_the_pools_right_after_each():
    written = records("u", [entry(MONTHLY, 5), entry(PERMANENT, -2), entry(MONTHLY, -1)], "src", NOW,
                      at=Position(7, 10, 4))
    assert [r.seq for r in written] == [8, 9, 10]
    assert [(r.balance_after.credits_monthly, r.balance_after.credits_permanent) for r in written] == [
        (15, 4), (15, 2), (14, 2)]
    assert [r.created_at for r in written] == [NOW + timedelta(microseconds=i) for i in range(3)]


def test_a_user_with_no_document_starts_at_seq_zero_and_a_document_without_last_seq_is_unknown():
    assert position_of(Account("u"), None) == Position(0, 0, 0)
    assert position_of(Account("u", 3, 4), {"last_seq": 9}) == Position(9, 3, 4)
    with pytest.raises(UnknownPosition):
        position_of(Account("u", 3, 4), {"credits_monthly": 3, "credits_permanent": 4})


def test_a_legacy_balance_is_outside_the_ledger_so_its_migration_record_shows_it_arriving():
    data = numbered({"user_id": "ivy", "balance": 80})
    snap = Snapshot(codec.read_account("ivy", data), data, {}, NOW)
    change = decide_spend(snap, SpendRequest("ivy", 30), SpendOrder.PERMANENT_FIRST)
    migration, spent = change.records
    assert (migration.type, migration.seq, migration.balance_after.credits_permanent) == (
        TransactionType.MIGRATION, 1, 80)
    assert (spent.seq, spent.balance_after.credits_permanent) == (2, 50)
    # The answer lists the spend's record only, with its seq and balance_after.
    assert [(t["seq"], t["balance_after"]) for t in change.result.body["transactions"]] == [
        (2, {"credits_monthly": 0, "credits_permanent": 50})]


def test_the_pipeline_accepts_only_records_that_continue_the_stored_last_seq_and_end_at_the_pools():
    account = Account("u", 0, 10)
    good = records("u", [entry(PERMANENT, 10)], None, NOW, at=Position(4, 0, 0))
    assert check_numbering(good, 4, account) == 5
    assert check_numbering([], 4, account) == 4
    with pytest.raises(ValueError, match="not 5"):
        check_numbering(records("u", [entry(PERMANENT, 10)], None, NOW, at=Position(5, 0, 0)), 4, account)
    with pytest.raises(ValueError, match="pools the change writes"):
        check_numbering(good, 4, Account("u", 0, 11))
    skewed = [good[0], good[0].model_copy(update={"seq": 6})]
    with pytest.raises(ValueError, match="does not follow"):
        check_numbering(skewed, 4, account)
    with pytest.raises(UnknownPosition):
        pipeline.user_write(Change(result=None, account=account, records=good), NOW, {"user_id": "u"})


def test_the_user_document_keeps_the_last_seq_and_what_open_holds_take():
    data = numbered({"user_id": "u", "credits_permanent": 100})
    snap = Snapshot(codec.read_account("u", data), data, {}, NOW)
    change = decide_hold(snap, HoldRequest("u", 30, "h1"), SpendOrder.PERMANENT_FIRST)
    written = pipeline.user_write(change, NOW, data)
    assert written["last_seq"] == 1 and written["credits_held"] == 30
    assert change.result.body["balance"]["credits_held"] == 30
    assert change.result.body["balance"]["credits_owed"] == 0


def test_expired_holds_released_in_a_change_are_numbered_before_the_changes_own_records():
    data = numbered({"user_id": "u", "credits_permanent": 70, "last_seq": 3, holds.OPEN_HOLDS: {
        holds.open_hold_key("h1"): {"hold_id": "h1", "amount": 30, "description": "d", "created_at": NOW,
                                    "expires_at": NOW + timedelta(seconds=1), "drawn": [{"pool": "permanent",
                                                                                          "amount": 30}]}}})
    later = NOW + timedelta(minutes=1)
    snap = Snapshot(codec.read_account("u", data), data, {}, later)
    settled, change = commit.decide_settled(
        lambda s: decide_spend(s, SpendRequest("u", 100), SpendOrder.PERMANENT_FIRST), snap)
    assert [(r.type, r.seq, r.balance_after.credits_permanent) for r in change.records] == [
        (TransactionType.REFUND, 4, 100), (TransactionType.SPENT, 5, 0)]
    assert change.result.body["balance"]["credits_held"] == 0
    assert pipeline.user_write(change, later, data)["last_seq"] == 5


def test_a_balance_shows_what_is_owed_and_held_and_an_expired_hold_reads_as_given_back():
    data = {"user_id": "u", "credits_permanent": 5, "credits_owed": 7, "credits_owed_by": {"ch_1": 7},
            holds.OPEN_HOLDS: {"a": {"amount": 4, "expires_at": NOW + timedelta(minutes=5)},
                               "b": {"amount": 6, "expires_at": NOW - timedelta(minutes=5)}}}
    assert codec.held(data) == 10 and codec.held(data, NOW) == 4 and codec.held(None) == 0
    view = codec.stored_balance_view("u", data)
    assert (view["credits_owed"], view["credits_held"]) == (7, 10)


# -- the commit pipeline, on the in-memory Firestore ---------------------------------------------


def test_each_commit_numbers_on_from_the_document_with_no_read_of_the_records(fake_db):
    seed("ann", 10)
    for n in range(3):
        decide, reads = spend_decision("ann", 2, key=f"k{n}")
        commit.change_user("ann", decide, reads=reads, operation="spend")
    assert sorted(r["seq"] for r in stored_records(fake_db, "ann")) == [1, 2, 3, 4]
    assert fake_db.doc(collections.user("ann"))["last_seq"] == 4
    assert_pools_match_records(fake_db, "ann")


def test_spends_committed_together_are_numbered_and_timed_in_answer_order(fake_db):
    seed("ann", 10)
    waiting = []
    for n in range(3):
        decide, reads = spend_decision("ann", 1, key=f"q{n}")
        ask = group._Ask(decide, reads)
        group._queues.setdefault("ann", []).append(ask)
        waiting.append(ask)
    last = spending.spend("ann", 2, idempotency_key="q3")
    answered = [ask.result.body["transactions"][0] for ask in waiting] + last.body["transactions"]
    assert [t["seq"] for t in answered] == [2, 3, 4, 5]
    assert [t["balance_after"]["credits_permanent"] for t in answered] == [9, 8, 7, 5]
    stamps = [t["created_at"] for t in answered]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    assert_pools_match_records(fake_db, "ann")
