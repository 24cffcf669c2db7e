"""Turning ledger entries into transaction records, each numbered in its user's ledger.

Rules enforced here:
- a change's records share its commit time, each one microsecond after the one before, so
  history lists them newest first in a stable order (a migration before the spend it enables);
- every record carries the id of its source (idempotency key, invoice, event, grant id); an
  entry that names its own source (a debt collected from a grant) keeps it;
- a record's id is fresh unless the change derives it from its source (then it is created
  only once);
- every record is numbered where it is built: it continues its user's ledger from a
  `Position` (the `seq` of the user's last record and the pools right after it), taking the
  next `seq` and carrying the pools right after it (`balance_after`), so a feature cannot
  build a record without them; the decision's snapshot says where the ledger stands
  (`Snapshot.position`), and the commit pipeline checks that a change's records continue the
  stored `last_seq` with no gap and end at the pools it writes (`check_numbering`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..common.ids import new_transaction_id
from . import codec
from .accounts import MONTHLY, Account, Entry
from .models import BalanceAfter, BaseCreditTransaction


@dataclass(frozen=True)
class Position:
    """Where a user's ledger stands: the `seq` of the last record and the pools right after it."""

    seq: int = 0
    monthly: int = 0
    permanent: int = 0

    def after(self, entry: Entry) -> "Position":
        """The position right after one more entry."""
        if entry.pool is MONTHLY:
            return Position(self.seq + 1, self.monthly + entry.amount, self.permanent)
        return Position(self.seq + 1, self.monthly, self.permanent + entry.amount)

    @property
    def balance_after(self) -> BalanceAfter:
        return BalanceAfter(credits_monthly=self.monthly, credits_permanent=self.permanent)


class UnknownPosition(ValueError):
    """A stored user document that does not say its last `seq`: the store learns it first."""


def position_of(account: Account, user_data: Optional[Mapping[str, Any]]) -> Position:
    """Where the ledger of a user stands, from their account and stored document.

    The pools are what the records account for: a legacy account's balance is outside the
    ledger until its `migration` record, so its ledger stands at zero.
    """
    seq = codec.last_seq(user_data)
    if seq is None:
        raise UnknownPosition(f"the document of user {account.user_id} does not say its last seq")
    if account.is_legacy:
        return Position(seq, 0, 0)
    return Position(seq, account.monthly, account.permanent)


def records(
    user_id: str,
    entries: Sequence[Entry],
    source: Optional[str],
    now: datetime,
    ids: Optional[Iterable[str]] = None,
    *,
    at: Position,
) -> list[BaseCreditTransaction]:
    """The records of `entries`, numbered on from `at`, with fresh ids unless `ids` derives them."""
    id_list = list(ids) if ids is not None else [new_transaction_id() for _ in entries]
    written = []
    for i, (entry, txn_id) in enumerate(zip(entries, id_list, strict=True)):
        at = at.after(entry)
        written.append(BaseCreditTransaction(
            transaction_id=txn_id,
            user_id=user_id,
            type=entry.type,
            pool=entry.pool,
            amount=entry.amount,
            description=entry.description,
            source=entry.source or source,
            created_at=now + timedelta(microseconds=i),
            seq=at.seq,
            balance_after=at.balance_after,
        ))
    return written


def position_after(at: Position, written: Sequence[BaseCreditTransaction]) -> Position:
    """`at` moved past `written` (the records built from it)."""
    if not written:
        return at
    last = written[-1]
    assert last.seq is not None and last.balance_after is not None
    return Position(last.seq, last.balance_after.credits_monthly, last.balance_after.credits_permanent)


def check_numbering(written: Sequence[BaseCreditTransaction], last_seq: int, account: Optional[Account]) -> int:
    """The `seq` of the last of `written` (`last_seq` if none), once they are seen to continue a
    ledger whose last record is `last_seq` and to end at `account`'s pools; else ValueError.

    Each record must take the next `seq` and its `balance_after` must be the one before it
    plus its amount in its pool; the last one must be the pools the change writes.
    """
    seq = last_seq
    previous: Optional[BalanceAfter] = None
    for record in written:
        if record.seq != seq + 1 or record.balance_after is None:
            raise ValueError(f"record {record.transaction_id} has seq {record.seq}, not {seq + 1}")
        seq = record.seq
        after = record.balance_after
        if previous is not None:
            monthly = previous.credits_monthly + (record.amount if record.pool is MONTHLY else 0)
            permanent = previous.credits_permanent + (0 if record.pool is MONTHLY else record.amount)
            if (after.credits_monthly, after.credits_permanent) != (monthly, permanent):
                raise ValueError(f"record {record.transaction_id}'s balance_after does not follow the one before")
        previous = after
    if previous is not None and account is not None and (
            (previous.credits_monthly, previous.credits_permanent) != (account.monthly, account.permanent)):
        raise ValueError("the last record's balance_after is not the pools the change writes")
    return seq


def views(records_: Sequence[BaseCreditTransaction]) -> list[dict]:
    """Records as the API shows them."""
    return [record.model_dump(mode="json") for record in records_]
