"""Stripe delivers a subscription's events in any order: every order ends with the in-order pools.

Each case is one of the orders an attacker of the ledger tried, delivered through the real
`stripe_webhook` app on the emulator in every permutation of its events (CONTRACT section 4,
"Delivery order"). Once all are delivered, the monthly pool equals delivery in the order Stripe
created them; a renewal for a period older than one already applied stays `stale`, as the
contract allows, and no case below depends on that exception.
"""

from __future__ import annotations

import itertools

import pytest

from tools.local import stripe_events as sf
from tests.support.ledger import assert_ledger_invariant, user_doc
from tests.support.stripe_story import Customer

PRO, STARTER = "price_pro_monthly", "price_starter_monthly"
DAY = sf.DAY
P2 = sf.period(2)["start"]


def _two_renewals_and_a_pause(c: Customer):
    return [c.renewal(1, PRO), c.renewal(2, PRO), c.paused(P2 + 5 * DAY)]


def _a_pause_and_its_resume_between_renewals_of_a_rollover_plan(c: Customer):
    return [c.renewal(1, PRO), c.paused(P2 - 10 * DAY), c.resumed(P2 - 2 * DAY), c.renewal(2, PRO)]


def _an_upgrade_then_a_pause(c: Customer):
    return [c.renewal(1, STARTER), c.change(1, STARTER, PRO, day=3), c.paused(sf.period(1)["start"] + 10 * DAY, PRO)]


def _an_upgrade_of_the_first_period(c: Customer):
    return [c.renewal(1, STARTER), c.change(1, STARTER, PRO, day=3)]


def _a_replacement(c: Customer, first: str, second: str, end: str):
    """The user replaces subscription A by B ten days into A's first period; A then ends."""
    b = c.with_subscription(f"sub_{c.tag}_b")
    start = sf.period(1)["start"] + 10 * DAY
    ended = c.paused(start + DAY, first) if end == "pause" else c.cancellation(start + DAY, first)
    return [c.renewal(1, first), b.first_invoice_from(start, second), ended]


def _a_replaced_subscription_paused_after_its_replacements_first_invoice(c: Customer):
    return _a_replacement(c, STARTER, PRO, "pause")


def _a_replaced_subscription_cancelled_after_its_replacements_first_invoice(c: Customer):
    return _a_replacement(c, PRO, PRO, "cancel")


def _a_replaced_larger_plan_whose_first_invoice_comes_late(c: Customer):
    return _a_replacement(c, PRO, STARTER, "cancel")


CASES = {
    "two renewals and a pause": _two_renewals_and_a_pause,
    "a pause and resume between renewals of a rollover plan": _a_pause_and_its_resume_between_renewals_of_a_rollover_plan,
    "an upgrade then a pause": _an_upgrade_then_a_pause,
    "an upgrade of the first period": _an_upgrade_of_the_first_period,
    "a replaced subscription paused after its replacement's first invoice":
        _a_replaced_subscription_paused_after_its_replacements_first_invoice,
    "a replaced subscription cancelled after its replacement's first invoice":
        _a_replaced_subscription_cancelled_after_its_replacements_first_invoice,
    "a replaced larger plan whose first invoice comes late": _a_replaced_larger_plan_whose_first_invoice_comes_late,
}


def _deliver(webhook, events) -> None:
    for event in events:
        response = webhook.send(event)
        assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("case", list(CASES))
def test_every_delivery_order_ends_with_the_in_order_monthly_pool(webhook, db, case):
    build = CASES[case]
    reference = Customer(f"ord-{abs(hash(case)) % 10**6}-ref")
    _deliver(webhook, build(reference))
    expected = (user_doc(db, reference.user_id) or {}).get("credits_monthly", 0)
    for number, order in enumerate(itertools.permutations(range(len(build(reference))))):
        customer = Customer(f"ord-{abs(hash(case)) % 10**6}-{number}")
        built = build(customer)
        _deliver(webhook, [built[i] for i in order])
        got = (user_doc(db, customer.user_id) or {}).get("credits_monthly", 0)
        assert got == expected, f"{case}: order {order} ends with monthly {got}, in order {expected}"
        assert_ledger_invariant(db, customer.user_id)
