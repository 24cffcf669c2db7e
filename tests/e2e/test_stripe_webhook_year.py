"""A year in one user's life through the real function, then the same year as a delivery storm."""

from __future__ import annotations

import random
from typing import Any, Union

from shared.spending import service as spending
from tools.local import stripe_events as sf
from tests.support.ledger import assert_ledger_invariant, records_of, user_doc
from tests.support.stripe_story import Customer, ledger_view

PRO, STARTER = "price_pro_monthly", "price_starter_monthly"
USER = "yara"
PACK_SESSION = "cs_test_yara_pack"

Step = Union[dict[str, Any], tuple[str, int]]  # an event, or ("spend", amount)


def year(with_spends: bool = True) -> list[list[Step]]:
    """The year as moments: the events Stripe sends at about the same time, and the spends between."""
    yara = Customer(USER)
    spend = (lambda amount: [("spend", amount)]) if with_spends else (lambda amount: [])

    def paid(invoice_event):
        return [invoice_event, yara.payment_succeeded(invoice_event)]

    moments: list[list[Step]] = [
        [yara.subscription_checkout(), *paid(yara.renewal(1, STARTER))],
        spend(100),
        paid(yara.renewal(2, STARTER)),
        paid(yara.change(2, STARTER, PRO)),
        spend(400),
        paid(yara.renewal(3, PRO)),
        [yara.pack_checkout(PACK_SESSION, paid=False)],
        spend(1200),
        [yara.pack_checkout(PACK_SESSION, paid=True, event_type="checkout.session.async_payment_succeeded")],
    ]
    for n in range(4, 14):
        moments.append(paid(yara.renewal(n, PRO)))
        moments.append(spend(150 * (n % 5) + 50))
    moments.append([yara.cancellation(sf.period(13)["start"] + 10 * sf.DAY)])
    return [moment for moment in moments if moment]


def run_step(webhook, step: Step, key: str) -> str:
    if isinstance(step, tuple):
        spending.spend(USER, step[1], "Story", idempotency_key=key)
        return "spent"
    return webhook.outcome(step)


def normalized(db) -> tuple[dict[str, Any], list[tuple]]:
    pools, records = ledger_view(db, USER)
    # A cancellation's records carry the id of the event that applied it; a storm may apply a
    # redelivered copy of it, whose id is fresh.
    return pools, [(t, p, a, "evt" if s.startswith("evt_") else s, d) for t, p, a, s, d in records]


def deliver_in_order(webhook, moments) -> list[str]:
    outcomes = []
    for i, moment in enumerate(moments):
        for j, step in enumerate(moment):
            outcomes.append(run_step(webhook, step, f"spend-{i}-{j}"))
    return outcomes


def test_a_year_of_one_user_keeps_every_pool_equal_to_its_records_after_every_step(webhook, db, fake_stripe):
    fake_stripe.add_session(PACK_SESSION, ("price_pack_500", 2))
    outcomes: list[tuple[str, str]] = []
    renewals = 0
    for i, moment in enumerate(year()):
        for j, step in enumerate(moment):
            outcome = run_step(webhook, step, f"spend-{i}-{j}")
            kind = step[0] if isinstance(step, tuple) else step["type"]
            outcomes.append((kind, outcome))
            if kind == "invoice.paid" and step["data"]["object"]["billing_reason"] == "subscription_cycle":
                renewals += 1
            assert_ledger_invariant(db, USER)
            if kind == "checkout.session.async_payment_succeeded":
                # The 1200 spend came before the pack was paid, so it drew the monthly pool.
                assert (user_doc(db, USER)["credits_monthly"], user_doc(db, USER)["credits_permanent"]) == (300, 1000)
    assert renewals == 12
    assert ("checkout.session.completed", "ignored") in outcomes
    assert outcomes.count(("invoice.payment_succeeded", "ignored")) == 14
    assert ("checkout.session.async_payment_succeeded", "applied") in outcomes
    assert ("customer.subscription.deleted", "applied") in outcomes
    assert {o for _, o in outcomes} == {"ignored", "applied", "spent"}

    doc = user_doc(db, USER)
    spends = 100 + 400 + 1200 + sum(150 * (n % 5) + 50 for n in range(4, 14))
    assert (doc["credits_monthly"], doc["credits_permanent"]) == (0, 0)
    assert (doc["total_earned"], doc["total_spent"]) == (300 + 300 + 700 + 11 * 1000 + 1000, spends)
    records = records_of(db, USER)
    grants = sorted(r["amount"] for r in records if r["type"] == "subscription_grant")
    assert grants == sorted([300, 300, 700] + [1000] * 11)
    # Pro renewals keep at most the cap of 500: P5 had 1300 left (800 expired), P13 1500 (1000).
    expired = [r["amount"] for r in records if r["type"] == "monthly_expired"]
    assert -800 in expired and sorted(expired)[0] == -1000 and len(expired) == 12


def storm(moments, rng: random.Random) -> list[list[Step]]:
    """Each event three times (two copies under fresh ids): the first in its own moment, the
    copies at random later moments, and every moment's deliveries shuffled. Spends keep their
    moments, as they happen in the app, not in Stripe."""
    schedule: list[list[Step]] = [[] for _ in moments]
    for i, moment in enumerate(moments):
        for step in moment:
            schedule[i].append(step)
            if not isinstance(step, tuple):
                for _ in range(2):
                    schedule[rng.randrange(i, len(moments))].append(sf.redelivered(step))
    for deliveries in schedule:
        spends = [s for s in deliveries if isinstance(s, tuple)]
        events = [s for s in deliveries if not isinstance(s, tuple)]
        rng.shuffle(events)
        # A spend moment holds only its spend; events that land there go after it.
        deliveries[:] = spends + events
    return schedule


def test_a_storm_of_triple_shuffled_deliveries_ends_exactly_as_one_in_order_delivery(
    webhook, db, fake_stripe, firestore_emulator
):
    fake_stripe.add_session(PACK_SESSION, ("price_pack_500", 2))
    moments = year()
    deliver_in_order(webhook, moments)
    expected = normalized(db)
    assert expected[0]["credits_monthly"] == 0 and len(expected[1]) > 30

    firestore_emulator.reset()
    outcomes = deliver_in_order(webhook, storm(moments, random.Random(20260101)))
    # 13 invoices renewing, the upgrade, the pack and the end each applied once, copied twice.
    assert outcomes.count("applied") == 16
    assert outcomes.count("duplicate") + outcomes.count("stale") == 2 * 16
    assert normalized(db) == expected
    assert_ledger_invariant(db, USER)


def test_a_fully_shuffled_storm_applies_every_source_at_most_once_and_ends_with_the_same_pools(
    webhook, db, fake_stripe, firestore_emulator
):
    fake_stripe.add_session(PACK_SESSION, ("price_pack_500", 2))
    moments = year(with_spends=False)
    deliver_in_order(webhook, moments)
    expected_pools = normalized(db)[0]

    firestore_emulator.reset()
    deliveries = [copy for moment in moments for e in moment for copy in (e, sf.redelivered(e), sf.redelivered(e))]
    random.Random(7).shuffle(deliveries)
    for event in deliveries:
        webhook.outcome(event)
        assert_ledger_invariant(db, USER)
    pools, records = normalized(db)
    # Renewals that arrive after a later period (or after the end) are stale, so the history may
    # be shorter than in order; what can never happen is a source applied twice.
    assert pools == {**expected_pools, "total_earned": pools["total_earned"]}
    by_source: dict[str, list[str]] = {}
    for kind, _, _, source, _ in records:
        by_source.setdefault(source, []).append(kind)
    assert sorted(by_source.pop(PACK_SESSION)) == ["addon_purchase"]
    for source, kinds in by_source.items():
        assert kinds.count("subscription_grant") <= 1 and kinds.count("monthly_expired") <= 1, (source, kinds)
    # Delivering the whole year again in order changes nothing.
    before = normalized(db)
    for moment in moments:
        for event in moment:
            assert webhook.outcome(sf.redelivered(event)) in ("duplicate", "stale", "ignored")
    assert normalized(db) == before

