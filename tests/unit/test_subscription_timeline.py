"""Subscription credits decided on the timeline (no Firestore): each named decision, fed the facts
in the order a test delivers them, ends the monthly pool where creation order leaves it."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from shared.billing import catalog, decisions, timeline
from shared.billing.events import Period
from shared.ledger import moves
from shared.ledger.accounts import Account

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CATALOG = catalog.parse({"plans": {"price_pro": {"monthly_credits": 1000, "rollover_cap": 500},
                                   "price_basic": {"monthly_credits": 300}}})
PRO, BASIC = CATALOG.plans["price_pro"], CATALOG.plans["price_basic"]


class User:
    """One user's monthly pool and subscription facts, as the user document keeps them."""

    def __init__(self, monthly: int = 0) -> None:
        self.monthly, self.data = monthly, {}

    def deliver(self, decide, inputs) -> decisions.Decision:
        line = timeline.load(self.data, self.monthly, moves.MOVES, moves.EPOCH)
        facts = decisions.Facts(Account("u", monthly=self.monthly), {}, NOW, line)
        decision = decide(facts, inputs)
        self.monthly += sum(entry.amount for entry in decision.entries)
        assert self.monthly >= 0
        self.data.update(decision.user_fields or {})
        return decision

    def spend(self, amount: int) -> None:
        before = self.monthly
        self.monthly -= amount
        recorded = moves.recorded({**self.data, "credits_monthly": before}, before, self.monthly, {})
        if recorded is not None:
            self.data[moves.MOVES] = recorded


def renewal(sub: str, start: int, plan=PRO, seats: int = 1):
    return decisions.decide_renewal, decisions.PlanLine(plan, seats, Period(start, start + 100), sub, f"{sub}:{start}")


def upgrade(sub: str, at: int, end: int, plan=PRO, key: str = ""):
    return decisions.decide_upgrade, decisions.PlanLine(plan, 1, Period(at, end), sub, key or f"in_{sub}_{at}")


def pause(sub: str, at: int):
    return decisions.decide_pause, decisions.SubscriptionEnd(at, sub, f"{sub}:{at}")


def resume(sub: str, at: int):
    return decisions.decide_resume, decisions.SubscriptionEnd(at, sub, f"{sub}:{at}")


def cancel(sub: str, at: int):
    return decisions.decide_cancellation, decisions.SubscriptionEnd(at, sub, sub)


def kinds(decision):
    return [(entry.type.value, entry.amount) for entry in decision.entries]


def test_a_renewal_keeps_up_to_the_cap_and_expires_the_rest():
    user = User(monthly=800)
    decision = user.deliver(*renewal("a", 100))
    assert decision.outcome == "applied" and decision.resets_monthly
    assert kinds(decision) == [("monthly_expired", -300), ("subscription_grant", 1000)]
    assert user.data["stripe_subscriptions"]["a"]["period_start"] == 100


def test_seats_multiply_the_allowance_and_nothing_to_forfeit_writes_only_the_grant():
    assert kinds(User().deliver(*renewal("a", 100, BASIC, seats=3))) == [("subscription_grant", 900)]


def test_a_period_applies_once_and_an_older_one_of_the_same_subscription_is_stale():
    user = User()
    user.deliver(*renewal("a", 200))
    assert user.deliver(*renewal("a", 200)).outcome == "duplicate"
    assert user.deliver(*renewal("a", 100)).outcome == "stale" and user.monthly == 1000


def test_an_upgrade_adds_the_difference_and_a_downgrade_is_ignored():
    user = User()
    user.deliver(*renewal("a", 100, BASIC))
    user.spend(50)
    assert kinds(user.deliver(*upgrade("a", 110, 200))) == [("subscription_grant", 700)]
    assert user.deliver(*upgrade("a", 150, 200, BASIC)).outcome == "ignored" and user.monthly == 950


def test_a_cancellation_empties_the_pool_once_and_a_later_pause_is_stale():
    user = User()
    user.deliver(*renewal("a", 100))
    assert kinds(user.deliver(*cancel("a", 150))) == [("monthly_expired", -1000)]
    assert user.deliver(*cancel("a", 150)).outcome == "duplicate"
    assert user.deliver(*pause("a", 160)).outcome == "stale"


def test_a_cancellation_leaves_the_pool_to_another_active_renewed_subscription():
    user = User()
    user.deliver(*renewal("old", 0, BASIC))
    user.deliver(*renewal("new", 100))
    assert user.deliver(*cancel("old", 120)).outcome == "ignored" and user.monthly == 1300


def test_a_pause_empties_the_pool_and_the_renewal_after_the_resume_fills_it():
    user = User()
    user.deliver(*renewal("a", 0))
    assert kinds(user.deliver(*pause("a", 50))) == [("monthly_expired", -1000)]
    assert user.deliver(*resume("a", 70)).outcome == "ignored"
    user.deliver(*renewal("a", 100))
    assert user.monthly == 1000


def test_a_spend_between_facts_is_kept_in_its_place_when_a_late_pause_arrives():
    user = User()
    user.deliver(*renewal("a", 0))
    user.spend(400)
    user.deliver(*renewal("a", 100))  # 600 left, 500 of it rolls over
    assert user.monthly == 1500
    user.deliver(*pause("a", 50))  # late: it came before the spend's renewal and emptied the pool
    assert user.monthly == 1000


CASES = {
    "two renewals and a pause": [renewal("a", 0), renewal("a", 100), pause("a", 150)],
    "a pause and its resume between renewals of a rollover plan": [renewal("a", 0), pause("a", 80), resume("a", 95),
                                                                   renewal("a", 100)],
    "an upgrade then a pause": [renewal("a", 0, BASIC), upgrade("a", 20, 100), pause("a", 50)],
    "an upgrade of the first period": [renewal("a", 0, BASIC), upgrade("a", 20, 100)],
    "an upgrade before its own period's renewal": [renewal("a", 0, BASIC), renewal("a", 100, BASIC),
                                                   upgrade("a", 110, 200)],
    "a replaced subscription paused after its replacement's first invoice": [
        renewal("old", 0, BASIC), renewal("new", 10), pause("old", 20)],
    "a replaced subscription cancelled before its replacement began": [
        renewal("old", 0), cancel("old", 20), renewal("new", 30), renewal("new", 130)],
    "a second pause after a resume": [renewal("a", 0, BASIC), pause("a", 5), resume("a", 10), renewal("a", 100, BASIC),
                                      pause("a", 140), resume("a", 150)],
}


def _skippable(order) -> list:
    """What the contract lets an order leave out: a renewal of a period older than one of the same
    subscription already delivered, and an upgrade of a period such a renewal closed."""
    latest, skip = {}, []
    for decide, line in order:
        if decide is decisions.decide_renewal:
            if line.period.start < latest.get(line.subscription_id, line.period.start):
                skip.append((decide, line))
            latest[line.subscription_id] = max(latest.get(line.subscription_id, line.period.start), line.period.start)
        elif decide is decisions.decide_upgrade and line.subscription_id in latest \
                and line.period.end <= latest[line.subscription_id]:
            skip.append((decide, line))
    return skip


@pytest.mark.parametrize("case", list(CASES))
def test_every_delivery_order_ends_with_the_creation_order_pool(case):
    facts = CASES[case]
    for order in itertools.permutations(facts):
        skip = _skippable(order)
        expected = User()
        for fact in facts:
            if fact not in skip:
                expected.deliver(*fact)
        user = User()
        for fact in order:
            user.deliver(*fact)
        assert user.monthly == expected.monthly, (case, [fact[0].__name__ for fact in order])
