"""Generated histories of one user's add-on packs and promotions, delivered in any order with faults.

A history is what Stripe and marketing create for one user, in the order they create it: add-on
packs bought (a Checkout Session, its PaymentIntent and charge), refunds of a pack in parts (each
`charge.refunded` carries the cumulative `amount_refunded`), disputes (created, then closed won or
lost), and promo grants. A delivery plan is that history as it arrives: shuffled, with some
messages delivered twice (the same event again, or re-created under a fresh event id), some
commits whose reply is lost after they landed, and some held past their deadline (the sender is
told 503 and delivers again later; the held commit is released afterwards and must be refused).

Everything is drawn from one seed, so a failing history is replayed by its seed alone.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from tools.local import stripe_events as sf

PACK_PRICE = "price_pack_500"
PACK_CREDITS = 500
CENTS_PER_PACK = 1000


@dataclass(frozen=True)
class Message:
    """One thing to deliver: a Stripe event, or a promo grant."""

    kind: str  # "stripe" or "promo"
    body: dict[str, Any]
    label: str

    def copy_with_new_id(self, rng: random.Random) -> "Message":
        """The same event re-created by Stripe under a fresh id (its content unchanged)."""
        body = copy.deepcopy(self.body)
        body["id"] = f"evt_sim_{rng.getrandbits(48):012x}"
        return Message(self.kind, body, self.label + " (re-created)")


@dataclass
class History:
    seed: int
    user_id: str
    messages: list[Message] = field(default_factory=list)
    # session id -> the line items the Stripe API returns for it
    line_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # payment intent -> credits its session grants
    granted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    message: Message
    # "lose_reply": the commit lands and its reply is lost; "hold": the commit is held past its deadline.
    fault: Optional[str] = None


def _event(rng: random.Random, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    body = sf.event(event_type, obj, event_id=f"evt_sim_{rng.getrandbits(48):012x}")
    body["created"] = 1_790_000_000
    return body


def generate(seed: int) -> History:
    """One user's history, as Stripe and marketing create it, drawn from `seed`."""
    rng = random.Random(seed)
    user_id = f"sim-{seed}"
    history = History(seed, user_id)
    customer = f"cus_sim_{seed}"
    for pack in range(rng.randint(1, 3)):
        quantity = rng.randint(1, 2)
        session_id, payment_intent, charge_id = f"cs_sim_{seed}_{pack}", f"pi_sim_{seed}_{pack}", f"ch_sim_{seed}_{pack}"
        history.line_items[session_id] = [sf.checkout_line_item(PACK_PRICE, quantity)]
        history.granted[payment_intent] = PACK_CREDITS * quantity
        session = sf.checkout_session("payment", "paid", customer, client_reference_id=user_id,
                                      session_id=session_id, payment_intent=payment_intent)
        history.messages.append(Message("stripe", _event(rng, "checkout.session.completed", session), f"pack {pack} bought"))
        amount = CENTS_PER_PACK * quantity
        refunded = 0
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            refunded = min(amount, refunded + rng.choice([1, amount // 4, amount // 3, amount // 2, amount]))
            charge = sf.charge(charge_id, payment_intent, amount, refunded, customer)
            history.messages.append(Message("stripe", _event(rng, "charge.refunded", charge),
                                            f"pack {pack} refunded to {refunded}/{amount}"))
        if rng.random() < 0.4:
            dispute_id = f"dp_sim_{seed}_{pack}"
            dispute = sf.dispute(dispute_id, charge_id, payment_intent, amount, "needs_response")
            history.messages.append(Message("stripe", _event(rng, "charge.dispute.created", dispute),
                                            f"pack {pack} disputed"))
            if rng.random() < 0.7:
                status = rng.choice(["won", "lost"])
                closed = sf.dispute(dispute_id, charge_id, payment_intent, amount, status)
                history.messages.append(Message("stripe", _event(rng, "charge.dispute.closed", closed),
                                                f"pack {pack} dispute {status}"))
    for grant in range(rng.choice([0, 0, 1, 2])):
        body = {"grant_id": f"promo-sim-{seed}-{grant}", "user_ids": [user_id], "amount": rng.choice([10, 50, 700])}
        history.messages.append(Message("promo", body, f"promo {grant}"))
    return history


def delivery_plan(history: History, rng: random.Random) -> list[Delivery]:
    """The history as it arrives: any order, some messages twice, some commits with faults."""
    messages = list(history.messages)
    rng.shuffle(messages)
    plan: list[Delivery] = []
    for message in messages:
        fault = rng.choices([None, "lose_reply", "hold"], weights=[8, 1, 1])[0]
        plan.append(Delivery(message, fault))
        if rng.random() < 0.25:
            again = message.copy_with_new_id(rng) if message.kind == "stripe" and rng.random() < 0.5 else message
            plan.insert(rng.randint(0, len(plan)), Delivery(again))
    return plan


def raw(message: Message) -> str:
    return json.dumps(message.body, separators=(",", ":"))
