"""The pure rules of money back: take-back, debt and its collection, refunds and disputes of a
pack's payment, pauses, and cancellations when another subscription holds the pool."""

from __future__ import annotations

import pytest

import itertools

from shared.billing import events as stripe_events
from shared.billing import payments
from shared.billing.events import Charge, Dispute
from shared.billing.payments import Payment
from shared.ledger import accounts, codec
from shared.ledger.accounts import Account, Entry
from shared.ledger.models import CreditPool, TransactionType
from tools.local import stripe_events as sf
from tests.support.fake_ledger import numbered

GRANT = TransactionType.PROMO_GRANT


def kinds(entries):
    return [(e.type.value, e.pool.value, e.amount, e.source) for e in entries]


def charge(refunded: int, amount: int = 1000, charge_id: str = "ch_1") -> Charge:
    return Charge(charge_id, "pi_1", amount, refunded, None, None)


def applied(granted: int = 500) -> Payment:
    return Payment("pi_1", user_id="u", session_id="cs_1", granted=granted)


def test_a_take_back_draws_permanent_then_monthly_and_owes_the_rest():
    account = Account("u", monthly=100, permanent=150)
    after, entries = accounts.take_back(account, 400, "ch_1", "refund")
    assert kinds(entries) == [("addon_refunded", "permanent", -150, "ch_1"), ("addon_refunded", "monthly", -100, "ch_1")]
    assert (after.monthly, after.permanent, after.owed, after.owed_by) == (0, 0, 150, (("ch_1", 150),))


def test_a_grant_pays_debts_oldest_source_first_from_its_own_pool_and_amount():
    account = Account("u", monthly=0, permanent=40, owed_by=(("ch_a", 30), ("dp_b", 50)))
    entry = accounts.grant(TransactionType.SUBSCRIPTION_GRANT, 60, "renewal")
    after, entries = accounts.grant_and_collect(account, [entry])
    assert kinds(entries[1:]) == [("addon_refunded", "monthly", -30, "ch_a"), ("addon_refunded", "monthly", -30, "dp_b")]
    assert (after.monthly, after.permanent, after.owed_by) == (0, 40, (("dp_b", 20),))
    # A debt collected lowers total_earned: it stays the net of what was granted.
    assert after.total_earned == 0


def test_a_spend_or_a_negative_adjustment_collects_nothing():
    account = Account("u", permanent=100, owed_by=(("ch_a", 30),))
    entry = Entry(TransactionType.ADJUSTMENT, CreditPool.PERMANENT, -10, "fix")
    after, entries = accounts.grant_and_collect(account, [entry])
    assert len(entries) == 1 and after.owed == 30


def test_a_reinstatement_cancels_its_own_debt_first_and_gives_back_the_rest():
    account = Account("u", permanent=0, owed_by=(("ch_a", 5), ("dp_1", 200)))
    after, entries = accounts.reinstate(account, 500, "dp_1", "won")
    assert kinds(entries) == [("addon_reinstated", "permanent", 300, "dp_1")]
    assert after.owed_by == (("ch_a", 5),) and after.permanent == 300


def test_the_ledger_totals_count_take_backs_against_total_earned():
    assert accounts.totals_change(TransactionType.ADDON_REFUNDED, -70) == (-70, 0)
    assert accounts.totals_change(TransactionType.ADDON_REINSTATED, 70) == (70, 0)


def test_partial_refunds_in_any_order_and_repeated_converge_on_the_proportional_total():
    facts = [charge(100), charge(250), charge(333)]
    results = set()
    for order in itertools.permutations(facts + facts):
        payment, account, taken = applied(), Account("u", permanent=500), 0
        for fact in order:
            if payments.note_charge(payment, fact) == payments.NEW:
                account, entries = payments.settle(payment, account)
                taken -= sum(e.amount for e in entries)
        results.add((taken, payment.refund_claimed, account.permanent))
    # floor(500 x 333 / 1000) = 166
    assert results == {(166, 166, 334)}


def test_an_older_refund_total_is_older_and_the_same_total_is_the_same():
    payment = applied()
    assert payments.note_charge(payment, charge(300)) == payments.NEW
    assert payments.note_charge(payment, charge(300)) == payments.SAME
    assert payments.note_charge(payment, charge(100)) == payments.OLDER


def test_a_dispute_takes_what_refunds_left_and_gives_it_back_when_won():
    payment, account = applied(), Account("u", permanent=500)
    payments.note_charge(payment, charge(400))
    account, _ = payments.settle(payment, account)
    assert account.permanent == 300
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "needs_response"), closed=False)
    account, entries = payments.settle(payment, account)
    assert kinds(entries) == [("addon_refunded", "permanent", -300, "dp_1")]
    assert payments.claimed_total(payment) == 500
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "won"), closed=True)
    account, entries = payments.settle(payment, account)
    assert kinds(entries) == [("addon_reinstated", "permanent", 300, "dp_1")]
    assert account.permanent == 300


def test_a_refund_after_a_lost_dispute_takes_nothing_more():
    payment, account = applied(), Account("u", permanent=500)
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "needs_response"), closed=False)
    account, _ = payments.settle(payment, account)
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "lost"), closed=True)
    account, entries = payments.settle(payment, account)
    assert entries == []
    payments.note_charge(payment, charge(1000))
    account, entries = payments.settle(payment, account)
    assert entries == [] and account.permanent == 0 and payments.claimed_total(payment) == 500


def test_a_refund_during_a_dispute_is_claimed_once_the_dispute_is_won():
    payment, account = applied(), Account("u", permanent=500)
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "needs_response"), closed=False)
    account, _ = payments.settle(payment, account)
    payments.note_charge(payment, charge(500))
    account, entries = payments.settle(payment, account)
    assert entries == []
    payments.note_dispute(payment, Dispute("dp_1", "ch_1", "pi_1", "won"), closed=True)
    account, entries = payments.settle(payment, account)
    assert sum(e.amount for e in entries) == 500 - 250
    assert account.permanent == 250


@pytest.mark.parametrize("won_first", [False, True], ids=["created, then won", "won, then created"])
def test_a_won_dispute_leaves_the_same_pools_whether_its_close_comes_first_or_last(won_first):
    # 400 of the pack were spent: the dispute takes 100 permanent, 300 monthly and owes 100; the
    # win cancels the debt and gives 400 back to the permanent pool, in either order.
    payment = applied(500)
    account = Account("u", monthly=300, permanent=100)
    created, won = Dispute("dp_1", "ch_1", "pi_1", None), Dispute("dp_1", "ch_1", "pi_1", "won")
    facts = [(won, True), (created, False)] if won_first else [(created, False), (won, True)]
    for dispute, closed in facts:
        payments.note_dispute(payment, dispute, closed)
        account, _ = payments.settle(payment, account)
    assert (account.monthly, account.permanent, account.owed) == (0, 400, 0)
    assert payments.claimed_total(payment) == 0


def test_pending_facts_survive_the_document_round_trip():
    payment = Payment("pi_1")
    payments.note_charge(payment, charge(1000))
    again = Payment.from_dict("pi_1", payment.to_dict(now=None))
    assert again.charges == {"ch_1": {"amount": 1000, "amount_refunded": 1000}} and not again.applied


def test_the_user_document_keeps_the_debt_by_source_and_clears_it_to_zero():
    account = Account("u", owed_by=(("ch_1", 7),))
    data = codec.user_document(account, now=None)
    assert (data["credits_owed"], data["credits_owed_by"]) == (7, {"ch_1": 7})
    assert codec.read_account("u", data).owed_by == (("ch_1", 7),)
    paid = codec.user_document(Account("u"), now=None, stored=data)
    assert (paid["credits_owed"], paid["credits_owed_by"]) == (0, {})
    assert "credits_owed" not in codec.user_document(Account("u"), now=None, stored={"user_id": "u"})


def test_charge_and_dispute_readers_take_the_fixture_structures():
    obj = sf.fixture("2026-07-29.dahlia/charge.json")
    obj.update(id="ch_x", payment_intent="pi_x", amount=1999, amount_refunded=500)
    assert stripe_events.charge(obj) == Charge("ch_x", "pi_x", 1999, 500, None, None)
    old = sf.fixture("2025-02-24.acacia/charge.json")
    old.update(invoice="in_sub", payment_intent={"id": "pi_y", "object": "payment_intent"})
    assert (stripe_events.charge(old).invoice_id, stripe_events.charge(old).payment_intent) == ("in_sub", "pi_y")
    dispute = sf.fixture("2026-07-29.dahlia/dispute.json")
    dispute.update(payment_intent="pi_x", status="won")
    assert stripe_events.dispute(dispute) == Dispute(dispute["id"], dispute["charge"], "pi_x", "won")


def _snap(data, documents=None):
    from datetime import datetime, timezone

    from shared.ledger.change import Snapshot

    data = numbered(data)
    return Snapshot(codec.read_account("u", data), data, dict(documents or {}), datetime(2026, 1, 1, tzinfo=timezone.utc))


OWING = {"user_id": "u", "credits_monthly": 0, "credits_permanent": 0, "credits_owed": 120,
         "credits_owed_by": {"ch_old": 120}}


def test_a_promo_grant_pays_the_debt_in_its_own_change():
    from shared.common import ids
    from shared.ledger import collections
    from shared.promotions.schemas import PromoMessage
    from shared.promotions.service import decide_grant

    message = PromoMessage(grant_id="g1", user_ids=["u"], amount=100)
    record_path = collections.transaction(ids.grant_record_id("g1", "u"))
    change = decide_grant(_snap(OWING, {record_path: None}), message, "u")
    assert [(r.type.value, r.amount, r.source) for r in change.records] == [
        ("promo_grant", 100, "g1"), ("addon_refunded", -100, "ch_old")]
    assert change.account.permanent == 0 and change.account.owed_by == (("ch_old", 20),)


def test_a_positive_adjustment_pays_the_debt_and_reports_its_own_record():
    from shared.operations.adjustments import decide_adjustment, validate

    request = validate("u", "monthly", 200, "goodwill", "ops")
    change = decide_adjustment(_snap(OWING, {request.command.path: None}), request)
    assert change.result.transaction["type"] == "adjustment" and change.result.transaction["amount"] == 200
    assert change.account.monthly == 80 and change.account.owed_by == ()
    assert [r.source for r in change.records] == [request.adjustment_id, "ch_old"]


def test_reconciliation_accounts_for_what_is_owed_by_what_payments_claimed():
    from shared.operations.reconcile_rules import LedgerSums, owed_drift

    sums = LedgerSums()
    for record in ({"type": "addon_refunded", "pool": "permanent", "amount": -380, "source": "ch_1"},):
        sums.add(record)
    payment = {"charges": {"ch_1": {"amount": 1000, "amount_refunded": 1000}}, "refund_claimed": 500, "disputes": {}}
    doc = {"user_id": "u", "credits_owed": 120, "credits_owed_by": {"ch_1": 120}}
    assert owed_drift("u", doc, sums, [payment]) == []
    short = {"user_id": "u", "credits_owed": 100, "credits_owed_by": {"ch_1": 100}}
    [drift] = owed_drift("u", short, sums, [payment])
    assert (drift.field, drift.stored, drift.ledger) == ("credits_owed", 100, 120)
    garbled = {"user_id": "u", "credits_owed": 7, "credits_owed_by": {"ch_1": 120}}
    assert "sum of credits_owed_by" in owed_drift("u", garbled, sums, [payment])[0].note


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund of A, then B", "B, then refund of A"])
def test_a_take_back_splits_pools_by_what_stands_when_it_applies_but_the_total_is_the_same(refund_first):
    # docs/stripe.md's table: 300 monthly, pack A (500) spent, A refunded in full, pack B bought.
    account = Account("u", monthly=300, permanent=0)
    pack_a = applied(500)
    pack_b = accounts.grant(TransactionType.ADDON_PURCHASE, 500, "pack B")
    steps = ["refund", "grant"] if refund_first else ["grant", "refund"]
    for step in steps:
        if step == "refund":
            payments.note_charge(pack_a, charge(1000))
            account, _ = payments.settle(pack_a, account)
        else:
            account, _ = accounts.grant_and_collect(account, [pack_b])
    expected = (0, 300) if refund_first else (300, 0)
    assert (account.monthly, account.permanent, account.owed) == (*expected, 0)
