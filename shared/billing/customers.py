"""The link from a Stripe customer to a user, learned from every event that names both.

Rules enforced here:
- `stripe_customers/{customer_id}` holds the user the latest event named; a write of the same
  link again is harmless, so the link is bookkeeping outside any user's commit, except when a
  change writes it in its own commit (`link_document`);
- an event that names neither a user nor a linked customer cannot be applied;
- a user's customer (for an auto top-up without its own `customer`) is the customer most
  recently linked to that user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from ..ledger import collections
from ..store import documents, scans
from ..store.client import utcnow


def link_document(customer_id: str, user_id: str, event_id: str, now: datetime) -> dict[str, Any]:
    return {"customer_id": customer_id, "user_id": user_id, "learned_from": event_id, "updated_at": now}


def user_of(customer_id: str) -> Optional[str]:
    """The user a Stripe customer was last linked to, or None."""
    data = documents.read(collections.customer_link(customer_id))
    return data.get("user_id") if data else None


def link(customer_id: str, user_id: str, event_id: str) -> None:
    """Remember which user a Stripe customer belongs to (the latest event that says so wins)."""
    documents.put(collections.customer_link(customer_id), link_document(customer_id, user_id, event_id, utcnow()))


def customer_of(user_id: str) -> Optional[str]:
    """The Stripe customer most recently linked to `user_id`, or None."""
    links = [snap.to_dict() for snap in scans.documents(collections.STRIPE_CUSTOMERS, "user_id", user_id)]
    links.sort(key=lambda link: link.get("updated_at") or 0)
    return links[-1]["customer_id"] if links else None
