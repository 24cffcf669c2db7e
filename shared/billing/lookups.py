"""What support reads of one user's billing: payments, subscriptions, kept events (no writes).

Rules enforced here:
- a read writes nothing and reads only small sets: one user's payment documents (an equality
  filter on `user_id`), the user document's subscription states, the kept unapplied events;
- a payment is shown as remembered (`payments.Payment`), with what refunds and disputes claimed;
  what is still owed for it is on the user document (`credits_owed_by`, by charge or dispute id);
- a kept event belongs to the user when it names the user or one of the user's customers.
"""

from __future__ import annotations

from typing import Any, Optional

from ..ledger import collections
from ..store import documents, scans
from . import customers, unapplied
from .decisions import SUBSCRIPTIONS_FIELD
from .payments import Payment, claimed_total


def user_of_customer(customer_id: str) -> Optional[str]:
    return customers.user_of(customer_id)


def customer_of(user_id: str) -> Optional[str]:
    return customers.customer_of(user_id)


def payments_of(user_id: str) -> list[dict[str, Any]]:
    """The user's add-on and top-up payments, newest first, each with what was claimed back."""
    rows = []
    for snap in scans.documents(collections.STRIPE_PAYMENTS, "user_id", user_id):
        data = snap.to_dict()
        payment = Payment.from_dict(data.get("payment_intent") or snap.id, data)
        rows.append({
            "payment_intent": payment.payment_intent,
            "session_id": payment.session_id,
            "topup_attempt": payment.topup_attempt,
            "granted": payment.granted,
            "charges": [{"charge_id": cid, **facts} for cid, facts in sorted(payment.charges.items())],
            "refund_claimed": payment.refund_claimed,
            "disputes": [{"dispute_id": did, **facts} for did, facts in sorted(payment.disputes.items())],
            "claimed": claimed_total(payment),
            "updated_at": data.get("updated_at"),
        })
    return sorted(rows, key=lambda row: str(row["updated_at"] or ""), reverse=True)


def subscriptions_of(user_id: str) -> dict[str, dict[str, Any]]:
    """Each subscription's state as the user document keeps it (`stripe_subscriptions`)."""
    data = documents.read(collections.user(user_id)) or {}
    subs = data.get(SUBSCRIPTIONS_FIELD)
    return dict(subs) if isinstance(subs, dict) else {}


def kept_events_of(user_id: str, customer_id: Optional[str] = None) -> list[dict[str, Any]]:
    """The kept unapplied Stripe events that name the user or its customer."""
    return [event for event in unapplied.pending()
            if event.get("user_id") == user_id or (customer_id and event.get("customer_id") == customer_id)]
