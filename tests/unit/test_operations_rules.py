"""The operator tools' pure rules: migration decisions, ledger comparison, usage aggregation."""

from __future__ import annotations

from datetime import date, datetime, timezone

from shared.ledger import accounts, codec
from shared.ledger.models import TransactionType
from shared.operations.migration_rules import (LEGACY_EARNED, LEGACY_SPENT, MigrationAction, decide_migration,
                                               plan_numbering)
from shared.operations.reconcile_rules import SEQUENCE, LedgerSums, compare, correction, sequence_drift
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


# -- numbering: seq and balance_after ----------------------------------------------------------

T1 = datetime(2025, 1, 1, tzinfo=timezone.utc)
T2 = datetime(2025, 1, 2, tzinfo=timezone.utc)
DOC = {"user_id": "u", "credits_monthly": 10, "credits_permanent": 15, "last_seq": 3}


def record(pool, amount, created_at=T1, seq=None, after=None):
    data = {"pool": pool, "type": "adjustment", "amount": amount, "created_at": created_at}
    if seq is not None:
        data["seq"] = seq
    if after is not None:
        data["balance_after"] = {"credits_monthly": after[0], "credits_permanent": after[1]}
    return data


def test_records_from_before_seq_are_numbered_first_by_time_then_the_numbered_ones_in_seq_order():
    found = {"b": record("permanent", 20, T1), "a": record("monthly", 10, T2),
             "c": record("permanent", -5, T2, seq=3, after=(10, 15))}
    plan = plan_numbering(DOC, found)
    # b came first in time; c was numbered after both, and its numbers stand.
    assert plan.numbers == {"b": (1, {"credits_monthly": 0, "credits_permanent": 20}),
                            "a": (2, {"credits_monthly": 10, "credits_permanent": 20})}
    assert (plan.last_seq, plan.document, plan.needed) == (3, False, True)


def test_a_numbered_ledger_plans_nothing_and_a_legacy_or_absent_document_is_left_alone():
    found = {"a": record("monthly", 10, seq=1, after=(10, 0)), "b": record("permanent", 15, seq=2, after=(10, 15))}
    assert not plan_numbering({**DOC, "last_seq": 2}, found).needed
    # A document that says another last_seq is set right; one that says none learns it on its next change.
    assert plan_numbering(DOC, found).document is True
    assert not plan_numbering({k: v for k, v in DOC.items() if k != "last_seq"}, found).needed
    assert not plan_numbering({"balance": 10}, {"a": record("permanent", 10)}).needed
    assert not plan_numbering(None, {"a": record("permanent", 10)}).needed


def test_a_gap_or_a_wrong_balance_after_is_numbered_again_from_the_first_record():
    found = {"a": record("monthly", 10, seq=1, after=(10, 0)), "b": record("permanent", 15, seq=3, after=(10, 15)),
             "c": record("permanent", 5, seq=4, after=(0, 0))}
    plan = plan_numbering({**DOC, "last_seq": 4}, found)
    assert plan.numbers == {"b": (2, {"credits_monthly": 10, "credits_permanent": 15}),
                            "c": (3, {"credits_monthly": 10, "credits_permanent": 20})}
    assert (plan.last_seq, plan.document) == (3, True)


def numbered_sums(*entries) -> LedgerSums:
    """Sums of (seq, pool, amount, balance_after) records."""
    total = LedgerSums()
    for i, (seq, pool, amount, after) in enumerate(entries):
        total.add({"transaction_id": f"t{i}", "type": "adjustment", **record(pool, amount, seq=seq, after=after)})
    return total


def test_reconcile_finds_records_without_seq_a_gap_a_repeat_a_broken_chain_and_a_wrong_last_seq():
    doc = {"user_id": "u", "credits_monthly": 10, "credits_permanent": 5, "last_seq": 2}
    fine = numbered_sums((1, "monthly", 10, (10, 0)), (2, "permanent", 5, (10, 5)))
    assert sequence_drift("u", doc, fine) == []

    def found(drifts):
        return [(d.kind, d.field, d.stored, d.ledger) for d in drifts]

    lacking = numbered_sums((1, "monthly", 10, (10, 0)), (None, "permanent", 5, None))
    assert found(sequence_drift("u", doc, lacking)) == [(SEQUENCE, "seq", 1, 2)]
    gap = numbered_sums((1, "monthly", 10, (10, 0)), (3, "permanent", 5, (10, 5)))
    assert found(sequence_drift("u", doc, gap)) == [(SEQUENCE, "seq", 3, 2)]
    repeat = numbered_sums((1, "monthly", 10, (10, 0)), (1, "permanent", 5, (10, 5)))
    assert "repeats" in sequence_drift("u", doc, repeat)[0].note
    chain = numbered_sums((1, "monthly", 10, (10, 0)), (2, "permanent", 5, (10, 6)))
    assert found(sequence_drift("u", doc, chain)) == [(SEQUENCE, "balance_after.credits_permanent", 6, 5)]
    assert found(sequence_drift("u", {**doc, "last_seq": 5}, fine)) == [(SEQUENCE, "last_seq", 5, 2)]
    # Records without a user document, or beside a legacy one, are drift already; a document
    # without last_seq learns it on its next change.
    assert sequence_drift("u", None, lacking) == sequence_drift("u", {"balance": 5}, lacking) == []
    assert sequence_drift("u", {k: v for k, v in doc.items() if k != "last_seq"}, fine) == []
    # Sequence drift is reported, never corrected by a record.
    assert correction(sequence_drift("u", doc, chain)[0]) is None
