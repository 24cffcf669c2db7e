"""The audit entry of an action taken by a person (the support console), as pure values.

Rules enforced here:
- an audited action has one entry, `credits_audit/{audit_entry_id(key)}`, whose id is derived
  from the action's idempotency key, so a repeat of the action (a double submit of one form)
  finds the entry and never makes a second;
- an entry names the actor, their role, the action, its target, the reason, the key, the time,
  the request's inputs and what changed: for a change to a user, the pools before and after and
  the records written, taken from the very change committed;
- `audited(decide, entry)` wraps a decision so its change creates the entry in the same commit:
  the action and its audit land together or not at all; a decision that writes nothing (a
  replay) creates no entry; once the entry exists, the decision's writes are dropped, so the
  action is done at most once whatever the service's own idempotency covers (a settings `PUT`
  has none);
- an entry carries no secret: only ids, amounts, pools and the person's own words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Optional, TypeVar

from . import collections
from .accounts import Account
from .change import Change, Snapshot

R = TypeVar("R")

MAX_REASON = 400


@dataclass(frozen=True)
class AuditEntry:
    """Who does what to what, and why; the key makes the action and its entry happen once."""

    actor: str
    role: str
    action: str
    reason: str
    idempotency_key: str
    user_id: Optional[str] = None
    target: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return collections.audit_entry(self.idempotency_key)

    @property
    def audit_id(self) -> str:
        return collections.document_id(self.path)

    def document(self, now: datetime, changed: Mapping[str, Any], outcome: str = "done") -> dict[str, Any]:
        """The entry as stored."""
        return {
            "audit_id": self.audit_id,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "user_id": self.user_id,
            "target": self.target,
            "inputs": dict(self.inputs),
            "changed": dict(changed),
            "outcome": outcome,
            "at": now,
        }


def pools_of(account: Optional[Account]) -> dict[str, int]:
    if account is None:
        return {}
    return {"credits_monthly": account.monthly, "credits_permanent": account.permanent,
            "credits_owed": sum(amount for _, amount in account.owed_by)}


def changed_of(before: Account, change: Change[Any]) -> dict[str, Any]:
    """What a change to a user changed: pools before and after, the records it writes, the
    documents it creates or writes over (their paths), and user fields it sets (their names)."""
    return {
        "before": pools_of(before),
        "after": pools_of(change.account) if change.account is not None else pools_of(before),
        "records": [
            {"transaction_id": r.transaction_id, "type": r.type.value,
             "pool": r.pool.value if r.pool is not None else None, "amount": r.amount}
            for r in change.records
        ],
        "documents": sorted(set(change.create) | set(change.overwrite)),
        "user_fields": sorted(change.user_fields),
    }


def audited(decide: Callable[[Snapshot], Change[R]], entry: Optional[AuditEntry]) -> Callable[[Snapshot], Change[R]]:
    """`decide` with the entry created in its change's commit (None: `decide` unchanged).

    The caller reads `entry.path` with the decision (`reads`), so the entry's existence is seen
    here and the commit is conditioned on it.
    """
    if entry is None:
        return decide

    def decide_audited(snap: Snapshot) -> Change[R]:
        change = decide(snap)
        if snap.documents.get(entry.path) is not None:
            # Done already under this key: answer as the decision would, write nothing.
            return Change(result=change.result)
        if not change.writes_anything:
            return change
        document = entry.document(snap.now, changed_of(snap.account, change))
        return Change(
            result=change.result, account=change.account, records=change.records,
            create={**change.create, entry.path: document}, overwrite=change.overwrite, delete=change.delete,
            user_fields=change.user_fields, last_seq=change.last_seq,
        )

    return decide_audited


def reads_of(entry: Optional[AuditEntry]) -> list[str]:
    """The documents an audited decision must read besides its own: the entry."""
    return [entry.path] if entry is not None else []
