"""The rules of refunds, holds and previews as plain functions: no emulator, no commit."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.common.errors import (
    CaptureExceedsHold,
    HoldNotOpen,
    InsufficientCredits,
    RefundExceedsSpend,
    SpendNotFound,
    TooManyHolds,
)
from shared.ledger import collections, holds
from shared.ledger.change import Snapshot
from shared.ledger.codec import MONTHLY_RESET_AT, read_account
from shared.ledger.models import CreditPool, TransactionType
from shared.spending.holds import (
    HoldRequest,
    SettleRequest,
    decide_hold,
    decide_settle,
    decide_sweep,
)
from shared.spending.refunds import RefundRequest, decide_refund
from shared.spending.rules import SpendOrder, SpendRequest, decide_spend, preview_spend
from tests.support.fake_ledger import numbered

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
M, P = CreditPool.MONTHLY, CreditPool.PERMANENT
ORDER = SpendOrder.PERMANENT_FIRST


def snapshot(user_id, data=None, documents=None, now=NOW) -> Snapshot:
    data = numbered(data)
    return Snapshot(read_account(user_id, data), data, dict(documents or {}), now)


def user(monthly=0, permanent=0, **extra):
    return {"user_id": "u", "credits_monthly": monthly, "credits_permanent": permanent, **extra}


def moves(entries):
    return [(e.type.value, e.pool.value, e.amount) for e in entries]


def test_giving_back_takes_the_pool_drawn_last_first():
    drawn = [(P, 20), (M, 30)]
    assert moves(holds.give_back(drawn, {}, 10, "R", False)) == [("refund", "monthly", 10)]
    assert moves(holds.give_back(drawn, {M: 30}, 15, "R", False)) == [("refund", "permanent", 15)]
    assert moves(holds.give_back(drawn, {}, 50, "R", False)) == [("refund", "monthly", 30), ("refund", "permanent", 20)]
    with pytest.raises(ValueError):
        holds.give_back(drawn, {M: 30, P: 20}, 1, "R", False)


def test_monthly_credits_given_back_after_a_reset_expire_at_once():
    entries = holds.give_back([(P, 5), (M, 10)], {}, 15, "R", True)
    assert moves(entries) == [("refund", "monthly", 10), ("monthly_expired", "monthly", -10), ("refund", "permanent", 5)]
    assert holds.refunded_by(entries) == {M: 10, P: 5}


def spend_marker(user_id="u", created_at=NOW, transactions=None):
    transactions = transactions or [{"type": "spent", "pool": "permanent", "amount": -20},
                                    {"type": "spent", "pool": "monthly", "amount": -30}]
    return {"user_id": user_id, "created_at": created_at, "response": json.dumps({"transactions": transactions})}


def refund_snapshot(data, marker, given=None, hold=None, key="s1"):
    return snapshot("u", data, {
        collections.spend_key(key): marker,
        collections.spend_refunds(key): given,
        collections.hold(key): hold,
    })


def test_a_refund_never_exceeds_what_remains_of_the_spend():
    snap = refund_snapshot(user(10, 0), spend_marker(), {"given_back": {"monthly": 30, "permanent": 5}})
    change = decide_refund(snap, RefundRequest("u", "s1"))
    assert change.result.body["amount"] == 15 and change.result.body["refundable"] == 0
    assert change.account.permanent == 15
    with pytest.raises(RefundExceedsSpend) as err:
        decide_refund(snap, RefundRequest("u", "s1", amount=16))
    assert err.value.details["refundable"] == 15


def test_a_refund_of_another_user_s_spend_or_an_unknown_key_is_not_found():
    with pytest.raises(SpendNotFound):
        decide_refund(refund_snapshot(user(), spend_marker(user_id="v")), RefundRequest("u", "s1"))
    with pytest.raises(SpendNotFound):
        decide_refund(refund_snapshot(user(), None), RefundRequest("u", "s1"))


def test_a_refund_of_a_spend_from_before_the_reset_expires_its_monthly_part():
    data = user(100, 0, **{MONTHLY_RESET_AT: NOW})
    change = decide_refund(refund_snapshot(data, spend_marker(created_at=NOW - timedelta(days=3))), RefundRequest("u", "s1"))
    assert [(r.type, r.amount) for r in change.records] == [
        (TransactionType.REFUND, 30), (TransactionType.MONTHLY_EXPIRED, -30), (TransactionType.REFUND, 20)]
    assert (change.account.monthly, change.account.permanent) == (100, 20)


def test_an_open_hold_has_nothing_refundable_until_captured():
    snap = refund_snapshot(user(), spend_marker(), hold={"status": "held"})
    with pytest.raises(RefundExceedsSpend):
        decide_refund(snap, RefundRequest("u", "s1"))


def test_a_preview_is_the_spend_s_decision_with_nothing_to_write():
    snap = snapshot("u", user(100, 20))
    preview = preview_spend(snap, SpendRequest("u", 50, "Story"), ORDER)
    assert not preview.writes_anything
    spent = decide_spend(snap, SpendRequest("u", 50, "Story"), ORDER)
    assert [(t["pool"], t["amount"]) for t in preview.result.body["transactions"]] == [
        (r.pool.value, r.amount) for r in spent.records]
    assert preview.result.body["balance"] == spent.result.body["balance"] | {"last_updated": preview.result.body["balance"]["last_updated"]}
    with pytest.raises(InsufficientCredits):
        preview_spend(snap, SpendRequest("u", 121), ORDER)


def held(data, request=HoldRequest("u", 30, "h1", expires_in=60)):
    change = decide_hold(snapshot("u", data, {request.command.path: None}), request, ORDER)
    after = {**user(change.account.monthly, change.account.permanent), **change.user_fields}
    return change, after


def test_a_hold_takes_credits_like_a_spend_and_lists_itself_on_the_user():
    change, after = held(user(20, 20))
    assert moves_of(change.records) == [("spent", "permanent", -20), ("spent", "monthly", -10)]
    [entry] = after[holds.OPEN_HOLDS].values()
    assert entry["drawn"] == [{"pool": "permanent", "amount": 20}, {"pool": "monthly", "amount": 10}]
    assert change.create[collections.hold("h1")]["status"] == "held"


def moves_of(records):
    return [(r.type.value, r.pool.value, r.amount) for r in records]


def test_a_user_keeps_a_bounded_number_of_open_holds():
    many = {f"k{i}": {"expires_at": NOW + timedelta(hours=1)} for i in range(holds.MAX_OPEN_HOLDS)}
    with pytest.raises(TooManyHolds):
        held(user(100, 0, open_holds=many))


def hold_doc(change):
    return change.create[collections.hold("h1")]


def test_a_capture_keeps_part_and_gives_the_rest_back_then_replays_and_refuses_other_settlements():
    change, after = held(user(20, 20))
    docs = {collections.hold("h1"): hold_doc(change), collections.spend_refunds("h1"): None}
    capture = decide_settle(snapshot("u", after, docs), SettleRequest("h1", amount=12))
    assert moves_of(capture.records) == [("refund", "monthly", 10), ("refund", "permanent", 8)]
    assert capture.user_fields[holds.OPEN_HOLDS] == {}
    settled = {collections.hold("h1"): capture.overwrite[collections.hold("h1")]}
    again = decide_settle(snapshot("u", after, settled), SettleRequest("h1", amount=12))
    assert again.result.replayed and not again.writes_anything
    with pytest.raises(HoldNotOpen) as err:
        decide_settle(snapshot("u", after, settled), SettleRequest("h1", release=True))
    assert err.value.details["status"] == "captured"
    with pytest.raises(CaptureExceedsHold):
        decide_settle(snapshot("u", after, docs), SettleRequest("h1", amount=31))


def test_an_expired_hold_counts_as_given_back_and_the_next_change_writes_it():
    change, after = held(user(20, 20))
    later = NOW + timedelta(seconds=61)
    assert holds.effective_account("u", after, later).balance == 40
    assert holds.effective_account("u", after, NOW).balance == 10
    settled, released = holds.settle_expired(snapshot("u", after, {collections.hold("h1"): hold_doc(change)}, later))
    assert settled.account.balance == 40 and settled.released == ("h1",)
    assert settled.documents[collections.hold("h1")]["status"] == "expired"
    sweep = released.merge(decide_sweep(settled))
    assert moves_of(sweep.records) == [("refund", "monthly", 10), ("refund", "permanent", 20)]
    assert sweep.user_fields[holds.OPEN_HOLDS] == {}
    # A decision that writes nothing to the account leaves the release for later.
    nothing = released.merge(decide_sweep(snapshot("u", user(), {}, later)))
    assert not nothing.writes_anything
