"""What a decision sees and what it asks to commit: plain values, no I/O.

Rules enforced here:
- a decision is a pure function of a `Snapshot` (the user's account and raw document, the
  other documents it asked to read, the time) returning a `Change`;
- a `Change` with no account, records or document writes commits nothing;
- a document in `guarded` (one also written outside the user's commits) is written only over
  the version the decision read, or created if it read none, so no concurrent write is lost;
- marker documents in `create` must not exist yet: their creation is the idempotency; records
  with ids derived from their source are created, never overwritten (`create_records`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Optional, TypeVar

from ..ledger.accounts import Account
from ..ledger.models import BaseCreditTransaction

R = TypeVar("R")


@dataclass(frozen=True)
class Snapshot:
    """What a decision sees: the user's account and raw document, the documents it asked for."""

    account: Account
    user_data: Optional[dict[str, Any]]
    documents: dict[str, Optional[dict[str, Any]]]
    now: datetime
    # Holds whose expiry the commit writes before the decision's own change (see ledger.holds).
    released: tuple[str, ...] = ()


@dataclass
class Change(Generic[R]):
    """What a decision asks to commit; with no records and no writes nothing is committed."""

    result: R
    account: Optional[Account] = None
    records: list[BaseCreditTransaction] = field(default_factory=list)
    # Marker documents (path -> data) that must not exist yet: their creation is the idempotency.
    create: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Documents (path -> data) overwritten whole; only for documents the user document guards.
    overwrite: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Overwritten documents written only over the version read (created if absent when read).
    guarded: frozenset[str] = frozenset()
    # Documents deleted in the same commit (bookkeeping the change makes obsolete).
    delete: list[str] = field(default_factory=list)
    # Extra fields stored on the user document beside the pools.
    user_fields: dict[str, Any] = field(default_factory=dict)
    # Records whose ids are derived from their source are created, so a repeat fails.
    create_records: bool = False

    @property
    def writes_anything(self) -> bool:
        return bool(self.account is not None or self.records or self.create or self.overwrite or self.delete)

    @property
    def writes(self) -> int:
        """How many document writes the change commits."""
        return (
            (self.account is not None)
            + len(self.records)
            + len(self.create)
            + len(self.overwrite)
            + len(self.delete)
        )
