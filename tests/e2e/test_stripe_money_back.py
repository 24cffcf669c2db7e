"""Money back through the real function and emulator: refunds and disputes of add-on packs, debt
and its collection, events before their session, pauses, and a plan switch by a second
subscription (CONTRACT sections 4 and 4b)."""

from __future__ import annotations

import pytest

from shared.billing import payments
from shared.operations import reconciliation
from shared.promotions import service as promotions
from shared.promotions.schemas import PromoMessage
from shared.spending import service as spending
from tools.local import stripe_events as sf
from tests.support.cli import credits
from tests.support.ledger import assert_ledger_invariant, dump, records_of, user_doc
from tests.support.stripe_story import Customer, charge_of

PRO, STARTER = "price_pro_monthly", "price_starter_monthly"


def pools(db, user_id):
    doc = user_doc(db, user_id) or {}
    return doc.get("credits_monthly", 0), doc.get("credits_permanent", 0)


def owed(db, user_id):
    doc = user_doc(db, user_id) or {}
    return doc.get("credits_owed", 0), doc.get("credits_owed_by", {})


def kinds(db, user_id, source):
    return sorted((r["type"], r["pool"], r["amount"]) for r in records_of(db, user_id) if r["source"] == source)


def clean_reconcile():
    report = reconciliation.reconcile()
    assert report.drift == [], report.drift
    return report


def buy(webhook, fake_stripe, customer, session_id, *items):
    fake_stripe.add_session(session_id, *items)
    assert webhook.outcome(customer.pack_checkout(session_id, paid=True)) == "applied"


def test_a_full_refund_takes_the_whole_pack_back_once(webhook, db, fake_stripe):
    ann = Customer("ann")
    buy(webhook, fake_stripe, ann, "cs_ann", ("price_pack_500", 1))
    refund = ann.refund("cs_ann", 1000)
    assert webhook.outcome(refund) == "applied"
    assert pools(db, "ann") == (0, 0)
    assert kinds(db, "ann", charge_of("cs_ann")) == [("addon_refunded", "permanent", -500)]
    assert user_doc(db, "ann")["total_earned"] == 0
    before = dump(db, journal=False)
    assert webhook.outcome(refund) == "duplicate"
    assert webhook.outcome(sf.redelivered(refund)) == "duplicate"
    assert dump(db, journal=False) == before
    assert_ledger_invariant(db, "ann")
    clean_reconcile()


def test_three_partial_refunds_in_reverse_order_and_twice_each_take_the_proportional_total(webhook, db, fake_stripe):
    bea = Customer("bea")
    buy(webhook, fake_stripe, bea, "cs_bea", ("price_pack_500", 1))
    # Cumulative amount_refunded of a 1,000 charge: 333, then 500, then 777; delivered backwards.
    events = [bea.refund("cs_bea", total) for total in (333, 500, 777)]
    outcomes = [webhook.outcome(e) for e in reversed(events)] + [webhook.outcome(sf.redelivered(e)) for e in reversed(events)]
    assert outcomes == ["applied", "stale", "stale", "duplicate", "stale", "stale"]
    # floor(500 x 777 / 1000) = 388, whatever the order.
    assert pools(db, "bea") == (0, 500 - 388)
    assert sum(a for _, _, a in kinds(db, "bea", charge_of("cs_bea"))) == -388
    assert_ledger_invariant(db, "bea")

    cal = Customer("cal")
    buy(webhook, fake_stripe, cal, "cs_cal", ("price_pack_500", 1))
    in_order = [cal.refund("cs_cal", total) for total in (333, 500, 777)]
    assert [webhook.outcome(e) for e in in_order + in_order] == ["applied"] * 3 + ["duplicate"] * 3
    assert pools(db, "cal") == (0, 500 - 388)
    assert kinds(db, "cal", charge_of("cs_cal")) == [
        ("addon_refunded", "permanent", -166), ("addon_refunded", "permanent", -138), ("addon_refunded", "permanent", -84)]
    clean_reconcile()


def test_a_refund_of_a_spent_pack_is_owed_then_collected_from_the_next_renewal_and_a_promo(webhook, db, fake_stripe, capsys):
    dan = Customer("dan")
    assert webhook.outcome(dan.renewal(1, STARTER)) == "applied"
    buy(webhook, fake_stripe, dan, "cs_dan", ("price_pack_2000", 1))
    spending.spend("dan", 2200, "Spent it all")
    assert pools(db, "dan") == (100, 0)
    assert webhook.outcome(dan.refund("cs_dan", 1000)) == "applied"
    assert pools(db, "dan") == (0, 0)
    assert owed(db, "dan") == (1900, {charge_of("cs_dan"): 1900})
    balance = credits(capsys, "balance", "dan", "--json")
    assert (balance.json["credits_owed"], balance.json["credits_owed_by"]) == (1900, {charge_of("cs_dan"): 1900})
    clean_reconcile()

    # The renewal's 300 pay the debt in its own commit: nothing of it can be spent.
    assert webhook.outcome(dan.renewal(2, STARTER)) == "applied"
    assert pools(db, "dan") == (0, 0)
    assert owed(db, "dan") == (1600, {charge_of("cs_dan"): 1600})
    collected = [r for r in records_of(db, "dan") if r["source"] == charge_of("cs_dan") and r["pool"] == "monthly"]
    assert sorted(r["amount"] for r in collected) == [-300, -100]
    promotions.grant(PromoMessage(grant_id="spring", user_ids=["dan"], amount=2000))
    assert pools(db, "dan") == (0, 400)
    assert owed(db, "dan") == (0, {})
    assert sum(r["amount"] for r in records_of(db, "dan") if r["source"] == charge_of("cs_dan")) == -2000
    assert user_doc(db, "dan")["total_earned"] == 300 + 2000 + 300 + 2000 - 2000
    assert_ledger_invariant(db, "dan")
    report = clean_reconcile()
    assert report.credits_owed == 0


def test_a_won_dispute_gives_back_what_it_took_and_a_lost_one_keeps_it(webhook, db, fake_stripe):
    eve = Customer("eve")
    buy(webhook, fake_stripe, eve, "cs_eve", ("price_pack_500", 2))
    spending.spend("eve", 400, "Some")
    created = eve.dispute("cs_eve", "dp_eve")
    assert webhook.outcome(created) == "applied"
    assert pools(db, "eve") == (0, 0) and owed(db, "eve") == (400, {"dp_eve": 400})
    assert webhook.outcome(sf.redelivered(created)) == "duplicate"
    won = eve.dispute("cs_eve", "dp_eve", status="won")
    assert webhook.outcome(won) == "applied"
    # The debt of 400 is cancelled and the 600 actually taken come back.
    assert pools(db, "eve") == (0, 600) and owed(db, "eve") == (0, {})
    assert kinds(db, "eve", "dp_eve") == [("addon_refunded", "permanent", -600), ("addon_reinstated", "permanent", 600)]
    assert webhook.outcome(sf.redelivered(won)) == "duplicate"
    assert_ledger_invariant(db, "eve")

    fay = Customer("fay")
    buy(webhook, fake_stripe, fay, "cs_fay", ("price_pack_500", 1))
    assert webhook.outcome(fay.dispute("cs_fay", "dp_fay")) == "applied"
    assert webhook.outcome(fay.dispute("cs_fay", "dp_fay", status="lost")) == "ignored"
    assert pools(db, "fay") == (0, 0)
    # A refund after the lost dispute never takes more than the payment granted.
    assert webhook.outcome(fay.refund("cs_fay", 1000)) == "ignored"
    assert pools(db, "fay") == (0, 0) and owed(db, "fay") == (0, {})
    assert sum(r["amount"] for r in records_of(db, "fay") if r["type"] == "addon_refunded") == -500
    assert_ledger_invariant(db, "fay")
    clean_reconcile()


def test_a_refund_and_a_dispute_before_their_checkout_session_are_settled_by_its_grant(webhook, db, fake_stripe):
    gus = Customer("gus")
    early = gus.refund("cs_gus", 500)
    assert webhook.outcome(early) == "ignored"
    assert webhook.outcome(early) == "ignored"
    assert user_doc(db, "gus") is None
    assert db.document("stripe_payments/pi_for_cs_gus").get().to_dict()["user_id"] is None
    fake_stripe.add_session("cs_gus", ("price_pack_500", 2))
    assert webhook.outcome(gus.pack_checkout("cs_gus", paid=True)) == "applied"
    # The grant of 1,000 and the half refund in one commit.
    assert pools(db, "gus") == (0, 500)
    assert kinds(db, "gus", "cs_gus") == [("addon_purchase", "permanent", 1000)]
    assert kinds(db, "gus", charge_of("cs_gus")) == [("addon_refunded", "permanent", -500)]
    assert webhook.outcome(early) == "duplicate"
    payment = db.document("stripe_payments/pi_for_cs_gus").get().to_dict()
    assert (payment["user_id"], payment["granted"], payment["refund_claimed"]) == ("gus", 1000, 500)
    assert_ledger_invariant(db, "gus")
    clean_reconcile()


def test_refunds_of_subscription_payments_change_no_credits(webhook, db):
    hub = Customer("hub")
    webhook.outcome(hub.renewal(1, PRO))
    before = pools(db, "hub")
    assert webhook.outcome(hub.subscription_refund("in_hub_p1", 2000)) == "ignored"
    # In the current shape the charge does not name its invoice: it is only remembered.
    assert webhook.outcome(hub.subscription_refund("in_hub_p1", 2000, shape="current")) == "ignored"
    assert pools(db, "hub") == before


def test_a_pause_empties_the_monthly_pool_once_and_the_renewal_after_the_resume_fills_it(webhook, db, fake_stripe):
    ivy = Customer("ivy")
    webhook.outcome(ivy.renewal(1, PRO))
    buy(webhook, fake_stripe, ivy, "cs_ivy", ("price_pack_500", 1))
    pause = ivy.paused(sf.period(1)["start"] + 10 * sf.DAY)
    assert webhook.outcome(pause) == "applied"
    assert pools(db, "ivy") == (0, 500)
    assert kinds(db, "ivy", pause["id"]) == [("monthly_expired", "monthly", -1000)]
    assert webhook.outcome(pause) == "duplicate"
    assert webhook.outcome(ivy.paused(sf.period(1)["start"] + 11 * sf.DAY)) == "duplicate"
    assert webhook.outcome(ivy.resumed(sf.period(1)["start"] + 40 * sf.DAY)) == "ignored"
    assert pools(db, "ivy") == (0, 500)
    assert webhook.outcome(ivy.renewal(3, PRO)) == "applied"
    assert pools(db, "ivy") == (1000, 500)
    assert_ledger_invariant(db, "ivy")


def test_a_plan_switch_by_a_second_subscription_survives_the_old_ones_deletion(webhook, db):
    jay = Customer("jay")
    assert webhook.outcome(jay.renewal(1, STARTER)) == "applied"
    spending.spend("jay", 100, "Some")
    new = jay.with_subscription("sub_jay_pro")
    switch_start = sf.period(1)["start"] + 5 * sf.DAY
    line = sf.invoice_line("current", PRO, {"start": switch_start, "end": switch_start + sf.PERIOD}, new.subscription)
    first = sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], new.subscription, new.customer,
                                                "jay", "in_jay_pro_1"))
    assert webhook.outcome(first) == "applied"
    assert pools(db, "jay") == (1200, 0)
    deleted = jay.cancellation(switch_start + 60)
    response = webhook.send(deleted)
    assert response.get_json()["outcome"] == "ignored"
    assert pools(db, "jay") == (1200, 0)
    assert user_doc(db, "jay")["stripe_subscriptions"]["sub_jay"]["canceled_at"] == switch_start + 60
    assert webhook.outcome(sf.redelivered(deleted)) == "duplicate"
    # The new subscription's own deletion, with no other active one, empties the pool.
    assert webhook.outcome(new.cancellation(switch_start + 10 * sf.DAY)) == "applied"
    assert pools(db, "jay") == (0, 0)
    assert_ledger_invariant(db, "jay")


def _replacement(customer: Customer):
    """A second subscription (pro) that starts 5 days into the first one's first period."""
    new = customer.with_subscription(f"sub_{customer.tag}_pro")
    start = sf.period(1)["start"] + 5 * sf.DAY
    line = sf.invoice_line("current", PRO, {"start": start, "end": start + sf.PERIOD}, new.subscription)
    first = sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], new.subscription,
                                                new.customer, customer.user_id, f"in_{customer.tag}_pro_1"))
    return first, start


def test_pausing_the_subscription_a_user_replaced_leaves_the_new_ones_credits(webhook, db):
    kim = Customer("kimr")
    first, start = _replacement(kim)
    assert webhook.outcome(kim.renewal(1, STARTER)) == "applied"
    assert webhook.outcome(first) == "applied"
    assert pools(db, "kimr") == (1300, 0)  # 1,000 and the 300 the pro plan's cap rolls over
    response = webhook.send(kim.paused(start + 2 * sf.DAY, STARTER))
    assert response.get_json()["outcome"] == "ignored"
    assert pools(db, "kimr") == (1300, 0)
    assert_ledger_invariant(db, "kimr")


def test_a_replaced_subscriptions_first_invoice_arriving_after_the_new_ones_is_rolled_over_by_it(webhook, db):
    lou = Customer("lour")
    first, _ = _replacement(lou)
    assert webhook.outcome(first) == "applied"
    assert pools(db, "lour") == (1000, 0)
    # In creation order the old plan's 300 came first, and the pro renewal after it rolled them
    # over (pro's cap is 500): the late invoice adds what that renewal would have kept.
    late = lou.renewal(1, STARTER)
    assert webhook.outcome(late) == "applied"
    assert pools(db, "lour") == (1300, 0)
    assert kinds(db, "lour", late["data"]["object"]["id"]) == [("subscription_grant", "monthly", 300)]
    assert webhook.outcome(sf.redelivered(late)) == "duplicate"
    assert_ledger_invariant(db, "lour")


@pytest.mark.parametrize("upgrade_first", [False, True], ids=["in order", "upgrade first"])
def test_an_upgrade_and_the_first_invoice_of_its_period_give_the_upgraded_plan_in_either_order(webhook, db,
                                                                                            upgrade_first):
    max_ = Customer(f"max{int(upgrade_first)}")
    first, change = max_.renewal(1, STARTER), max_.change(1, STARTER, PRO)
    for event in ([change, first] if upgrade_first else [first, change]):
        assert webhook.outcome(event) in ("applied", "ignored")
    assert pools(db, max_.user_id) == (1000, 0)
    assert not [r for r in records_of(db, max_.user_id) if r["type"] == "monthly_expired"]
    assert webhook.outcome(max_.renewal(2, PRO)) == "applied"
    assert pools(db, max_.user_id) == (1500, 0)  # 1,000 and the pro plan's rollover cap of 500
    assert_ledger_invariant(db, max_.user_id)


def test_a_year_of_packs_refunds_and_disputes_keeps_the_ledger_and_reconciles(webhook, db, fake_stripe):
    kay = Customer("kay")
    deliveries = 0

    def deliver(event, *expected):
        nonlocal deliveries
        outcome = webhook.outcome(event)
        assert outcome in expected, (event["type"], outcome)
        assert webhook.outcome(event) in ("duplicate", "ignored", "stale")
        deliveries += 2
        assert_ledger_invariant(db, "kay")
        doc = user_doc(db, "kay") or {}
        assert doc.get("credits_owed", 0) == sum((doc.get("credits_owed_by") or {}).values()) >= 0

    for month in range(1, 13):
        deliver(kay.renewal(month, PRO), "applied")
        session = f"cs_kay_{month}"
        fake_stripe.add_session(session, ("price_pack_500", 1 + month % 2))
        if month % 4 == 0:
            # The refund overtakes the checkout session.
            deliver(kay.refund(session, 250), "ignored")
        deliver(kay.pack_checkout(session, paid=True), "applied")
        spent = min(900, sum(pools(db, "kay")))
        if spent:
            spending.spend("kay", spent, f"Month {month}")
        if month % 3 == 0:
            deliver(kay.refund(session, 600), "applied")
            deliver(kay.refund(session, 300), "stale")
        if month % 5 == 0:
            deliver(kay.dispute(session, f"dp_kay_{month}"), "applied")
            deliver(kay.dispute(session, f"dp_kay_{month}", status="won" if month == 5 else "lost"), "applied", "ignored")
        if month == 7:
            deliver(kay.refund(session, 1000), "applied")
    for month in (4, 8, 12):
        payment = db.document(f"stripe_payments/pi_for_cs_kay_{month}").get().to_dict()
        assert payment["refund_claimed"] == payments.refund_due(payments.Payment.from_dict("x", payment))
    report = clean_reconcile()
    assert report.users >= 1 and deliveries > 40
