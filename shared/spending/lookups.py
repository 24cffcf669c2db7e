"""What support reads to find a user and their auto top-up attempts (no writes).

Rules enforced here:
- a spend key finds the user whose spend (or hold) it marks; a refund's own key finds nobody;
- a hold id finds its user through the hold document;
- a user's auto top-up attempts are read newest first by the same indexed query as
  `credits topup show` (`scans.user_attempts`), without the PaymentIntent's `client_secret` (only the app, through `topup.action_required`,
  may hand it to the customer; support never sees it).
"""

from __future__ import annotations

from typing import Any, Optional

from ..ledger import collections
from ..store import documents, scans
from .refunds import REFUND_KIND


def user_of_spend_key(spend_key: str) -> Optional[str]:
    marker = documents.read(collections.spend_key(spend_key))
    if not marker or marker.get("kind") == REFUND_KIND:
        return None
    return marker.get("user_id")


def user_of_hold(hold_id: str) -> Optional[str]:
    hold = documents.read(collections.hold(hold_id))
    return hold.get("user_id") if hold else None


def has_record(user_id: str) -> bool:
    """Whether the user has a credits document."""
    return documents.read(collections.user(user_id)) is not None


def topup_attempts(user_id: str, limit: int = 20) -> list[dict[str, Any]]:
    return [{name: value for name, value in row.items() if name != "client_secret"}
            for row in scans.user_attempts(user_id, limit)]
