"""What a decision sees and what it asks to commit: plain values, no I/O.

Rules enforced here:
- a decision is a pure function of a `Snapshot` (the user's account and raw document, the
  other documents it asked to read, the time) returning a `Change`;
- a decision's records continue the user's ledger from `Snapshot.position` (`records.records`
  numbers them); a snapshot that follows records not yet committed (expired holds released in
  the same commit) says so in `after`;
- a `Change` is immutable; two changes committed together become one by `merge`, the only
  way changes are combined, so what the later one writes wins and nothing is dropped;
- a `Change` with no account, records or document writes commits nothing;
- a `Change` says what it writes, never what it is conditioned on: the kernel conditions the
  commit on every document the decision read (its version, or its absence), so no feature can
  forget one;
- marker documents in `create` must not exist yet: their creation is the idempotency; records
  are created, never overwritten, so a record whose id is derived from its source is written once;
- a user field set to `REMOVED` in `user_fields` is removed from the user document (a setting
  cleared), never stored as a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, Mapping, Optional, TypeVar

from . import collections
from .accounts import Account
from .models import BaseCreditTransaction
from .records import Position, position_of

R = TypeVar("R")


class _Removed:
    def __repr__(self) -> str:
        return "REMOVED"


# The value of a user field the change removes from the user document.
REMOVED = _Removed()


@dataclass(frozen=True)
class Snapshot:
    """What a decision sees: the user's account and raw document, the documents it asked for."""

    account: Account
    user_data: Optional[dict[str, Any]]
    documents: dict[str, Optional[dict[str, Any]]]
    now: datetime
    # Holds whose expiry the commit writes before the decision's own change (see ledger.holds).
    released: tuple[str, ...] = ()
    # Where the ledger stands after records the same commit writes before this decision's
    # (the releases above); None: where the stored document says.
    after: Optional[Position] = None

    @property
    def position(self) -> Position:
        """Where the decision's first record continues the user's ledger."""
        return self.after if self.after is not None else position_of(self.account, self.user_data)


@dataclass(frozen=True)
class Change(Generic[R]):
    """What a decision asks to commit; with no records and no writes nothing is committed."""

    result: R
    account: Optional[Account] = None
    records: tuple[BaseCreditTransaction, ...] = ()
    # Marker documents (path -> data) that must not exist yet: their creation is the idempotency.
    create: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Documents (path -> data) written whole; one the decision read is written over the version read.
    overwrite: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Documents deleted in the same commit (bookkeeping the change makes obsolete).
    delete: tuple[str, ...] = ()
    # Extra fields stored on the user document beside the pools.
    user_fields: Mapping[str, Any] = field(default_factory=dict)
    # Where the user's ledger ends once existing records are renumbered (`credits migrate`,
    # which writes no record of its own); None: after this change's records, as the kernel
    # numbers them.
    last_seq: Optional[int] = None

    def __post_init__(self) -> None:
        # Callers pass lists and dicts; the change keeps its own read-only copies.
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "delete", tuple(self.delete))
        for name in ("create", "overwrite", "user_fields"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

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

    def created_paths(self) -> set[str]:
        """The documents this change creates (so their absence is checked by the commit itself)."""
        return set(self.create) | {collections.transaction(record.transaction_id) for record in self.records}

    def merge(self, later: "Change[Any]") -> "Change[Any]":
        """This change and `later` as one commit, `later` decided on what this one leaves.

        The account and result are `later`'s; records keep their order (this change's first);
        document writes and user fields of `later` win over this change's.
        """
        return replace(
            later,
            account=later.account if later.account is not None else self.account,
            records=self.records + later.records,
            create={**self.create, **later.create},
            overwrite={**self.overwrite, **later.overwrite},
            delete=tuple(dict.fromkeys(self.delete + later.delete)),
            user_fields={**self.user_fields, **later.user_fields},
            last_seq=later.last_seq if later.last_seq is not None else self.last_seq,
        )
