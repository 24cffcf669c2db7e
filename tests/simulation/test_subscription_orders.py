"""A subscription's events, delivered in random orders: the monthly pool ends as creation order leaves it.

Each generated history is one subscription's months as Stripe creates them: a first invoice (a
plan with or without rollover), perhaps an upgrade within the first period, a second period, a
pause and perhaps its resume and a third period, perhaps a cancellation. Each is delivered through
`billing.service.handle` on a fresh in-memory Firestore, in creation order and in random orders.

The oracle is the contract's (section 4, "Delivery order"): once everything is delivered, the
monthly pool equals delivery in creation order of the same events, except that a renewal that
arrives after a later period's renewal is `stale` and changes nothing, and so does an upgrade of a
period that such a renewal has already closed. The ledger invariant holds after every delivery.

`CREDITS_SIM_SUBSCRIPTIONS` sets how many histories run (default 300, 12 orders each); a failure
names its seed and order, and `CREDITS_SIM_SEED=<seed>` replays that history alone.
"""

from __future__ import annotations

import json
import os
import random


from shared.billing import service as webhooks
from shared.ledger import collections
from tests.support.fake_firestore import FakeFirestore, install
from tests.support.ledger import assert_ledger_of
from tests.support.stripe_story import Customer
from tools.local import stripe_events as sf

HISTORIES = int(os.environ.get("CREDITS_SIM_SUBSCRIPTIONS", "300"))
ORDERS = 12
PRO, STARTER = "price_pro_monthly", "price_starter_monthly"
RENEWALS = ("subscription_create", "subscription_cycle")


def generate(seed: int) -> tuple[str, list[dict]]:
    """One subscription's events in the order Stripe creates them."""
    rng = random.Random(seed)
    customer = Customer(f"subsim-{seed}", tag=f"subsim{seed}")
    plan = rng.choice([STARTER, PRO])
    events = [customer.renewal(1, plan)]
    if plan == STARTER and rng.random() < 0.5:
        events.append(customer.change(1, STARTER, PRO, day=rng.randint(1, 20)))
        plan = PRO
    events.append(customer.renewal(2, plan))
    second = sf.period(2)["start"]
    if rng.random() < 0.7:
        events.append(customer.paused(second + rng.randint(1, 12) * sf.DAY, plan))
        if rng.random() < 0.7:
            events.append(customer.resumed(second + rng.randint(14, 28) * sf.DAY, plan))
            events.append(customer.renewal(3, plan))
    if rng.random() < 0.3:
        events.append(customer.cancellation(sf.period(len(events))["end"] - sf.DAY, plan))
    return customer.user_id, events


def _renewal_start(event: dict):
    obj = event["data"]["object"]
    if event["type"] == "invoice.paid" and obj.get("billing_reason") in RENEWALS:
        return obj["lines"]["data"][-1]["period"]["start"]
    return None


def _stale_in(order: list[dict]) -> set[int]:
    """The events the contract lets an order leave out: renewals after a later one, and upgrades of
    a period such a renewal closed."""
    latest, stale = None, set()
    for event in order:
        obj = event["data"]["object"]
        if event["type"] == "invoice.paid" and obj.get("billing_reason") == "subscription_update":
            if latest is not None and obj["lines"]["data"][-1]["period"]["end"] <= latest:
                stale.add(id(event))
            continue
        start = _renewal_start(event)
        if start is None:
            continue
        if latest is not None and start < latest:
            stale.add(id(event))
        latest = start if latest is None else max(latest, start)
    return stale


def _monthly(events: list[dict], user_id: str, monkeypatch, seed: int) -> int:
    fake = install(FakeFirestore(), monkeypatch)
    for event in events:
        webhooks.handle(event, json.dumps(event))
        user = fake.doc(collections.user(user_id)) or {}
        records = [r for r in fake.docs(collections.TRANSACTIONS).values() if r.get("user_id") == user_id]
        try:
            # Each pool is the sum of its records, numbered 1..n with their running sums.
            assert_ledger_of(user, records)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from None
    return (fake.doc(collections.user(user_id)) or {}).get("credits_monthly", 0)


def test_every_delivery_order_of_a_subscription_ends_with_the_creation_order_pool(monkeypatch, capsys):
    seeds = [int(os.environ["CREDITS_SIM_SEED"])] if os.environ.get("CREDITS_SIM_SEED") else range(1, HISTORIES + 1)
    for seed in seeds:
        user_id, events = generate(seed)
        rng = random.Random(seed)
        for _ in range(ORDERS):
            order = events[:]
            rng.shuffle(order)
            stale = _stale_in(order)
            expected = _monthly([e for e in events if id(e) not in stale], user_id, monkeypatch, seed)
            got = _monthly(order, user_id, monkeypatch, seed)
            labels = [e["type"].split(".")[-1] + ":" + (e["data"]["object"].get("billing_reason") or "") for e in order]
            assert got == expected, (f"seed {seed}: monthly {got} delivered as {labels}, {expected} in creation "
                                     f"order; replay with CREDITS_SIM_SEED={seed}")
        capsys.readouterr()
