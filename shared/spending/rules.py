"""The pure rules of spending: the spend plan and the decision behind `POST /spend` (no I/O).

Rules enforced here:
- a spend draws the permanent pool first, then the monthly pool (`monthly_first` flips it),
  and writes one entry per pool it touches; it is refused whole if the pools fall short;
- a spend with an idempotency key is applied at most once: the key's marker is created in the
  same commit as the spend and stores the response, so a repeat gets that response;
- keys are global: the same key with any other user, amount or description is a conflict;
- a refused spend (insufficient credits) writes nothing, so its key is not remembered;
- a legacy account is migrated in the same commit as its first spend;
- a preview (`dry_run`) is decided exactly like the spend and writes nothing, key or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from ..common.errors import InsufficientCredits, InvalidRequest
from ..ledger import accounts, codec, collections, holds, records
from ..ledger.accounts import MONTHLY, PERMANENT, Account, Entry
from ..ledger.change import Change, Snapshot
from ..ledger.idempotency import Once
from ..ledger.models import CreditPool, TransactionType

DEFAULT_DESCRIPTION = "Credits spent"


class SpendOrder(str, Enum):
    """Which pool a spend draws from first."""

    PERMANENT_FIRST = "permanent_first"
    MONTHLY_FIRST = "monthly_first"

    @property
    def pools(self) -> tuple[CreditPool, CreditPool]:
        if self is SpendOrder.MONTHLY_FIRST:
            return (MONTHLY, PERMANENT)
        return (PERMANENT, MONTHLY)


def spend_description(description: str, pool: CreditPool) -> str:
    return f"{description} (from {pool.value} pool)"


def plan_spend(account: Account, amount: int, description: str, order: SpendOrder) -> list[Entry]:
    """The entries that take `amount` from the pools in `order`, one per pool touched.

    Raises InsufficientCredits, with the total and the amount asked, if the pools fall short.
    """
    if type(amount) is not int or amount < 1:
        raise InvalidRequest(f"a spend needs a positive integer amount, got {amount!r}")
    if account.balance < amount:
        raise InsufficientCredits(
            f"balance {account.balance} is less than the {amount} requested",
            balance=account.balance,
            requested=amount,
        )
    entries, left = [], amount
    for pool in order.pools:
        take = min(left, account.pool(pool))
        if take:
            entries.append(Entry(TransactionType.SPENT, pool, -take, spend_description(description, pool)))
            left -= take
    return entries


@dataclass(frozen=True)
class SpendRequest:
    """A validated spend: who, how much, what for, and the caller's key if any."""

    user_id: str
    amount: int
    description: str = DEFAULT_DESCRIPTION
    idempotency_key: Optional[str] = None

    @property
    def command(self) -> Optional[Once]:
        return Once.command("spend", self.idempotency_key, collections.spend_key, self.user_id, self.amount,
                            self.description)


@dataclass(frozen=True)
class SpendResult:
    body: dict[str, Any]
    replayed: bool


def decide_spend(snap: Snapshot, request: SpendRequest, order: SpendOrder) -> Change[SpendResult]:
    """The spend's change: a replay, or the migration, the spend's records and the key's marker."""
    command = request.command
    if command is not None:
        replayed = command.replay(snap.documents.get(command.path))
        if replayed is not None:
            return Change(result=SpendResult(replayed, replayed=True))
    account, migration = accounts.migrate(snap.account)
    entries = plan_spend(account, request.amount, request.description, order)
    after = accounts.apply(account, entries)
    written = records.records(request.user_id, migration + entries, request.idempotency_key, snap.now,
                              at=snap.position)
    body = {
        "user_id": request.user_id,
        "amount": request.amount,
        "transactions": records.views(written[len(migration):]),
        "balance": codec.balance_view(after, snap.now, codec.held(snap.user_data, snap.now)),
    }
    create = {}
    if command is not None:
        # What the spend drew is data on its marker, so a refund reads it without parsing the response.
        create[command.path] = command.record(snap.now, body, user_id=request.user_id,
                                              drawn=holds.drawn_data(entries))
    return Change(result=SpendResult(body, replayed=False), account=after, records=written, create=create)


def preview_spend(snap: Snapshot, request: SpendRequest, order: SpendOrder) -> Change[SpendResult]:
    """What the spend would do, written nowhere: its entries and the balance after, or its 402."""
    account, _ = accounts.migrate(snap.account)
    entries = plan_spend(account, request.amount, request.description, order)
    after = accounts.apply(account, entries)
    body = {
        "user_id": request.user_id,
        "amount": request.amount,
        "dry_run": True,
        "transactions": [
            {"pool": entry.pool.value, "amount": entry.amount, "description": entry.description} for entry in entries
        ],
        "balance": codec.balance_view(after, snap.now, codec.held(snap.user_data, snap.now)),
    }
    return Change(result=SpendResult(body, replayed=False))
