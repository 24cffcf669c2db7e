"""Arrival orders the generated histories found that do not end as creation order does, and the
auto top-up histories that broke section 9.

Each case is a minimized history from `test_user_months.py` (its seed is named): a few of one
user's Stripe events, delivered once in the order Stripe created them and once in the order that
was found, through `shared.billing.service.handle` on the in-memory Firestore. CONTRACT section
4 ("Delivery order") says the monthly pool must end the same. Each once failed (the reasons in
`found.py` say how); they stay as regression tests of the timeline that fixed them. The auto
top-up cases run the settings, the charge (`shared.billing.topups`, against the simulation's
Stripe double) and the webhook the same way; `tests/e2e/test_auto_topup.py` has each on the
emulator too.
"""

from __future__ import annotations

import json

import pytest

from shared.billing import service as webhooks
from shared.billing import topups as charging
from shared.common.errors import StripeUnavailable
from shared.ledger import collections
from shared.spending import settings, settings_service
from shared.spending import service as spending
from tests.simulation import months, topups
from tests.simulation.found import (
    CHARGED_THEN_CANCELED,
    REMOVED_THEN_PUT,
    CANCELLED_REPLACEMENT,
    EARLY_UPGRADE,
    FIRST_INVOICE_AFTER_UPGRADE,
    LATE_END,
    PAUSE_AFTER_RESUME,
    PAUSED_THEN_CANCELLED,
    REPLACED_UPGRADE,
    REPLACEMENT_PAUSED_FIRST,
    SECOND_PAUSE,
)
from tests.support.fake_firestore import FakeFirestore, install
from tests.support.stripe_story import Customer
from tools.local import stripe_events as sf

PRO, STARTER = "price_pro_monthly", "price_starter_monthly"
DAY, T0 = sf.DAY, sf.T0


def monthly_after(events, monkeypatch, user_id: str) -> int:
    fake = install(FakeFirestore(), monkeypatch)
    for event in events:
        webhooks.handle(event, json.dumps(event))
    return (fake.doc(collections.user(user_id)) or {}).get("credits_monthly", 0)


def assert_same_as_creation_order(events, order, monkeypatch, user_id):
    in_order = monthly_after(events, monkeypatch, user_id)
    found = monthly_after([events[i] for i in order], monkeypatch, user_id)
    assert found == in_order, f"monthly {found} delivered in order {order}, {in_order} in creation order"


def test_a_replaced_subscription_s_late_cancellation_leaves_its_replacement_s_own_rollover_alone(monkeypatch):
    a = Customer("found-replaced")
    b = a.with_subscription("sub_found_replaced_b")
    b_start = T0 + 25 * DAY
    events = [a.renewal(1, PRO), a.cancellation(T0 + 20 * DAY, PRO),
              b.first_invoice_from(b_start, PRO), b.renewal_from(b_start + sf.PERIOD, PRO)]
    # Creation order: A's 1000, emptied by A's end; B's 1000, then 500 of it rolled over + 1000.
    assert_same_as_creation_order(events, [0, 2, 3, 1], monkeypatch, a.user_id)


def test_a_late_pause_leaves_what_a_renewal_after_its_resume_rolled_over_alone(monkeypatch):
    a = Customer("found-late-pause")
    events = [a.renewal(1, PRO), a.paused(T0 + 10 * DAY, PRO), a.resumed(T0 + 20 * DAY, PRO),
              a.renewal(2, PRO), a.renewal(3, PRO)]
    # Creation order: the pause empties the first period; the second grants 1000, the third rolls 500 of it over.
    assert_same_as_creation_order(events, [0, 2, 3, 4, 1], monkeypatch, a.user_id)


def test_a_second_pause_delivered_after_its_own_resume_still_empties_the_pool(monkeypatch):
    a = Customer("found-second-pause")
    events = [a.renewal(1, STARTER), a.paused(T0 + 5 * DAY, STARTER), a.resumed(T0 + 10 * DAY, STARTER),
              a.renewal(2, STARTER), a.paused(T0 + 40 * DAY, STARTER), a.resumed(T0 + 50 * DAY, STARTER)]
    # Creation order: the second pause empties the second period's 300; no renewal follows.
    assert_same_as_creation_order(events, [0, 1, 2, 3, 5, 4], monkeypatch, a.user_id)


def test_a_second_pause_delivered_before_the_first_one_s_resume_still_empties_the_pool(monkeypatch):
    a = Customer("found-early-pause")
    events = [a.renewal(1, PRO), a.paused(T0 + 5 * DAY, PRO), a.resumed(T0 + 10 * DAY, PRO),
              a.renewal(2, PRO), a.paused(T0 + 40 * DAY, PRO)]
    # Creation order: paused in the second period, the subscription holds nothing.
    assert_same_as_creation_order(events, [0, 1, 4, 2, 3], monkeypatch, a.user_id)


def test_an_upgrade_delivered_before_the_renewal_of_its_own_period_keeps_its_credits(monkeypatch):
    a = Customer("found-early-upgrade")
    events = [a.renewal(1, STARTER), a.renewal(2, STARTER), a.change(2, STARTER, PRO, day=5)]
    # Creation order: the second period's 300, topped up to the upgraded plan's 1000.
    assert_same_as_creation_order(events, [0, 2, 1], monkeypatch, a.user_id)


def test_a_paused_then_cancelled_replaced_subscription_leaves_its_replacement_nothing_to_roll_over(monkeypatch):
    a = Customer("found-paused-replaced")
    b = a.with_subscription("sub_found_paused_replaced_b")
    events = [a.renewal(1, PRO), a.paused(T0 + 10 * DAY, PRO), b.first_invoice_from(T0 + 12 * DAY, PRO),
              a.cancellation(T0 + 20 * DAY, PRO)]
    # Creation order: the pause empties A's 1000 before B begins; B holds its own 1000.
    assert_same_as_creation_order(events, [0, 3, 2, 1], monkeypatch, a.user_id)


def test_a_replacement_s_cancellation_empties_the_pool_though_the_replaced_subscription_s_pause_comes_last(
        monkeypatch):
    a = Customer("found-cancelled-replacement")
    b = a.with_subscription("sub_found_cancelled_replacement_b")
    events = [a.renewal(1, PRO), a.paused(T0 + 14 * DAY, PRO), b.first_invoice_from(T0 + 15 * DAY, STARTER),
              b.cancellation(T0 + 20 * DAY, STARTER)]
    # Creation order: A paused, B begun and cancelled: nothing is left.
    assert_same_as_creation_order(events, [0, 2, 3, 1], monkeypatch, a.user_id)


def test_an_upgrade_delivered_before_a_replacement_s_first_invoice_does_not_keep_the_old_plan_s_credits(
        monkeypatch):
    a = Customer("found-upgrade-first")
    b = a.with_subscription("sub_found_upgrade_first_b")
    events = [a.renewal(1, PRO), b.first_invoice_from(sf.period(2)["start"], STARTER), b.change(2, STARTER, PRO, day=8)]
    # Creation order: B's first invoice resets A's 1000 (a starter plan keeps none), B's upgrade tops it up to 1000.
    assert_same_as_creation_order(events, [0, 2, 1], monkeypatch, a.user_id)


def test_an_upgrade_of_a_replaced_subscription_arriving_after_its_replacement_s_first_invoice_adds_nothing(
        monkeypatch):
    a = Customer("found-replaced-upgrade")
    b = a.with_subscription("sub_found_replaced_upgrade_b")
    events = [a.renewal(1, STARTER), a.change(1, STARTER, PRO, day=5), b.first_invoice_from(T0 + 10 * DAY, STARTER)]
    # Creation order: A upgraded to 1000, then B's first invoice resets the pool to its own 300.
    assert_same_as_creation_order(events, [0, 2, 1], monkeypatch, a.user_id)


def test_a_replaced_subscription_s_late_pause_empties_the_pool_when_its_replacement_was_paused_first(monkeypatch):
    a = Customer("found-replacement-paused-first")
    b = a.with_subscription("sub_found_replacement_paused_first_b")
    events = [a.renewal(1, STARTER), a.paused(T0 + 19 * DAY, STARTER), b.first_invoice_from(T0 + 22 * DAY, STARTER),
              b.paused(T0 + 26 * DAY, STARTER)]
    # Creation order: A paused, B begun and paused: nothing is left.
    assert_same_as_creation_order(events, [3, 0, 2, 1], monkeypatch, a.user_id)


class _Always:
    """An answer-losing draw that always loses it."""

    def random(self) -> float:
        return 0.0


def _topup_user(monkeypatch, user_id: str, limit: int = 5):
    fake = install(FakeFirestore(), monkeypatch)
    history = months.History(0, user_id, True, topup={"customer": "cus_found", "default_method": months.SUCCEEDS,
                                                       "monthly_limit": limit})
    stripe = topups.SimStripe(history, fake, None).install(monkeypatch)
    return fake, stripe


def _put(user_id: str, enabled: bool = True, limit: int = 5, threshold: int = 100):
    body = settings.AutoTopupBody.model_validate({"enabled": enabled, "threshold": threshold, "customer": "cus_found",
                                                  "price_id": "price_pack_500", "monthly_limit": limit})
    return settings_service.put_settings(user_id, {settings.AUTO_TOPUP: body.setting(500)})["auto_topup"]


def _remove(user_id: str):
    return settings_service.put_settings(user_id, {settings.AUTO_TOPUP: None})["auto_topup"]


def test_a_charge_made_before_the_setting_was_stopped_lands_when_its_success_arrives(monkeypatch):
    assert CHARGED_THEN_CANCELED
    fake, stripe = _topup_user(monkeypatch, "found-charged")
    attempt_id = _put("found-charged")["pending_attempt"]
    stripe.rng = _Always()
    with pytest.raises(StripeUnavailable):
        charging.charge(attempt_id)  # Stripe charged; its answer never came back
    stripe.rng = None
    _put("found-charged", enabled=False)
    assert charging.charge(attempt_id) == "canceled"

    [succeeded] = stripe.outbox
    assert webhooks.handle(succeeded, json.dumps(succeeded)).outcome == "applied"
    user = fake.doc(collections.user("found-charged"))
    assert user["credits_permanent"] == 500 and stripe.made[attempt_id] == 1
    assert fake.doc(collections.topup_attempt(attempt_id))["status"] == "succeeded"


def test_removing_the_setting_and_putting_it_again_keeps_its_pending_attempt_and_the_month_s_count(monkeypatch):
    assert REMOVED_THEN_PUT
    fake, stripe = _topup_user(monkeypatch, "found-removed", limit=1)
    first = _put("found-removed", limit=1, threshold=1000)["pending_attempt"]
    assert _remove("found-removed") is None
    assert _put("found-removed", limit=1, threshold=1000)["pending_attempt"] == first
    assert charging.charge(first) == "succeeded"
    spending.spend("found-removed", 500, "render", "found-removed-1")
    _remove("found-removed")
    again = _put("found-removed", limit=1, threshold=1000)
    assert (again["pending_attempt"], again["this_month"]) == (None, 1)
    assert len(topups.attempts_of(months.History(0, "found-removed", True), fake)) == 1
