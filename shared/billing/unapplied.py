"""Stripe events that could not be applied: kept with their reason and raw body until they are.

Rules enforced here:
- an event that ends `unapplied` is kept (or refreshed) in `webhook_unapplied/{event_id}`,
  counting the attempts, with its reason, raw body, customer and user (the service writes it in
  the same batch as the event's journal entry);
- the kept copy is dropped once the event has any other outcome: in the same commit that
  applies it, or in the batch that journals an outcome that needed no commit;
- `pending` lists what is kept, for review and replay;
- an event that can never apply is discarded by a person with a reason: its kept copy is deleted
  (only if unchanged since it was read, so a replay that applied it meanwhile wins) and its
  journal entry `webhook_events/{event_id}` says `discarded`, with who, why, when and the kept
  reason, in one batch; the journal keeps the raw body. A later delivery of the event from Stripe
  is handled like any other (and kept again if it still cannot apply).
"""

from __future__ import annotations

from typing import Any, Optional

from ..common.validation import storable
from ..ledger import collections
from ..store import documents, scans
from ..store.client import utcnow
from ..store.documents import Write

DISCARDED = "discarded"

def path(event_id: str) -> str:
    return collections.unapplied_event(event_id)


def pending(event_id: Optional[str] = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The kept events, oldest attempt first, or the one with `event_id` (or none)."""
    if event_id is not None:
        data = documents.read(path(event_id))
        return [data] if data else []
    return [snap.to_dict() for snap in scans.documents(collections.UNAPPLIED_EVENTS, order_by="last_attempt_at", limit=limit)]


def discard(event_id: str, reason: str, operator: str) -> dict[str, Any]:
    """Give up on a kept event, once: `discarded`, `not_found`, or `changed` (look again)."""
    found = documents.read_versioned(path(event_id))
    if found is None:
        return {"event_id": event_id, "outcome": "not_found", "reason": "no such kept event"}
    kept, version = found
    now = utcnow()
    journal = storable({"event_id": event_id, "outcome": DISCARDED, "discarded_at": now, "discarded_by": operator,
                        "discard_reason": reason, "kept_reason": kept.get("last_replay_reason") or kept.get("reason")})
    if not documents.write_all([Write(path(event_id), delete=True, version=version),
                                Write(collections.webhook_event(event_id), journal, merge=True)]):
        return {"event_id": event_id, "outcome": "changed", "reason": "the event changed meanwhile; look again"}
    return {"event_id": event_id, "outcome": DISCARDED, "reason": reason, "user_id": kept.get("user_id")}
