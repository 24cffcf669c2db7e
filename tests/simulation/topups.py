"""Auto top-up in the simulation: a Stripe double that counts what it charges, the deliveries a run's
charges cause, and the invariants of CONTRACT section 9 judged after every step and at the end.

`SimStripe` stands in for `shared.billing.stripe_api` (prices, the customer's default payment method,
PaymentIntents created off-session with the attempt id as idempotency key), in process: a repeated
key gets the first answer again, as Stripe answers it; each PaymentIntent it makes is counted by
the attempt its metadata names, and its outcome (by Stripe's test payment methods) queues the
webhook Stripe sends. In a judged run an answer may be lost on the way back (the charge was made,
the function hears a fault and its trigger is delivered again). Ids are derived from the attempt
id, so a run delivered again makes the same PaymentIntents.

What is checked after every step (`check_step`):
- at most one attempt of the user is pending, and an attempt is created only once every attempt
  pending before it has settled, and only by a settings `PUT` or while the setting is enabled
  and `active`;
- per calendar month, the attempts that succeeded, are pending or wait for action are at most
  the monthly limit;
- Stripe was asked for a new PaymentIntent only for a pending attempt its enabled, `active`
  setting names (nothing is charged after disable or past the limit), and at most one per attempt;
- an attempt that failed moved the setting's `failures` by one; a hard decline (or no payment
  method) disabled it at once, the third soft decline in a row too; a succeeded attempt wrote
  one `auto_topup` record of its credits, with the PaymentIntent as source, and no PaymentIntent
  has two; a refund of a top-up payment applied disabled the setting (`payment_reversed`);

and at the end (`check_end`): every PaymentIntent that succeeded landed its credits exactly once,
nothing else did, and no attempt is left pending after the last sweep.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Optional

from tests.simulation import months
from tests.simulation.months import APP, STRIPE, TRIGGER, Delivery, Fact, History
from tools.local import stripe_events as sf

# Test payment method -> (error code, decline code) of its off-session charge; None: it succeeds.
METHODS: dict[str, Optional[tuple[str, str]]] = {
    months.SUCCEEDS: None,
    months.SOFT: ("card_declined", "generic_decline"),
    months.HARD: ("card_declined", "lost_card"),
    months.AUTH: ("authentication_required", "authentication_required"),
}
COUNTED = ("pending", "succeeded", "action_required")
LOSE_ANSWER = 0.15  # how often a judged run loses a create call's answer


class SimStripe:
    def __init__(self, history: History, fake, rng: Optional[random.Random]) -> None:
        self.history, self.fake, self.rng = history, fake, rng
        topup = history.topup or {}
        self.customers = {topup.get("customer"): topup.get("default_method")} if topup else {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, Any] = {}
        self.made: Counter = Counter()  # attempt id (from metadata) -> PaymentIntents made for it
        self.outbox: list[dict[str, Any]] = []
        self.violations: list[str] = []
        # Attempts canceled, then settled by the success of a charge made before the cancellation.
        self.late: set[str] = set()

    def install(self, monkeypatch) -> "SimStripe":
        from shared.billing import stripe_api

        monkeypatch.setattr(stripe_api, "price", self.price)
        monkeypatch.setattr(stripe_api, "default_payment_method", self.default_payment_method)
        monkeypatch.setattr(stripe_api, "create_payment_intent", self.create_payment_intent)
        return self

    def price(self, price_id: str):
        from shared.billing.stripe_api import Price

        credits_cents = months.PACKS.get(price_id)
        return Price(credits_cents[1], "usd") if credits_cents else None

    def default_payment_method(self, customer_id: str) -> tuple[bool, Optional[str]]:
        if customer_id not in self.customers:
            return False, None
        return True, self.customers[customer_id]

    def create_payment_intent(self, key: str, amount: int, currency: str, customer: str, method: str,
                              metadata: dict[str, str]):
        from shared.common.errors import StripeUnavailable

        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = self._new_intent(key, amount, currency, customer, method, metadata)
        if self.rng is not None and self.rng.random() < LOSE_ANSWER:
            raise StripeUnavailable("the simulated Stripe answer was lost")
        return answer

    def _new_intent(self, key, amount, currency, customer, method, metadata):
        from shared.billing.stripe_api import IntentAnswer
        from shared.ledger import autotopup, collections

        attempt_id = metadata.get("topup_attempt_id")
        attempt = self.fake.doc(collections.topup_attempt(key)) or {}
        setting = (self.fake.doc(collections.user(self.history.user_id)) or {}).get(autotopup.FIELD) or {}
        if not (attempt.get("status") == "pending" and setting.get("enabled") and setting.get("status") == "active"
                and setting.get("pending_attempt") == key):
            self.violations.append(f"attempt {key} ({attempt.get('status')}) was charged with the setting {setting}")
        self.made[attempt_id] += 1
        if self.made[attempt_id] > 1:
            self.violations.append(f"attempt {attempt_id} was charged {self.made[attempt_id]} times")
        if customer not in self.customers or method not in METHODS:
            return IntentAnswer(None, error_type="invalid_request_error", code="resource_missing")
        intent_id = "pi_" + key.removeprefix("topup_")
        intent = {"id": intent_id, "object": "payment_intent", "amount": amount, "currency": currency,
                  "customer": customer, "payment_method": method, "metadata": dict(metadata),
                  "client_secret": f"{intent_id}_secret", "latest_charge": None, "last_payment_error": None}
        self.intents[intent_id] = intent
        failure = METHODS[method]
        if failure is None:
            intent.update(status="succeeded", latest_charge="ch_" + key.removeprefix("topup_"))
            self.history.topup_payments[intent_id] = intent["latest_charge"]
            self._send("payment_intent.succeeded", intent)
            return IntentAnswer(intent_id, "succeeded", intent["client_secret"])
        code, decline = failure
        intent.update(status="requires_action" if code == "authentication_required" else "requires_payment_method",
                      last_payment_error={"type": "card_error", "code": code, "decline_code": decline})
        self._send("payment_intent.payment_failed", intent)
        return IntentAnswer(intent_id, intent["status"], intent["client_secret"], "card_error", code, decline)

    def _send(self, event_type: str, intent: dict[str, Any]) -> None:
        event = sf.event(event_type, intent, event_id=f"evt_{intent['id']}_{event_type.split('.')[-1]}")
        self.outbox.append(event)


def spawned(history: History, stripe: SimStripe, fake, seen: set[str], now: int,
            rng: random.Random) -> list[Delivery]:
    """What the step just delivered caused: Eventarc's triggers of each attempt it created (none to
    three, late at times: the sweep charges an attempt whose trigger never came), the webhooks of
    each charge Stripe made (once or twice, some re-created under a fresh id, in any order with
    the charge's answer), and sometimes a refund of a top-up payment that succeeded."""
    from shared.ledger import collections

    out: list[Delivery] = []
    for name in fake.names(collections.TOPUPS):
        if name in seen:
            continue
        seen.add(name)
        attempt = fake.doc(name)
        if attempt.get("user_id") != history.user_id:
            continue
        attempt_id = attempt["attempt_id"]
        fact = Fact(f"trigger-{attempt_id}", TRIGGER, now, f"trigger of {attempt_id[-12:]}", {"attempt_id": attempt_id})
        for n in range(rng.choices([0, 1, 2, 3], weights=[1, 6, 2, 1])[0]):
            delay = rng.randint(0, 30) if rng.random() < 0.7 else rng.randint(30, 2 * months.HOUR)
            out.append(Delivery(fact, now + delay, fact.body, _fault(rng), again=n > 0))
    events, stripe.outbox = stripe.outbox, []
    for event in events:
        fact = Fact(event["id"], STRIPE, now, f"{event['type']} {event['data']['object']['id'][-12:]}", event)
        for n in range(1 if rng.random() < 0.7 else 2):
            body = event
            if n and rng.random() < 0.5:
                body = {**event, "id": f"{event['id']}_r{rng.randint(0, 999)}"}
                history.copies[body["id"]] = event["id"]
            delay = rng.randint(0, 60) if rng.random() < 0.6 else rng.randint(60, 3 * months.HOUR)
            out.append(Delivery(fact, now + delay, body, _fault(rng), again=n > 0))
        intent = event["data"]["object"]
        if event["type"] == "payment_intent.succeeded" and rng.random() < 0.25:
            refunded = intent["amount"] if rng.random() < 0.5 else intent["amount"] // 2
            charge = sf.charge(intent["latest_charge"], intent["id"], intent["amount"], refunded, intent["customer"])
            at = now + rng.randint(60, 3 * months.DAY)
            refund = sf.event("charge.refunded", charge, event_id=f"evt_{intent['id']}_refunded")
            refund["created"] = at
            fact = Fact(refund["id"], STRIPE, at, f"top-up {intent['id'][-12:]} refunded to {refunded}", refund)
            out.append(Delivery(fact, at + rng.randint(0, 600), refund, _fault(rng)))
    return out


def _fault(rng: random.Random) -> Optional[str]:
    return rng.choices([None, months.LOSE_REPLY, months.STALL], weights=[8, 1, 1])[0]


def attempts_of(history: History, fake) -> dict[str, dict[str, Any]]:
    from shared.ledger import collections

    return {doc["attempt_id"]: doc for doc in fake.docs(collections.TOPUPS).values()
            if doc.get("user_id") == history.user_id}


def _month(doc: dict[str, Any]) -> str:
    return doc["created_at"].strftime("%Y-%m")


def check_step(history: History, stripe: SimStripe, delivery: Delivery, answer, before: dict[str, dict],
               after: dict[str, dict], setting_before: Optional[dict], setting_after: Optional[dict],
               new_records: list[dict], fail) -> None:
    """The invariants of the module's docstring, for one step (`fail(message)` raises)."""
    if stripe.violations:
        fail(stripe.violations[0])
    pending = [a for a, doc in after.items() if doc["status"] == "pending"]
    if len(pending) > 1:
        fail(f"{len(pending)} attempts are pending at once: {pending}")
    created = [a for a in after if a not in before]
    is_put = delivery.fact.kind == APP and delivery.body.get("op") == "settings"
    for attempt_id in created:
        made = after[attempt_id]["created_at"]
        for other, doc in before.items():
            if doc["status"] == "pending" and (after[other]["status"] == "pending"
                                               or after[other].get("settled_at") is None
                                               or after[other]["settled_at"] > made):
                fail(f"attempt {attempt_id} was created while {other} was pending")
        if not is_put and not (setting_before and setting_before.get("enabled")
                               and setting_before.get("status") == "active"):
            fail(f"attempt {attempt_id} was created though the setting was {setting_before}")
    limit = history.topup["monthly_limit"]
    for attempt_id, doc in after.items():
        if doc["status"] == "succeeded" and (before.get(attempt_id) or {}).get("status") == "canceled":
            stripe.late.add(attempt_id)  # charged before the setting stopped: not a charge past the limit
    counted = Counter(_month(doc) for a, doc in after.items() if doc["status"] in COUNTED and a not in stripe.late)
    if any(n > limit for n in counted.values()):
        fail(f"more attempts counted in a month than its limit {limit}: {dict(counted)}")
    topup_records = Counter(r["source"] for r in new_records if r["type"] == "auto_topup")
    for attempt_id, doc in after.items():
        old = before.get(attempt_id) or {}
        if doc["status"] == old.get("status"):
            continue
        if doc["status"] == "succeeded":
            intent = doc.get("payment_intent")
            landed = [r["amount"] for r in new_records if r["type"] == "auto_topup" and r["source"] == intent]
            if landed != [doc["credits"]]:
                fail(f"attempt {attempt_id} succeeded with {landed} credits landed for {intent}")
        elif doc["status"] == "failed" and old.get("status") == "pending" and setting_before and setting_after:
            failures = setting_after.get("failures")
            reason = doc.get("reason")
            if reason == "missing_payment_method":
                if setting_after.get("status") != "disabled":
                    fail(f"attempt {attempt_id} found no payment method, the setting is {setting_after}")
                continue
            if failures != setting_before.get("failures", 0) + 1:
                fail(f"attempt {attempt_id} failed ({reason}); failures {setting_before.get('failures')} -> {failures}")
            if reason == "lost_card" and (setting_after.get("status"), setting_after.get("reason")) != (
                    "disabled", "card_declined"):
                fail(f"a hard decline left the setting {setting_after}")
            if failures >= 3 and setting_after.get("status") != "disabled":
                fail(f"{failures} failures in a row left the setting {setting_after}")
    if any(n > 1 for n in topup_records.values()):
        fail(f"a PaymentIntent landed twice in one step: {dict(topup_records)}")
    body = delivery.body
    if (delivery.fact.kind == STRIPE and body.get("type") == "charge.refunded" and setting_after
            and body["data"]["object"]["payment_intent"] in history.topup_payments
            and answer.body.get("outcome") == "applied"
            and (setting_after.get("status"), setting_after.get("reason")) != ("disabled", "payment_reversed")):
        fail(f"a refund of a top-up payment left the setting {setting_after}")


def check_end(history: History, stripe: SimStripe, records: list[dict], attempts: dict[str, dict], fail) -> None:
    landed = Counter()
    for r in records:
        if r["type"] == "auto_topup":
            landed[r["source"]] += r["amount"]
    for intent_id, intent in stripe.intents.items():
        attempt = attempts.get(intent["metadata"]["topup_attempt_id"]) or {}
        expected = attempt.get("credits") if intent["status"] == "succeeded" else None
        got = landed.pop(intent_id, None)
        if got != expected:
            fail(f"PaymentIntent {intent_id} ({intent['status']}, attempt {attempt.get('status')}) landed {got} "
                 f"credits, not {expected}")
    if landed:
        fail(f"credits landed for no succeeded PaymentIntent: {dict(landed)}")
    left = [a for a, doc in attempts.items() if doc["status"] == "pending"]
    if left:
        fail(f"attempts {left} are still pending after the last sweep")
