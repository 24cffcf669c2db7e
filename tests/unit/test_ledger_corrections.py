"""Ledger corrections as plain functions: which drift a record fixes, and the change it makes."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.ledger.change import Snapshot
from shared.ledger.codec import read_account
from shared.ledger.models import CreditPool, TransactionType
from shared.operations.corrections import (
    ALREADY_MADE,
    CHANGED,
    WRITTEN,
    audit_path,
    decide_correction,
)
from shared.operations.reconcile_rules import Drift, correction
from tests.support.fake_ledger import numbered

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def user(monthly: int, permanent: int, earned: int = 0) -> dict:
    return {"user_id": "u", "credits_monthly": monthly, "credits_permanent": permanent,
            "total_earned": earned, "total_spent": 0}


def snapshot(data, documents=None) -> Snapshot:
    data = numbered(data)
    return Snapshot(read_account("u", data), data, dict(documents or {}), NOW)


def test_only_a_plain_pool_drift_gets_a_correction_of_stored_minus_ledger():
    fix = correction(Drift("u", "credits_permanent", 77, 100))
    assert (fix.pool, fix.amount, fix.field) == (CreditPool.PERMANENT, -23, "credits_permanent")
    assert correction(Drift("u", "total_earned", 90, 100)) is None
    assert correction(Drift("u", "credits_owed", 5, 0)) is None
    assert correction(Drift("u", "credits_monthly", 0, 5, "records without a user document")) is None
    assert correction(Drift("u", "credits_monthly", 0, 0, "stored value '5' is not an integer")) is None


def test_the_correction_id_is_derived_from_the_drift():
    a = correction(Drift("u", "credits_monthly", 60, 50))
    assert a.correction_id == correction(Drift("u", "credits_monthly", 60, 50)).correction_id
    assert a.correction_id != correction(Drift("u", "credits_monthly", 61, 50)).correction_id
    assert a.correction_id != correction(Drift("v", "credits_monthly", 60, 50)).correction_id


def test_a_correction_adds_a_record_and_an_audit_but_leaves_the_pools_as_stored():
    up = correction(Drift("u", "credits_monthly", 60, 50))
    down = correction(Drift("u", "credits_permanent", 15, 20))
    change = decide_correction(snapshot(user(60, 15, earned=70), {audit_path(up): None, audit_path(down): None}),
                               (up, down), "ops")
    assert [o.outcome for o in change.result] == [WRITTEN, WRITTEN]
    assert (change.account.monthly, change.account.permanent) == (60, 15)
    assert change.account.total_earned == 80  # +10 as any positive adjustment; -5 moves no total
    assert [(r.type, r.pool, r.amount, r.source) for r in change.records] == [
        (TransactionType.ADJUSTMENT, CreditPool.MONTHLY, 10, up.correction_id),
        (TransactionType.ADJUSTMENT, CreditPool.PERMANENT, -5, down.correction_id)]
    assert set(change.create) == {audit_path(up), audit_path(down)}
    assert change.create[audit_path(up)]["operator"] == "ops"
    assert change.create[audit_path(up)]["transaction_id"] == change.records[0].transaction_id


def test_a_correction_already_made_or_over_a_pool_that_moved_writes_nothing():
    fix = correction(Drift("u", "credits_permanent", 77, 100))
    made = decide_correction(snapshot(user(0, 77), {audit_path(fix): {"adjustment_id": fix.correction_id}}), (fix,), "ops")
    assert [o.outcome for o in made.result] == [ALREADY_MADE] and not made.writes_anything
    moved = decide_correction(snapshot(user(0, 70), {audit_path(fix): None}), (fix,), "ops")
    assert [o.outcome for o in moved.result] == [CHANGED] and not moved.writes_anything
    gone = decide_correction(snapshot(None, {audit_path(fix): None}), (fix,), "ops")
    assert [o.outcome for o in gone.result] == [CHANGED] and not gone.writes_anything
