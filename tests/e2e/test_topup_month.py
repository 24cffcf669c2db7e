"""A month in the life of an auto top-up customer, on the Firestore emulator through the real
functions (`spend`, `stripe_webhook`, `auto_topup`) and the Stripe stand-in, with a clock the
test moves: a subscription's credits, spends crossing the threshold again and again, top-ups that
succeed, a soft decline and the recovery after the backoff, the monthly limit, the user stopping
and restarting the setting, a refund of one top-up, and the next month's renewal. At the end every
pool equals the sum of its records, and the stand-in's charges match the top-up records one to one."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone

import pytest

from shared.operations import reconciliation
from tests.support.cli import credits
from tests.support.ledger import assert_ledger_invariant, records_of
from tests.support.stripe_story import Customer
from tests.support.topups import PACK_CENTS, pending, put_topup, setting, spend, topup_records
from tools.local import stripe_events as sf

USER = "mona"
# Every module that reads the time for a decision or a view takes it from the test's clock.
CLOCKED = ("shared.store.commit", "shared.store.group", "shared.store.outcome", "shared.store.batch",
           "shared.spending.service", "shared.spending.settings_service", "shared.spending.holds_service",
           "shared.billing.service", "shared.billing.topups", "shared.billing.customers")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    moment = Clock(datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc))
    for name in CLOCKED:
        monkeypatch.setattr(importlib.import_module(name), "utcnow", moment)
    return moment


def test_a_month_in_the_life_of_a_top_up_customer(spend_client, db, stripe, trigger, webhook, clock, capsys):
    mona = Customer(USER)

    def balance() -> int:
        return spend_client.get(f"/balance/{USER}").get_json()["balance"]

    def spend_to(target: int) -> None:
        assert spend(spend_client, USER, balance() - target).status_code == 200

    def charge_pending() -> dict:
        [attempt] = pending(db, USER)
        return trigger(attempt["attempt_id"])

    # Day 1: the subscription starts (the checkout links the Stripe customer to the user) and the
    # user asks for a pack whenever the balance drops below 200, at most 3 a month. The card is
    # the customer's default at Stripe; the setting names neither.
    stripe.add_customer(mona.customer, default_payment_method="pm_card_visa")
    assert webhook.outcome(mona.subscription_checkout()) == "ignored"
    assert webhook.outcome(mona.renewal(1, "price_pro_monthly")) == "applied"
    assert balance() == 1000
    put_topup(spend_client, USER, threshold=200, monthly_limit=3)
    assert pending(db, USER) == []

    # Day 2: a big spend crosses the threshold: one pack is charged and lands.
    clock.advance(days=1)
    spend_to(150)
    assert charge_pending()["status"] == "succeeded"
    assert balance() == 650

    # Day 5: again; the webhook of that payment arrives after the charge's answer: nothing more.
    clock.advance(days=3)
    spend_to(150)
    second = charge_pending()
    assert second["status"] == "succeeded" and balance() == 650
    assert webhook.outcome(stripe.outbox[-1]) == "duplicate"

    # Day 8: the card starts declining (a soft decline): the attempt fails, one failure counts, and
    # for the next hour no spend starts another attempt.
    clock.advance(days=3)
    stripe.customers[mona.customer]["invoice_settings"]["default_payment_method"] = "pm_card_chargeDeclined"
    spend_to(150)
    declined = charge_pending()
    assert (declined["status"], declined["reason"]) == ("failed", "generic_decline")
    assert webhook.outcome(stripe.outbox[-1]) == "duplicate"  # payment_failed of that payment
    assert (setting(db, USER)["failures"], setting(db, USER)["this_month"]) == (1, 2)
    clock.advance(minutes=30)
    spend_to(140)
    assert pending(db, USER) == []
    # The user updates the card; after the backoff the next spend below the threshold recovers.
    stripe.customers[mona.customer]["invoice_settings"]["default_payment_method"] = "pm_card_visa"
    clock.advance(minutes=45)
    spend_to(130)
    assert charge_pending()["status"] == "succeeded"
    assert (setting(db, USER)["failures"], setting(db, USER)["this_month"], balance()) == (0, 3, 630)

    # Day 12: the month's limit (3) is reached: the balance stays low.
    clock.advance(days=4)
    spend_to(20)
    assert pending(db, USER) == []
    shown = credits(capsys, "topup", "show", USER, "--json").json
    assert shown["blocked_by"] == "monthly_limit_reached" and shown["month_succeeded"] == 3
    assert shown["month_credits"] == 1500

    # Day 14: the user stops auto top-up; day 15 they put it again with a higher limit: the
    # balance is below the threshold, so that commit makes the attempt at once.
    clock.advance(days=2)
    put_topup(spend_client, USER, enabled=False, threshold=200, monthly_limit=3)
    assert pending(db, USER) == []
    clock.advance(days=1)
    put_topup(spend_client, USER, threshold=200, monthly_limit=5)
    assert charge_pending()["status"] == "succeeded"
    assert (balance(), setting(db, USER)["this_month"]) == (520, 4)

    # Day 20: the second top-up is refunded in full: its 500 credits are taken back and the
    # setting stops, so it never charges again for credits it just took back.
    clock.advance(days=5)
    refunded = stripe.intents[second["payment_intent"]]
    refund = sf.event("charge.refunded", sf.charge(refunded["latest_charge"], refunded["id"], PACK_CENTS, PACK_CENTS,
                                                   mona.customer))
    assert webhook.outcome(refund) == "applied"
    assert balance() == 20
    assert (setting(db, USER)["status"], setting(db, USER)["reason"]) == ("disabled", "payment_reversed")
    spend_to(10)
    assert pending(db, USER) == []

    # Next month: the renewal refills the monthly pool; the user puts the setting again and the
    # month's count starts over.
    clock.now = datetime(2027, 4, 1, 9, 0, tzinfo=timezone.utc)
    assert webhook.outcome(mona.renewal(2, "price_pro_monthly")) == "applied"
    put_topup(spend_client, USER, threshold=200, monthly_limit=5)
    spend_to(199)
    assert charge_pending()["status"] == "succeeded"
    assert setting(db, USER)["this_month"] == 1

    # The books: each pool is the sum of its records (and every record's balance_after the
    # running sums); each succeeded charge at the stand-in is exactly one auto_topup record of
    # its credits, and no failed charge has one.
    assert_ledger_invariant(db, USER)
    assert reconciliation.reconcile().drift == []
    charged = {pi["id"]: pi["amount"] for pi in stripe.intents.values() if pi["status"] == "succeeded"}
    records = topup_records(db, USER)
    assert sorted(source for _, source in records) == sorted(charged)
    assert all(amount == 500 for amount, _ in records) and set(charged.values()) == {PACK_CENTS}
    assert len(records) == 5 and len(stripe.intents) == 6
    taken = [r for r in records_of(db, USER) if r["type"] == "addon_refunded"]
    assert [(r["amount"], r["source"]) for r in taken] == [(-500, refunded["latest_charge"])]
