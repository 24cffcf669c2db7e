"""Promotion messages that can never be valid: kept with their reason and raw data, replayable.

Rules enforced here:
- a rejected message is kept once in `promo_rejected` (by its Pub/Sub id, digested if unsafe)
  with its reason, raw data (cut at 900,000 bytes, and flagged) and attributes; a redelivery of
  a kept message changes nothing;
- a replay re-validates the raw data, grants a message that is now valid (granting is
  idempotent per grant and user), and marks it replayed exactly once (the mark is conditioned
  on the kept document's version);
- a message that can never succeed is discarded by an operator with a reason: it is kept, marked
  `discarded` with who, why and when (for audit), and never replayed; a replayed message cannot
  be discarded, nor a discarded one replayed.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..common import ids, log
from ..common.errors import InvalidPayload
from ..common.validation import storable
from ..ledger import collections
from ..store import documents, scans
from ..store.client import utcnow
from .schemas import parse_message
from .service import grant

# Firestore keeps documents up to 1 MiB; a larger raw message is kept cut, and flagged.
MAX_KEPT_RAW_BYTES = 900_000
KEPT_TEXT_CHARS = 10_000


def _path(doc_id: str) -> str:
    return collections.path(collections.PROMO_REJECTED, doc_id)


def kept_messages(doc_id: Optional[str] = None, status: Optional[str] = None) -> list[tuple[str, dict[str, Any], Any]]:
    """Kept rejected messages (one by id, or all with `status`): id, data and version."""
    if doc_id is not None:
        found = documents.read_versioned(_path(doc_id))
        return [(doc_id, found[0], found[1])] if found else []
    snaps = scans.documents(collections.PROMO_REJECTED, "status" if status else None, status)
    return [(snap.id, snap.to_dict(), snap.update_time) for snap in snaps]


def reject(
    message_id: str, reason: str, raw: bytes, attributes: Optional[Mapping[str, str]] = None
) -> bool:
    """Keep a message that can never be valid, with its reason and raw data, for review and replay.

    A redelivery of a message already kept changes nothing (its replay state is kept too).
    Returns whether it was newly kept.
    """
    kept = raw[:MAX_KEPT_RAW_BYTES]
    created = documents.create(
        _path(ids.rejected_message_id(message_id)),
        # Ids, reasons and attributes may quote bad input; Firestore stores only valid text.
        storable({
            "message_id": message_id,
            "status": "rejected",
            "reason": reason,
            "raw_data": kept,
            "raw_text": kept[:KEPT_TEXT_CHARS].decode("utf-8", errors="replace"),
            "raw_size": len(raw),
            "raw_truncated": len(kept) < len(raw),
            "attributes": dict(attributes or {}),
            "rejected_at": utcnow(),
        }),
    )
    log.warning(
        "promo message rejected" if created else "rejected promo message delivered again",
        message_id=message_id,
        outcome="rejected",
        reason=reason,
    )
    return created


def replay_rejected(message_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Re-validate kept rejected messages (one, or every one still rejected) and apply those now valid.

    Returns one entry per message considered: `{"message_id", "outcome", ...}` where outcome is
    `replayed` (applied now, with the grant counts), `still_rejected` (with the current
    reason), `already_replayed` or `not_found`. Granting is idempotent per grant and user, and
    the mark is conditioned on the kept document, so a message is marked replayed once.
    """
    if message_id is not None:
        kept = kept_messages(doc_id=ids.rejected_message_id(message_id))
        if not kept:
            return [{"message_id": message_id, "outcome": "not_found"}]
    else:
        kept = kept_messages(status="rejected")
    return [_replay_one(doc_id, data, update_time) for doc_id, data, update_time in kept]


def _replay_one(doc_id: str, data: dict[str, Any], update_time) -> dict[str, Any]:
    message_id = data.get("message_id", doc_id)
    if data.get("status") == "replayed":
        return {"message_id": message_id, "outcome": "already_replayed"}
    now = utcnow()
    try:
        if data.get("raw_truncated"):
            raise InvalidPayload("the kept raw data is cut short; the message cannot be replayed")
        message = parse_message(bytes(data.get("raw_data") or b""))
    except InvalidPayload as err:
        documents.update_if_unchanged(_path(doc_id), {"last_replay_at": now, "last_replay_reason": err.message}, update_time)
        log.info("rejected promo message still invalid", message_id=message_id, outcome="still_rejected")
        return {"message_id": message_id, "outcome": "still_rejected", "reason": err.message}
    outcome = grant(message, message_id=message_id)
    counts = {"granted": outcome.granted, "already_granted": outcome.already_granted, "conflicting": outcome.conflicting}
    marked = documents.update_if_unchanged(
        _path(doc_id), {"status": "replayed", "replayed_at": now, "replay_outcome": counts}, update_time
    )
    if not marked:
        # Another replay got there first; its grants and ours are the same grants.
        return {"message_id": message_id, "outcome": "already_replayed"}
    log.info("rejected promo message replayed", source=message.grant_id, message_id=message_id, outcome="replayed")
    return {"message_id": message_id, "outcome": "replayed", "grant_id": message.grant_id, **counts}


def discard(message_id: str, reason: str, operator: str) -> dict[str, Any]:
    """Mark a kept rejected message discarded (kept for audit, never replayed), once."""
    kept = kept_messages(doc_id=ids.rejected_message_id(message_id))
    if not kept:
        return {"message_id": message_id, "outcome": "not_found", "reason": "no such kept message"}
    doc_id, data, update_time = kept[0]
    status = data.get("status")
    if status != "rejected":
        return {"message_id": message_id, "outcome": f"already_{status}", "reason": data.get("discard_reason") or ""}
    fields = {"status": "discarded", "discarded_at": utcnow(), "discard_reason": reason, "discarded_by": operator}
    if not documents.update_if_unchanged(_path(doc_id), fields, update_time):
        return {"message_id": message_id, "outcome": "changed", "reason": "the message changed meanwhile; look again"}
    log.info("rejected promo message discarded", message_id=message_id, outcome="discarded", detail=reason)
    return {"message_id": message_id, "outcome": "discarded", "reason": reason}
