"""The journal of Stripe events: every event received, what Stripe sent and what became of it.

Rules enforced here:
- every verified event gets `webhook_events/{event_id}`, whatever its outcome: its type, Stripe's
  `created` and `api_version`, the customer and user, the raw body as received, the `outcome` and
  `reason` of its latest delivery, `deliveries` (how many were received) and `last_received_at`;
- an event that changes anything is journaled in the same commit as the change, so `applied_at`
  is set exactly when its credits changed; an outcome that needed no commit (a duplicate, a
  stale period, an ignored type, an unapplied event) is journaled by one merge write after the
  decision, which never clears `applied_at`;
- entries expire `RETENTION` after their last delivery (Firestore's TTL on `expire_at`): long
  after Stripe stops retrying (3 days), long enough for a year's questions from support.
No I/O: these functions build the documents; the service writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from ..common.validation import storable
from ..ledger import collections
from .outcomes import Outcome

RETENTION = timedelta(days=400)


@dataclass(frozen=True)
class JournalEntry:
    """The parts of an event the journal keeps whatever became of it."""

    event_id: str
    event_type: str
    created: int
    api_version: Optional[str]
    customer_id: Optional[str]
    raw: str

    @property
    def path(self) -> str:
        return collections.webhook_event(self.event_id)


def journal_fields(entry: JournalEntry, outcome: Outcome, reason: str, user_id: Optional[str],
                   now: datetime) -> dict[str, Any]:
    """The fields one delivery sets (merged over what earlier deliveries left)."""
    return storable({
        "event_id": entry.event_id,
        "event_type": entry.event_type,
        "created": entry.created,
        "api_version": entry.api_version,
        "customer_id": entry.customer_id,
        "user_id": user_id,
        "outcome": str(outcome),
        "reason": reason or None,
        "raw": entry.raw,
        "last_received_at": now,
        "expire_at": now + RETENTION,
    })


def journal_document(entry: JournalEntry, outcome: Outcome, reason: str, user_id: Optional[str],
                     stored: Optional[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The whole entry written in the commit that changes something, over the one read."""
    document = dict(stored or {})
    document.update(journal_fields(entry, outcome, reason, user_id, now))
    document["deliveries"] = int(document.get("deliveries") or 0) + 1
    if outcome == Outcome.APPLIED:
        document["applied_at"] = now
    return document
