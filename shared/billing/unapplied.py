"""Stripe events that could not be applied: kept with their reason and raw body until they are.

Rules enforced here:
- an event that ends `unapplied` is kept (or refreshed) in `webhook_unapplied/{event_id}`,
  counting the attempts, with its reason, raw body, customer and user;
- the kept copy is dropped once the event has any other outcome: in the same commit that
  applies it, or by `settle` when the outcome needed no commit (a duplicate, a stale period);
- `settle` is the one place that decides whether a kept copy goes; callers only say whether
  they know of one.
"""

from __future__ import annotations

from typing import Any, Optional

from ..common.validation import storable
from ..ledger import collections
from ..store import documents, scans
from ..store.client import utcnow

UNAPPLIED = "unapplied"
FAILED = "failed"


def path(event_id: str) -> str:
    return collections.unapplied_event(event_id)


def keep(event_id: str, fields: dict[str, Any]) -> None:
    """Keep (or refresh) an event that could not be applied, counting the attempts."""
    # A reason may quote what the event sent; Firestore stores only valid UTF-8 text.
    data = storable({**fields, "event_id": event_id})
    data.update(last_attempt_at=utcnow(), attempts=documents.increment(1))
    documents.put(path(event_id), data, merge=True)


def settle(event_id: str, outcome: str, kept_copy: bool) -> None:
    """Drop the kept copy of an event that now has an outcome, if one is still there."""
    if outcome not in (UNAPPLIED, FAILED) and kept_copy:
        documents.delete(path(event_id))


def is_kept(event_id: str) -> bool:
    return documents.read(path(event_id)) is not None


def pending(event_id: Optional[str] = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The kept events, oldest attempt first, or the one with `event_id` (or none)."""
    if event_id is not None:
        data = documents.read(path(event_id))
        return [data] if data else []
    return [snap.to_dict() for snap in scans.documents(collections.UNAPPLIED_EVENTS, order_by="last_attempt_at", limit=limit)]
