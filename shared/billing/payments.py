"""The pure rules of money back on add-on packs: refunds and disputes of a pack's payment (no I/O).

Rules enforced here (CONTRACT section 4b):
- a payment (a Stripe PaymentIntent) that an add-on session paid for remembers its user and the
  credits `granted`; facts about it (each charge's `amount` and cumulative `amount_refunded`,
  each dispute and how it closed) are kept, and a fact never moves backwards, so repeats and any
  delivery order give the same state;
- refunds claim, in total, `floor(granted x amount_refunded / amount)` (summed over the
  payment's charges), never more than what disputes still holding credits leave of `granted`;
- a dispute claims, once, every credit of the payment not yet claimed; one that closes `won`
  gives back what it claimed (its own debt cancelled first), after which refunds may claim
  what they could not before; a dispute known to be won before it claimed anything claims and
  gives back in the same change, so the pools end as when its close comes after it;
- a claim is taken permanent pool first, then monthly, the rest owed (`accounts.take_back`),
  `source` the charge or dispute id; credits given back pay other debts first;
- facts about a payment whose session is not applied yet are only remembered (pending); the
  session's grant settles them in its own change;
- an auto top-up's payment is remembered the same way (`topup_attempt` names its attempt), so
  its refunds and disputes take its credits back by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..ledger import accounts
from ..ledger.accounts import Account, Entry
from .events import Charge, Dispute

WON = "won"
# Fact comparisons: what a delivered fact adds to what the payment knows.
NEW, SAME, OLDER = "new", "same", "older"


@dataclass
class Payment:
    """What is remembered of one add-on payment (`stripe_payments/{payment_intent}`)."""

    payment_intent: str
    user_id: Optional[str] = None
    session_id: Optional[str] = None
    granted: Optional[int] = None
    # charge id -> {"amount": int, "amount_refunded": int (the largest seen)}
    charges: dict[str, dict[str, int]] = field(default_factory=dict)
    # Credits refunds have claimed so far (taken from the pools or owed).
    refund_claimed: int = 0
    # dispute id -> {"charge": id, "status": str, "claimed": int or None, "reinstated": bool}
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The auto top-up attempt that made this payment (None: a pack's Checkout Session).
    topup_attempt: Optional[str] = None

    @property
    def applied(self) -> bool:
        return self.user_id is not None and self.granted is not None

    def to_dict(self, now) -> dict[str, Any]:
        return {
            "payment_intent": self.payment_intent,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "granted": self.granted,
            "charges": self.charges,
            "refund_claimed": self.refund_claimed,
            "disputes": self.disputes,
            "topup_attempt": self.topup_attempt,
            "updated_at": now,
        }

    @classmethod
    def from_dict(cls, payment_intent: str, data: Optional[dict[str, Any]]) -> "Payment":
        data = data or {}
        return cls(
            payment_intent=payment_intent,
            user_id=data.get("user_id"),
            session_id=data.get("session_id"),
            granted=data.get("granted"),
            charges={k: dict(v) for k, v in (data.get("charges") or {}).items()},
            refund_claimed=int(data.get("refund_claimed") or 0),
            disputes={k: dict(v) for k, v in (data.get("disputes") or {}).items()},
            topup_attempt=data.get("topup_attempt"),
        )


def note_charge(payment: Payment, charge: Charge) -> str:
    """Remember a charge's cumulative refund; NEW, SAME, or OLDER (a smaller total than known)."""
    known = payment.charges.get(charge.charge_id)
    if known is not None:
        if charge.amount_refunded < known["amount_refunded"]:
            return OLDER
        if charge.amount_refunded == known["amount_refunded"]:
            return SAME
    payment.charges[charge.charge_id] = {"amount": charge.amount, "amount_refunded": charge.amount_refunded}
    return NEW


def note_dispute(payment: Payment, dispute: Dispute, closed: bool) -> str:
    """Remember a dispute (created, or closed with its status); NEW or SAME."""
    known = payment.disputes.get(dispute.dispute_id)
    if known is None:
        payment.disputes[dispute.dispute_id] = {
            "charge": dispute.charge_id,
            "status": dispute.status if closed else None,
            "claimed": None,
            "reinstated": False,
        }
        return NEW
    if closed and known.get("status") is None:
        known["status"] = dispute.status
        return NEW
    return SAME


def refund_due(payment: Payment) -> int:
    """What refunds claim in total: `floor(granted x amount_refunded / amount)` per charge, at most granted."""
    granted = payment.granted or 0
    due = sum(
        granted * min(c["amount_refunded"], c["amount"]) // c["amount"]
        for c in payment.charges.values()
        if c.get("amount")
    )
    return min(due, granted)


def _holding(payment: Payment) -> int:
    """Credits claimed by disputes that still hold them (not given back)."""
    return sum(d["claimed"] or 0 for d in payment.disputes.values() if not d.get("reinstated"))


def _refund_source(payment: Payment) -> str:
    refunded = sorted(cid for cid, c in payment.charges.items() if c["amount_refunded"] > 0)
    return (refunded or sorted(payment.charges) or [payment.payment_intent])[0]


def _claim_refunds(payment: Payment, account: Account, entries: list[Entry]) -> Account:
    granted = payment.granted or 0
    target = min(refund_due(payment), granted - _holding(payment))
    more = target - payment.refund_claimed
    if more > 0:
        account, taken = accounts.take_back(account, more, _refund_source(payment),
                                            f"Add-on pack refunded: {more} credits taken back ({payment.payment_intent})")
        entries.extend(taken)
        payment.refund_claimed = target
    return account


def settle(payment: Payment, account: Account) -> tuple[Account, list[Entry]]:
    """Take back or give back whatever the payment's known facts call for and nothing has done yet.

    Mutates `payment` (what it has claimed) and returns the account after it and the entries.
    A pending payment (session not applied) settles nothing.
    """
    entries: list[Entry] = []
    if not payment.applied:
        return account, entries
    account = _claim_refunds(payment, account, entries)
    for dispute_id in sorted(payment.disputes):
        dispute = payment.disputes[dispute_id]
        if dispute["claimed"] is not None:
            continue
        # A dispute known to be won before it took anything still takes and gives back, in this one
        # change, exactly as when its close comes after it: what it gives back goes to the permanent
        # pool whatever pool it was taken from, so skipping both would leave another split of pools.
        claim = payment.granted - payment.refund_claimed - _holding(payment)
        dispute["claimed"] = max(claim, 0)
        if claim > 0:
            account, taken = accounts.take_back(account, claim, dispute_id,
                                                f"Add-on pack disputed: {claim} credits taken back ({payment.payment_intent})")
            entries.extend(taken)
    for dispute_id in sorted(payment.disputes):
        dispute = payment.disputes[dispute_id]
        if dispute.get("status") != WON or dispute.get("reinstated"):
            continue
        dispute["reinstated"] = True
        account, given = accounts.reinstate(account, dispute["claimed"] or 0, dispute_id,
                                            f"Dispute won: add-on credits given back ({payment.payment_intent})")
        # Credits given back pay what other sources still owe, like any grant.
        account, collected = accounts.collect_owed(account, given)
        entries.extend(given + collected)
    # A won dispute frees room that refunds could not claim while it held the credits.
    account = _claim_refunds(payment, account, entries)
    return account, entries


def claimed_total(payment: Payment) -> int:
    """Everything the payment's refunds and disputes hold: never more than it granted."""
    return payment.refund_claimed + _holding(payment)
