"""Giving spent credits back, and the open holds kept on a user's document (pure, no I/O).

Rules enforced here:
- credits go back to the pools a spend drew from, the pool drawn last first, so a partial
  give-back leaves the pools as if the spend had been smaller; never more than a pool gave;
- the monthly part of a spend made before the monthly pool was last reset (`monthly_reset_at`)
  goes back and expires at once: a `refund` entry followed by a `monthly_expired` of the same
  amount, so it does not outlive its period;
- a user's open holds live on the user document (`open_holds`), so every change to the user
  sees them without another read; once a hold's `expires_at` has passed it counts as released
  in every read and decision, and the first change that commits to the user writes its
  `refund` records, its hold document and its give-back totals in that same commit
  (`settle_expired`), so they are written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping, Optional, Sequence

from ..common import ids
from . import accounts, codec, collections, records
from .accounts import MONTHLY, PERMANENT, Account, Entry
from .change import Change, Snapshot
from .models import BaseCreditTransaction, CreditPool, TransactionType

OPEN_HOLDS = codec.OPEN_HOLDS
# Bounds the user document and the commit that releases them all (about 5 writes a hold).
MAX_OPEN_HOLDS = 50

HELD, CAPTURED, RELEASED, EXPIRED = "held", "captured", "released", "expired"
EXPIRY_DESCRIPTION = "Hold expired"
EXPIRED_REFUND_DESCRIPTION = "Refunded monthly credits expired (spent before the last monthly reset)"

Drawn = Sequence[tuple[CreditPool, int]]


def refund_description(description: str, pool: CreditPool) -> str:
    return f"{description} (to {pool.value} pool)"


def drawn_of(transactions: Sequence[Mapping[str, Any]]) -> list[tuple[CreditPool, int]]:
    """What a spend drew, pool by pool in draw order, from its `spent` records (as the API shows them)."""
    return [
        (CreditPool(t["pool"]), -int(t["amount"]))
        for t in transactions
        if t.get("type") == TransactionType.SPENT.value and t.get("pool")
    ]


def given_back_of(data: Optional[Mapping[str, Any]]) -> dict[CreditPool, int]:
    """What a spend's give-back document says went back so far, by pool."""
    stored = (data or {}).get("given_back") or {}
    return {pool: int(stored.get(pool.value, 0)) for pool in (MONTHLY, PERMANENT)}


def spent_before_reset(spent_at: Optional[datetime], user_data: Optional[Mapping[str, Any]]) -> bool:
    reset_at = (user_data or {}).get(codec.MONTHLY_RESET_AT)
    return isinstance(reset_at, datetime) and isinstance(spent_at, datetime) and spent_at < reset_at


def give_back(
    drawn: Drawn, given: Mapping[CreditPool, int], amount: int, description: str, expire_monthly: bool
) -> list[Entry]:
    """The entries that give `amount` back, the pool drawn last first.

    `amount` must not exceed what remains (drawn less `given`); callers check it first.
    """
    remaining = {pool: 0 for pool in (MONTHLY, PERMANENT)}
    for pool, taken in drawn:
        remaining[pool] += taken
    for pool, back in given.items():
        remaining[pool] -= back
    entries, left = [], amount
    for pool, _ in reversed(list(drawn)):
        take = min(left, remaining[pool])
        if take <= 0:
            continue
        remaining[pool] -= take
        left -= take
        entries.append(Entry(TransactionType.REFUND, pool, take, refund_description(description, pool)))
        if pool is MONTHLY and expire_monthly:
            entries.append(Entry(TransactionType.MONTHLY_EXPIRED, MONTHLY, -take, EXPIRED_REFUND_DESCRIPTION))
    if left:
        raise ValueError(f"cannot give back {amount}: {left} more than the spend has left")
    return entries


def refunded_by(entries: Sequence[Entry]) -> dict[CreditPool, int]:
    """What `entries` give back, by pool (expiries of refunded monthly credits do not undo it)."""
    back = {MONTHLY: 0, PERMANENT: 0}
    for entry in entries:
        if entry.type is TransactionType.REFUND:
            back[entry.pool] += entry.amount
    return back


def give_back_document(
    spend_key: str, user_id: str, given: Mapping[CreditPool, int], now: datetime
) -> dict[str, Any]:
    return {
        "spend_key": spend_key,
        "user_id": user_id,
        "given_back": {pool.value: int(given.get(pool, 0)) for pool in (MONTHLY, PERMANENT)},
        "total": int(sum(given.values())),
        "updated_at": now,
    }


def open_holds_of(user_data: Optional[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: dict(value) for key, value in ((user_data or {}).get(OPEN_HOLDS) or {}).items()}


def held_by(open_holds: Mapping[str, Any], now: datetime) -> int:
    """What `open_holds` (as `open_holds_of` gives them) take, expired ones counted as given back."""
    return codec.held({OPEN_HOLDS: open_holds}, now)


def open_hold_entry(hold: Mapping[str, Any]) -> dict[str, Any]:
    """What the user document keeps of an open hold: enough to release it without another read."""
    return {name: hold[name] for name in ("hold_id", "amount", "description", "created_at", "expires_at", "drawn")}


def drawn_entries(stored: Sequence[Mapping[str, Any]]) -> list[tuple[CreditPool, int]]:
    return [(CreditPool(item["pool"]), int(item["amount"])) for item in stored]


def drawn_data(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """What a spend's entries drew, pool by pool in draw order, as stored data (`drawn_entries` reads it)."""
    return [{"pool": entry.pool.value, "amount": -entry.amount} for entry in entries]


def hold_document(
    entry: Mapping[str, Any], user_id: str, status: str, captured: int, now: Optional[datetime],
    settlement: Optional[Mapping[str, Any]] = None, fingerprint: Optional[str] = None,
) -> dict[str, Any]:
    """A hold's own document (`credit_holds/{digest}`), whole."""
    return {
        **open_hold_entry(entry),
        "user_id": user_id,
        "status": status,
        "captured": captured,
        "settled_at": now,
        "settlement": json.dumps(settlement, separators=(",", ":")) if settlement is not None else None,
        "settle_fingerprint": fingerprint,
    }


def is_expired(entry: Mapping[str, Any], now: datetime) -> bool:
    expires_at = entry.get("expires_at")
    return isinstance(expires_at, datetime) and expires_at <= now


@dataclass
class Released:
    """What releasing a user's expired holds writes, to be merged into the change that commits."""

    account: Account
    open_holds: dict[str, dict[str, Any]]
    records: list[BaseCreditTransaction] = field(default_factory=list)
    overwrite: dict[str, dict[str, Any]] = field(default_factory=dict)
    hold_ids: list[str] = field(default_factory=list)

    def merge(self, change: Change) -> Change:
        """`change` with the releases in its commit, if it commits a change to the account."""
        if not self.hold_ids or change.account is None:
            return change
        released = Change(result=None, account=self.account, records=self.records, overwrite=self.overwrite,
                          user_fields={OPEN_HOLDS: self.open_holds})
        return released.merge(change)


def release_expired(user_id: str, account: Account, user_data: Optional[Mapping[str, Any]], now: datetime,
                    position: Optional[records.Position] = None) -> Released:
    """The account with every expired open hold given back, and what that writes (its records
    numbered on from `position`, by default where the stored document says)."""
    holds = open_holds_of(user_data)
    expired = sorted(
        ((key, entry) for key, entry in holds.items() if is_expired(entry, now)),
        key=lambda item: (item[1]["expires_at"], item[1]["hold_id"]),
    )
    released = Released(account=account, open_holds=holds)
    if not expired or account.is_legacy:
        return released
    at = now
    position = records.position_of(account, user_data) if position is None else position
    for key, entry in expired:
        drawn = drawn_entries(entry["drawn"])
        amount = sum(taken for _, taken in drawn)
        entries = give_back(drawn, {}, amount, EXPIRY_DESCRIPTION,
                            spent_before_reset(entry.get("created_at"), user_data))
        written = records.records(user_id, entries, entry["hold_id"], at, at=position)
        position = records.position_after(position, written)
        at += timedelta(microseconds=len(written))
        released.account = accounts.apply(released.account, entries)
        released.records.extend(written)
        released.overwrite[collections.hold(entry["hold_id"])] = hold_document(entry, user_id, EXPIRED, 0, now)
        released.overwrite[collections.spend_refunds(entry["hold_id"])] = give_back_document(
            entry["hold_id"], user_id, refunded_by(entries), now
        )
        released.hold_ids.append(entry["hold_id"])
        del holds[key]
    return released


def settle_expired(snapshot: Snapshot) -> tuple[Snapshot, Released]:
    """The snapshot a decision sees (expired holds given back) and the releases to merge into its change.

    The decision's records come after the releases' records in time, as they do in the commit.
    """
    released = release_expired(snapshot.account.user_id, snapshot.account, snapshot.user_data, snapshot.now,
                               snapshot.after)
    if not released.hold_ids:
        return snapshot, released
    user_data = {**(snapshot.user_data or {}), OPEN_HOLDS: released.open_holds}
    documents = {
        path: released.overwrite.get(path, data) if path in released.overwrite else data
        for path, data in snapshot.documents.items()
    }
    settled = replace(
        snapshot,
        account=released.account,
        user_data=user_data,
        documents=documents,
        now=snapshot.now + timedelta(microseconds=len(released.records)),
        released=tuple(released.hold_ids),
        after=records.position_after(snapshot.position, released.records),
    )
    return settled, released


def effective_account(user_id: str, user_data: Optional[Mapping[str, Any]], now: datetime) -> Account:
    """The account a read shows: expired holds count as given back, though nothing is written yet."""
    account = codec.read_account(user_id, user_data)
    # Only the account is kept, so the records' numbering does not matter (and a read never
    # needs the document's `last_seq`).
    return release_expired(user_id, account, user_data, now, records.Position()).account


def open_hold_key(hold_id: str) -> str:
    return ids.open_hold_key(hold_id)
