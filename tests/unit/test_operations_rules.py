"""The operator tools' pure rules: migration decisions, ledger comparison, usage aggregation."""

from __future__ import annotations

from datetime import date, datetime, timezone

from shared.ledger import accounts, codec
from shared.ledger.models import TransactionType
from shared.operations.migration_rules import LEGACY_EARNED, LEGACY_SPENT, MigrationAction, decide_migration
from shared.operations.reconcile_rules import LedgerSums, compare
from shared.operations.usage_rules import aggregate_usage, usage_totals


def sums(*records) -> LedgerSums:
    total = LedgerSums()
    for pool, kind, amount in records:
        total.add({"pool": pool, "type": kind, "amount": amount})
    return total


def test_a_legacy_balance_migrates_to_the_permanent_pool_keeping_its_totals_as_a_baseline():
    decision = decide_migration("u", {"balance": 40, "total_earned": 90, "total_spent": 50})
    assert decision.action is MigrationAction.MIGRATE
    assert decision.account.permanent == 40 and [e.amount for e in decision.entries] == [40]
    assert decision.user_fields == {LEGACY_EARNED: 90, LEGACY_SPENT: 50}


def test_a_legacy_document_whose_record_exists_with_its_balance_gets_pools_without_a_second_record():
    decision = decide_migration("u", {"balance": 40}, prior_migration_amounts=[40])
    assert decision.action is MigrationAction.ADOPT_RECORD and decision.entries == ()


def test_a_record_that_disagrees_with_the_legacy_balance_is_left_for_review():
    assert decide_migration("u", {"balance": 40}, [30]).action is MigrationAction.REVIEW
    assert decide_migration("u", {"balance": 2.5}).action is MigrationAction.REVIEW


def test_pools_beside_a_stray_balance_keep_the_pools_and_drop_the_field():
    decision = decide_migration("u", {"balance": 7, "credits_monthly": 1, "credits_permanent": 2})
    assert decision.action is MigrationAction.DROP_STRAY_BALANCE and decision.account.balance == 3


def test_a_migrated_or_missing_document_is_left_alone():
    assert decide_migration("u", {"credits_monthly": 0}).action is MigrationAction.ALREADY_MIGRATED
    assert decide_migration("u", None).action is MigrationAction.ABSENT


def test_a_ledger_that_explains_the_document_shows_no_drift():
    doc = {"credits_monthly": 70, "credits_permanent": 5, "total_earned": 105, "total_spent": 30}
    ledger = sums(("monthly", "subscription_grant", 100), ("monthly", "spent", -30), ("permanent", "promo_grant", 5))
    assert compare("u", doc, ledger) == []


def test_a_pool_the_ledger_does_not_explain_is_drift_with_its_difference():
    doc = {"credits_monthly": 80, "credits_permanent": 0, "total_earned": 100, "total_spent": 0}
    [drift] = compare("u", doc, sums(("monthly", "subscription_grant", 100)))
    assert (drift.field, drift.stored, drift.ledger, drift.difference) == ("credits_monthly", 80, 100, -20)


def test_records_without_a_user_document_are_drift():
    drifts = compare("ghost", None, sums(("permanent", "promo_grant", 5)))
    assert [(d.field, d.ledger) for d in drifts] == [("credits_permanent", 5)]


def test_the_legacy_baseline_is_added_to_the_ledgers_totals():
    doc = {"credits_monthly": 0, "credits_permanent": 40, "total_earned": 90, "total_spent": 50,
           LEGACY_EARNED: 90, LEGACY_SPENT: 50}
    assert compare("u", doc, sums(("permanent", "migration", 40))) == []


def test_a_function_migrating_a_zero_balance_keeps_the_legacy_totals_as_the_baseline_and_reconciles():
    legacy = {"user_id": "u", "balance": 0, "total_earned": 10, "total_spent": 10}
    account, migration = accounts.migrate(codec.read_account("u", legacy))
    assert migration == []  # a balance of 0 leaves no `migration` record
    after = accounts.apply(account, [accounts.grant(TransactionType.PROMO_GRANT, 5, "promo")])
    doc = codec.user_document(after, datetime(2026, 1, 1, tzinfo=timezone.utc), stored=legacy)
    assert (doc[LEGACY_EARNED], doc[LEGACY_SPENT], doc["total_earned"]) == (10, 10, 15)
    assert compare("u", doc, sums(("permanent", "promo_grant", 5))) == []
    # Without the baseline nothing in the document or the ledger says the 10 predate the ledger.
    bare = {k: v for k, v in doc.items() if k not in (LEGACY_EARNED, LEGACY_SPENT)}
    assert {d.field for d in compare("u", bare, sums(("permanent", "promo_grant", 5)))} == {"total_earned", "total_spent"}


def test_only_a_write_over_a_legacy_document_adds_a_baseline():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    two_pools = {"user_id": "u", "credits_monthly": 0, "credits_permanent": 3, "total_earned": 3, "total_spent": 0}
    doc = codec.user_document(codec.read_account("u", two_pools), now, stored=two_pools)
    assert LEGACY_EARNED not in doc and LEGACY_SPENT not in doc
    assert LEGACY_EARNED not in codec.user_document(codec.read_account("u", None), now, stored=None)


def test_usage_counts_each_day_and_pool_and_every_day_has_a_row():
    day = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    records = [
        {"created_at": day, "pool": "monthly", "type": "subscription_grant", "amount": 100},
        {"created_at": day, "pool": "monthly", "type": "spent", "amount": -30},
        {"created_at": day, "pool": "monthly", "type": "refund", "amount": 5},
        {"created_at": day, "pool": "permanent", "type": "spent", "amount": -10},
        {"created_at": day, "pool": "monthly", "type": "monthly_expired", "amount": -20},
        {"created_at": "not a time", "pool": "monthly", "type": "spent", "amount": -1},
    ]
    days = aggregate_usage(records, date(2026, 3, 1), date(2026, 3, 3))
    assert [d.day.day for d in days] == [1, 2, 3] and days[0].spent_total() == 0
    monthly = days[1].figures["monthly"]
    assert monthly == {"granted": 100, "spent": 25, "expired": 20, "other": 0}
    assert days[1].share("permanent") == round(10 / 35, 4)
    assert usage_totals(days, date(2026, 3, 1)).spent_total() == 35
