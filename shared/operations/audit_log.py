"""The audit of actions taken in the support console: written once per action, read by user.

Rules enforced here:
- an action that changes a user writes its entry in its own commit (`ledger.audit.audited`,
  passed to the service that makes the change), never here;
- an action that changes no user document (replaying a kept Stripe event, replaying or
  discarding a kept promo message) cannot share a commit with what it does: those services
  write their own documents in their own conditioned writes. Its entry is created here after the
  action returns, create-only under the id derived from the action's key, so a repeat (a double
  submit, a retry after a lost reply) never writes a second entry; the actions themselves are
  idempotent (a kept event applies at most once, a message is marked once), so repeating one
  whose entry was lost to a fault repeats nothing but the entry;
- `entry(key)` tells whether an action under that key is done already;
- reads are small: one user's entries (an equality filter, sorted here, newest first), or the
  latest entries of everyone.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..ledger import collections
from ..ledger.audit import AuditEntry
from ..store import documents, scans
from ..store.client import utcnow


def record(entry: AuditEntry, changed: Mapping[str, Any], outcome: str = "done") -> bool:
    """Create the entry of an action that changed no user document; False if it existed."""
    return documents.create(entry.path, entry.document(utcnow(), changed, outcome))


def entry(idempotency_key: str) -> Optional[dict[str, Any]]:
    """The entry of the action done under `idempotency_key`, or None if none was."""
    return documents.read(collections.audit_entry(idempotency_key))


def of_user(user_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The user's entries, newest first."""
    rows = [snap.to_dict() for snap in scans.documents(collections.AUDIT, "user_id", user_id)]
    return sorted(rows, key=lambda row: row.get("at"), reverse=True)[:limit]


def latest(limit: int = 50) -> list[dict[str, Any]]:
    """Everyone's latest entries, newest first."""
    return [snap.to_dict() for snap in scans.latest(collections.AUDIT, "at", limit)]
