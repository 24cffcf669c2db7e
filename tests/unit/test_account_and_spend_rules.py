"""The pure rules, without Firestore: spend plans, grants, migration, pool arithmetic."""

import pytest

from shared.ledger import accounts
from shared.ledger import codec
from shared.spending import rules as spending_rules
from shared.ledger.accounts import Account
from shared.spending.rules import SpendOrder
from shared.common.errors import InsufficientCredits, PoolUnderflow
from shared.ledger.models import CreditBalanceResponse, CreditPool, TransactionType

PERMANENT_FIRST = SpendOrder.PERMANENT_FIRST


def amounts(entries):
    return [(e.pool.value, e.amount) for e in entries]


def test_a_spend_the_permanent_pool_covers_draws_only_from_it():
    plan = spending_rules.plan_spend(Account("u", monthly=100, permanent=50), 30, "Story", PERMANENT_FIRST)
    assert amounts(plan) == [("permanent", -30)]
    assert plan[0].description == "Story (from permanent pool)"


def test_a_spend_larger_than_the_permanent_pool_splits_across_both_in_order():
    plan = spending_rules.plan_spend(Account("u", monthly=100, permanent=50), 80, "Story", PERMANENT_FIRST)
    assert amounts(plan) == [("permanent", -50), ("monthly", -30)]
    assert [e.description for e in plan] == ["Story (from permanent pool)", "Story (from monthly pool)"]


def test_a_spend_of_exactly_the_balance_empties_both_pools():
    account = Account("u", monthly=100, permanent=50)
    after = accounts.apply(account, spending_rules.plan_spend(account, 150, "x", PERMANENT_FIRST))
    assert (after.monthly, after.permanent, after.total_spent) == (0, 0, 150)


def test_a_spend_one_credit_short_is_refused_with_the_balance_and_the_request():
    with pytest.raises(InsufficientCredits) as refused:
        spending_rules.plan_spend(Account("u", monthly=100, permanent=50), 151, "x", PERMANENT_FIRST)
    assert refused.value.details == {"balance": 150, "requested": 151}


def test_monthly_first_flips_the_draw_order():
    plan = spending_rules.plan_spend(Account("u", monthly=10, permanent=50), 30, "x", SpendOrder.MONTHLY_FIRST)
    assert amounts(plan) == [("monthly", -10), ("permanent", -20)]


def test_a_spend_from_an_empty_pool_writes_no_zero_entry():
    plan = spending_rules.plan_spend(Account("u", monthly=40, permanent=0), 30, "x", PERMANENT_FIRST)
    assert amounts(plan) == [("monthly", -30)]


def test_grants_go_to_the_pool_their_type_belongs_to():
    assert accounts.default_pool(TransactionType.SUBSCRIPTION_GRANT) is CreditPool.MONTHLY
    assert accounts.default_pool(TransactionType.MONTHLY_EXPIRED) is CreditPool.MONTHLY
    for kind in (TransactionType.ADDON_PURCHASE, TransactionType.PROMO_GRANT, TransactionType.MIGRATION,
                 TransactionType.REFUND, TransactionType.ADJUSTMENT):
        assert accounts.default_pool(kind) is CreditPool.PERMANENT
    assert accounts.grant(TransactionType.PROMO_GRANT, 5, "promo").pool is CreditPool.PERMANENT


def test_granting_counts_toward_total_earned_and_expiry_does_not():
    account = accounts.apply(Account("u"), [accounts.grant(TransactionType.SUBSCRIPTION_GRANT, 100, "plan")])
    account = accounts.apply(account, [accounts.Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -100, "x")])
    assert (account.monthly, account.total_earned, account.total_spent) == (0, 100, 0)


def test_a_change_that_would_take_a_pool_below_zero_is_refused():
    with pytest.raises(PoolUnderflow):
        accounts.apply(Account("u", monthly=5), [accounts.Entry(TransactionType.ADJUSTMENT, CreditPool.MONTHLY, -6, "x")])


def test_a_legacy_document_reads_as_permanent_credits_and_migrates_with_one_entry():
    account = codec.read_account("u", {"balance": 70, "total_earned": 90, "total_spent": 20})
    assert (account.monthly, account.permanent, account.is_legacy) == (0, 70, True)
    migrated, entries = accounts.migrate(account)
    assert amounts(entries) == [("permanent", 70)]
    assert entries[0].type is TransactionType.MIGRATION
    assert (migrated.permanent, migrated.total_earned, migrated.total_spent, migrated.is_legacy) == (70, 90, 20, False)


def test_a_legacy_document_with_nothing_left_migrates_without_an_entry():
    migrated, entries = accounts.migrate(codec.read_account("u", {"balance": 0}))
    assert entries == [] and migrated.balance == 0 and not migrated.is_legacy


def test_a_two_pool_document_needs_no_migration():
    account = codec.read_account("u", {"credits_monthly": 1, "credits_permanent": 2, "balance": 3})
    assert accounts.migrate(account) == (account, [])


def test_entries_refuse_zero_and_non_integer_amounts():
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError):
            accounts.Entry(TransactionType.SPENT, CreditPool.MONTHLY, bad, "x")


def test_the_balance_response_has_exactly_the_contract_fields_with_balance_the_sum():
    body = CreditBalanceResponse(user_id="u", credits_monthly=100, credits_permanent=50).model_dump(mode="json")
    assert list(body) == ["user_id", "credits_monthly", "credits_permanent", "balance",
                          "total_earned", "total_spent", "last_updated", "credits_owed", "credits_held"]
    assert body["balance"] == 150 and body["last_updated"] is None
    assert body["credits_owed"] == body["credits_held"] == 0
