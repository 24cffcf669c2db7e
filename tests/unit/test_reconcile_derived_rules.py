"""The pure rules that check what is derived from the ledger: a spend's give-back totals, holds and
add-on payments against the user's records."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from shared.common import ids
from shared.operations.reconcile_rules import (
    ACCOUNT,
    HOLD,
    PAYMENT,
    SPEND_REFUNDS,
    Derived,
    Drift,
    LedgerSums,
    correction,
    holds_drift,
    payments_drift,
    spend_refunds_drift,
    user_drift,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ledger(*records, wanted=None) -> LedgerSums:
    """Sums of (type, pool, amount, source) records, each with an id of its own, numbered in order
    with their running sums as the store writes them."""
    sums = LedgerSums(wanted=wanted)
    running = {"monthly": 0, "permanent": 0}
    for i, (kind, pool, amount, source) in enumerate(records):
        running[pool] += amount
        sums.add({"transaction_id": f"t{i}", "type": kind, "pool": pool, "amount": amount, "source": source,
                  "seq": i + 1, "balance_after": {"credits_monthly": running["monthly"],
                                                  "credits_permanent": running["permanent"]}})
    return sums


def given_back(key, monthly=0, permanent=0, total=None):
    return {"spend_key": key, "user_id": "u", "given_back": {"monthly": monthly, "permanent": permanent},
            "total": monthly + permanent if total is None else total}


def found(drifts):
    return {(d.kind, d.subject, d.field, d.stored, d.ledger) for d in drifts}


# A spend of 50 (30 permanent, then 20 monthly) refunded twice: 15, then 10.
SPEND = [("spent", "permanent", -30, "k"), ("spent", "monthly", -20, "k"),
         ("refund", "monthly", 15, "k"), ("refund", "monthly", 5, "k"), ("refund", "permanent", 5, "k")]


def test_a_spends_refunded_totals_that_match_its_refund_records_are_no_drift():
    assert spend_refunds_drift("u", ledger(*SPEND), [given_back("k", monthly=20, permanent=5)]) == []


def test_refunded_totals_that_differ_from_the_refund_records_are_drift_by_pool_and_in_total():
    drifts = spend_refunds_drift("u", ledger(*SPEND), [given_back("k", monthly=20, permanent=9)])
    assert found(drifts) == {(SPEND_REFUNDS, "k", "given_back.permanent", 9, 5), (SPEND_REFUNDS, "k", "total", 29, 25)}


def test_refund_records_whose_spend_has_no_refunded_totals_are_drift():
    drifts = spend_refunds_drift("u", ledger(*SPEND, ("refund", "permanent", 3, "other")),
                                 [given_back("k", monthly=20, permanent=5)])
    assert found(drifts) == {(SPEND_REFUNDS, "other", "given_back", 0, 3)}


def test_more_given_back_than_the_spend_drew_from_a_pool_is_drift_even_when_records_agree():
    records = [("spent", "monthly", -10, "k"), ("refund", "monthly", 12, "k")]
    drifts = spend_refunds_drift("u", ledger(*records), [given_back("k", monthly=12)])
    assert found(drifts) == {(SPEND_REFUNDS, "k", "given_back.monthly", 12, 10)}


def test_refunded_monthly_credits_that_expire_at_once_do_not_undo_the_refund_but_cannot_exceed_it():
    refunded = [("spent", "monthly", -20, "k"), ("refund", "monthly", 20, "k"), ("monthly_expired", "monthly", -20, "k")]
    assert spend_refunds_drift("u", ledger(*refunded), [given_back("k", monthly=20)]) == []
    too_many = refunded + [("monthly_expired", "monthly", -5, "k")]
    assert found(spend_refunds_drift("u", ledger(*too_many), [given_back("k", monthly=20)])) == {
        (SPEND_REFUNDS, "k", "given_back.monthly", 20, 25)}


def test_only_the_spends_a_derived_document_names_are_kept_one_by_one():
    sums = ledger(("spent", "monthly", -5, "a"), ("spent", "monthly", -7, "b"), ("refund", "monthly", 1, "c"),
                  wanted=frozenset({"a"}))
    assert set(sums.drawn_by_source) == {"a"} and sums.drawn("b") == {"monthly": 0, "permanent": 0}
    # Refunds are always kept: a refund whose spend has no document is drift.
    assert sums.refunded("c") == {"monthly": 1, "permanent": 0}


def hold(hold_id="h", amount=100, status="held", captured=0, drawn=(("permanent", 60), ("monthly", 40)),
         settlement=None):
    return {"hold_id": hold_id, "user_id": "u", "amount": amount, "status": status, "captured": captured,
            "drawn": [{"pool": pool, "amount": taken} for pool, taken in drawn],
            "created_at": T0, "expires_at": T0, "settlement": json.dumps(settlement) if settlement else None}


def user(*open_holds):
    return {"credits_monthly": 0, "credits_permanent": 0,
            "open_holds": {ids.open_hold_key(h["hold_id"]): {"hold_id": h["hold_id"], "amount": h["amount"]}
                           for h in open_holds}}


HELD = [("spent", "permanent", -60, "h"), ("spent", "monthly", -40, "h")]


def settled(*refunds):
    """A settlement body listing refund records (id, pool, amount) as the API shows them."""
    return {"transactions": [{"transaction_id": txn_id, "type": "refund", "pool": pool, "amount": amount,
                              "source": "h"} for txn_id, pool, amount in refunds]}


def test_an_open_hold_listed_in_open_holds_that_gave_nothing_back_is_no_drift():
    open_hold = hold()
    assert holds_drift("u", user(open_hold), ledger(*HELD), [open_hold]) == []


def test_an_open_hold_missing_from_open_holds_or_with_refunds_is_drift():
    open_hold = hold()
    assert found(holds_drift("u", user(), ledger(*HELD), [open_hold])) == {(HOLD, "h", "open_holds", 0, 100)}
    refunded = ledger(*HELD, ("refund", "monthly", 10, "h"))
    assert found(holds_drift("u", user(open_hold), refunded, [open_hold])) == {(HOLD, "h", "given_back.monthly", 0, 10)}


def test_a_hold_whose_spent_records_do_not_draw_its_amount_is_drift():
    open_hold = hold(amount=90, drawn=(("permanent", 60), ("monthly", 30)))
    drifts = holds_drift("u", user(open_hold), ledger(*HELD), [open_hold])
    assert (HOLD, "h", "amount", 90, 100) in found(drifts)
    swapped = hold(drawn=(("permanent", 40), ("monthly", 60)))
    assert found(holds_drift("u", user(swapped), ledger(*HELD), [swapped])) == {
        (HOLD, "h", "drawn.permanent", 40, 60), (HOLD, "h", "drawn.monthly", 60, 40)}


def test_a_captured_hold_keeps_its_spent_records_less_what_its_settlement_gave_back():
    records = [*HELD, ("refund", "monthly", 30, "h")]  # record t2: the capture gave 30 back
    captured = hold(status="captured", captured=70, settlement=settled(("t2", "monthly", 30)))
    assert holds_drift("u", user(), ledger(*records), [captured]) == []
    # A later refund of what the capture kept is the give-back document's to check, not the hold's.
    later = [*records, ("refund", "permanent", 50, "h")]
    assert holds_drift("u", user(), ledger(*later), [captured]) == []
    wrong = hold(status="captured", captured=80, settlement=settled(("t2", "monthly", 30)))
    assert found(holds_drift("u", user(), ledger(*records), [wrong])) == {(HOLD, "h", "captured", 80, 70)}


def test_a_settlement_record_missing_from_the_ledger_is_drift():
    captured = hold(status="captured", captured=70, settlement=settled(("gone", "monthly", 30)))
    drifts = holds_drift("u", user(), ledger(*HELD, ("refund", "monthly", 30, "h")), [captured])
    assert found(drifts) == {(HOLD, "h", "settlement", 30, 0), (HOLD, "h", "captured", 70, 100)}


def test_a_captured_hold_without_a_settlement_must_have_given_back_at_least_what_it_did_not_keep():
    captured = hold(status="captured", captured=70)
    assert holds_drift("u", user(), ledger(*HELD, ("refund", "monthly", 30, "h")), [captured]) == []
    assert found(holds_drift("u", user(), ledger(*HELD, ("refund", "monthly", 20, "h")), [captured])) == {
        (HOLD, "h", "captured", 70, 80)}


def test_a_released_or_expired_hold_gives_back_every_pool_all_it_drew_and_leaves_open_holds():
    back = [*HELD, ("refund", "monthly", 40, "h"), ("refund", "permanent", 60, "h")]
    for status in ("released", "expired"):
        done = hold(status=status)
        assert holds_drift("u", user(), ledger(*back), [done]) == []
        assert found(holds_drift("u", user(done), ledger(*back), [done])) == {(HOLD, "h", "open_holds", 100, 0)}
        short = ledger(*HELD, ("refund", "monthly", 40, "h"))
        assert found(holds_drift("u", user(), short, [done])) == {(HOLD, "h", "given_back.permanent", 60, 0)}
        kept = hold(status=status, captured=5)
        assert (HOLD, "h", "captured", 5, 0) in found(holds_drift("u", user(), ledger(*back), [kept]))


def test_an_open_holds_entry_without_a_hold_document_is_drift():
    ghost = hold(hold_id="ghost", amount=7)
    assert found(holds_drift("u", user(ghost), ledger(), [])) == {(HOLD, "ghost", "open_holds", 7, 0)}


def payment(refund_claimed=0, disputes=None):
    return {"payment_intent": "pi_1", "user_id": "u", "granted": 500, "refund_claimed": refund_claimed,
            "charges": {"ch_1": {"amount": 1000, "amount_refunded": 0}}, "disputes": disputes or {}}


def owing(**owed_by):
    return {"credits_monthly": 0, "credits_permanent": 0, "credits_owed": sum(owed_by.values()),
            "credits_owed_by": owed_by}


def test_a_payments_claims_are_what_the_ledger_took_back_per_source_plus_what_is_still_owed():
    # A refund claimed 300: 100 taken from the pools, 200 owed, of which a later grant paid 50.
    sums = ledger(("addon_refunded", "permanent", -100, "ch_1"), ("addon_refunded", "permanent", -50, "ch_1"))
    assert payments_drift("u", owing(ch_1=150), sums, [payment(refund_claimed=300)]) == []
    assert found(payments_drift("u", owing(ch_1=150), sums, [payment(refund_claimed=320)])) == {
        (PAYMENT, "pi_1", "refund_claimed", 320, 300)}


def test_a_dispute_holds_its_claim_until_won_and_nothing_after():
    taken = ledger(("addon_refunded", "permanent", -500, "dp_1"))
    holding = {"dp_1": {"charge": "ch_1", "status": None, "claimed": 500, "reinstated": False}}
    assert payments_drift("u", owing(), taken, [payment(disputes=holding)]) == []
    given_back = ledger(("addon_refunded", "permanent", -500, "dp_1"), ("addon_reinstated", "permanent", 500, "dp_1"))
    won = {"dp_1": {"charge": "ch_1", "status": "won", "claimed": 500, "reinstated": True}}
    assert payments_drift("u", owing(), given_back, [payment(disputes=won)]) == []
    assert found(payments_drift("u", owing(), taken, [payment(disputes=won)])) == {
        (PAYMENT, "pi_1", "disputes.dp_1.claimed", 0, 500)}


def test_credits_taken_back_for_a_source_no_payment_names_are_drift():
    sums = ledger(("addon_refunded", "permanent", -40, "ch_unknown"))
    assert found(payments_drift("u", owing(), sums, [payment()])) == {(PAYMENT, "ch_unknown", "addon_refunded", 0, 40)}


def test_a_user_drift_gathers_every_check_and_only_plain_pool_drift_is_ever_corrected():
    doc = {"credits_monthly": 5, "credits_permanent": 0, "total_earned": 0, "total_spent": 0}
    drifts = user_drift("u", doc, ledger(("refund", "monthly", 3, "k")), Derived(spend_refunds=[given_back("k")]))
    assert {d.kind for d in drifts} == {ACCOUNT, SPEND_REFUNDS}
    assert [correction(d).field for d in drifts if correction(d)] == ["credits_monthly"]
    for kind in (SPEND_REFUNDS, HOLD, PAYMENT):
        assert correction(Drift("u", "credits_monthly", 5, 3, kind=kind)) is None
    assert Drift("u", "given_back.monthly", 5, 3, "n", SPEND_REFUNDS, "k").as_dict()["kind"] == SPEND_REFUNDS
