"""Stripe events that could not be applied: kept with their reason and raw body until they are.

Rules enforced here:
- an event that ends `unapplied` is kept (or refreshed) in `webhook_unapplied/{event_id}`,
  counting the attempts, with its reason, raw body, customer and user (the service writes it in
  the same batch as the event's journal entry);
- the kept copy is dropped once the event has any other outcome: in the same commit that
  applies it, or in the batch that journals an outcome that needed no commit;
- `pending` lists what is kept, for review and replay.
"""

from __future__ import annotations

from typing import Any, Optional

from ..ledger import collections
from ..store import documents, scans

def path(event_id: str) -> str:
    return collections.unapplied_event(event_id)


def pending(event_id: Optional[str] = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The kept events, oldest attempt first, or the one with `event_id` (or none)."""
    if event_id is not None:
        data = documents.read(path(event_id))
        return [data] if data else []
    return [snap.to_dict() for snap in scans.documents(collections.UNAPPLIED_EVENTS, order_by="last_attempt_at", limit=limit)]
