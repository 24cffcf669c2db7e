"""Account arithmetic: the pure rules every change to a user's pools obeys (no I/O, no google,
stripe or flask imports).

Rules enforced here:
- credits are `int`; a pool never goes below zero and no ledger entry has amount 0;
- a grant without an explicit pool goes where its transaction type belongs
  (subscription grants and expiries to monthly, everything else to permanent);
- a legacy account (read from a `balance`-only document) holds that many permanent credits, and
  its first change writes them as a `migration` entry, keeping `total_earned` and `total_spent`;
- `total_earned` counts every credit granted, `total_spent` every credit spent less refunds;
  migrations and expiries move neither; credits Stripe takes back (`addon_refunded`) lower
  `total_earned` and credits it gives back (`addon_reinstated`) raise it, so it stays the net of
  what was granted;
- taking credits back draws the permanent pool, then the monthly pool; what they cannot cover
  is owed, per source (`owed_by`), and every grant pays what is owed first, in the same change
  (`grant_and_collect`), oldest source id first, from the pool and the amount it granted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Optional

from ..common.errors import InvalidRequest, PoolUnderflow
from .models import CreditPool, TransactionType

MONTHLY = CreditPool.MONTHLY
PERMANENT = CreditPool.PERMANENT

# Types whose positive amounts count as credits granted (total_earned).
_EARNING_TYPES = frozenset(
    {
        TransactionType.SUBSCRIPTION_GRANT,
        TransactionType.ADDON_PURCHASE,
        TransactionType.AUTO_TOPUP,
        TransactionType.PROMO_GRANT,
        TransactionType.ADJUSTMENT,
    }
)
# Types that move total_earned by their signed amount: they undo (or restore) a grant.
_NET_EARNING_TYPES = frozenset({TransactionType.ADDON_REFUNDED, TransactionType.ADDON_REINSTATED})
# Credits granted of any kind: each one pays what is owed before it can be spent.
_COLLECTING_TYPES = _EARNING_TYPES | {TransactionType.ADDON_REINSTATED}

_DEFAULT_POOL = {
    TransactionType.SUBSCRIPTION_GRANT: MONTHLY,
    TransactionType.MONTHLY_EXPIRED: MONTHLY,
}


@dataclass(frozen=True)
class Entry:
    """One ledger entry: a signed change to one pool, before it gets an id and a time."""

    type: TransactionType
    pool: CreditPool
    amount: int
    description: str
    # The record's source when it is not the change's own (a debt collected from a grant).
    source: Optional[str] = None

    def __post_init__(self) -> None:
        if type(self.amount) is not int or self.amount == 0:
            raise ValueError(f"a ledger entry needs a non-zero int amount, got {self.amount!r}")


@dataclass(frozen=True)
class Account:
    """A user's credits as the rules see them; `legacy_balance` is set until migration."""

    user_id: str
    monthly: int = 0
    permanent: int = 0
    total_earned: int = 0
    total_spent: int = 0
    legacy_balance: Optional[int] = None
    # Credits taken back by Stripe that the pools could not cover, by source (charge or dispute
    # id), sorted by source; their sum is `credits_owed`.
    owed_by: tuple[tuple[str, int], ...] = ()

    @property
    def balance(self) -> int:
        return self.monthly + self.permanent

    @property
    def owed(self) -> int:
        return sum(amount for _, amount in self.owed_by)

    def owed_from(self, source: str) -> int:
        return dict(self.owed_by).get(source, 0)

    def pool(self, pool: CreditPool) -> int:
        return self.monthly if pool is MONTHLY else self.permanent

    @property
    def is_legacy(self) -> bool:
        return self.legacy_balance is not None


def migrate(account: Account) -> tuple[Account, list[Entry]]:
    """Turn a legacy account into a two-pool one, with the `migration` entry that explains it.

    The result holds the same credits; what changes is that the ledger now accounts for them.
    """
    if not account.is_legacy:
        return account, []
    unaccounted = replace(account, permanent=0, legacy_balance=None)
    if not account.legacy_balance:
        return unaccounted, []
    entries = [
        Entry(TransactionType.MIGRATION, PERMANENT, account.legacy_balance, "Legacy balance migrated to permanent pool")
    ]
    return apply(unaccounted, entries), entries


def default_pool(kind: TransactionType) -> CreditPool:
    """The pool a transaction type goes to when none is given."""
    if kind is TransactionType.SPENT:
        raise ValueError("a spend has no default pool: it follows the spend order")
    return _DEFAULT_POOL.get(kind, PERMANENT)


def apply(account: Account, entries: list[Entry]) -> Account:
    """The account after `entries`, refusing any that would take a pool below zero."""
    monthly, permanent = account.monthly, account.permanent
    earned, spent = account.total_earned, account.total_spent
    for entry in entries:
        if entry.pool is MONTHLY:
            monthly += entry.amount
        else:
            permanent += entry.amount
        if monthly < 0 or permanent < 0:
            raise PoolUnderflow(
                f"{entry.type.value} of {entry.amount} would take the {entry.pool.value} pool below zero",
                pool=entry.pool.value,
            )
        earned_delta, spent_delta = totals_change(entry.type, entry.amount)
        earned += earned_delta
        spent += spent_delta
    return replace(account, monthly=monthly, permanent=permanent, total_earned=earned, total_spent=spent)


def totals_change(kind: TransactionType, amount: int) -> tuple[int, int]:
    """How one entry moves (`total_earned`, `total_spent`); the ledger's totals follow the same rule."""
    if kind in _EARNING_TYPES and amount > 0:
        return amount, 0
    if kind in _NET_EARNING_TYPES:
        return amount, 0
    if kind in (TransactionType.SPENT, TransactionType.REFUND):
        # Spends are negative and refunds positive: both move total_spent the other way.
        return 0, -amount
    return 0, 0


def grant(
    kind: TransactionType, amount: int, description: str, pool: Optional[CreditPool] = None
) -> Entry:
    """A positive entry of `amount` into `pool`, or into the type's default pool."""
    if type(amount) is not int or amount < 1:
        raise InvalidRequest(f"a grant needs a positive integer amount, got {amount!r}")
    return Entry(kind, pool or default_pool(kind), amount, description)


def owed_map(owed_by: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """The canonical form of per-source debts: positive amounts only, sorted by source."""
    return tuple(sorted((source, amount) for source, amount in owed_by.items() if amount > 0))


def _with_owed(account: Account, source: str, amount: int) -> Account:
    owed = dict(account.owed_by)
    owed[source] = amount
    return replace(account, owed_by=owed_map(owed))


def take_back(account: Account, amount: int, source: str, description: str) -> tuple[Account, list[Entry]]:
    """Take `amount` credits back for `source`: permanent pool first, then monthly, the rest owed.

    Returns the account after it (pools lower, `owed_by` higher) and the `addon_refunded` entries.
    """
    if amount <= 0:
        return account, []
    entries = []
    left = amount
    for pool in (PERMANENT, MONTHLY):
        part = min(left, account.pool(pool))
        if part:
            entries.append(Entry(TransactionType.ADDON_REFUNDED, pool, -part, description, source))
            left -= part
    after = apply(account, entries)
    if left:
        after = _with_owed(after, source, account.owed_from(source) + left)
    return after, entries


def reinstate(account: Account, amount: int, source: str, description: str) -> tuple[Account, list[Entry]]:
    """Give back `amount` credits that `source` took: first cancel what it still owes, then the rest
    as one `addon_reinstated` entry in the permanent pool (before any collection of other debts)."""
    if amount <= 0:
        return account, []
    cancelled = min(amount, account.owed_from(source))
    after = _with_owed(account, source, account.owed_from(source) - cancelled) if cancelled else account
    given = amount - cancelled
    if not given:
        return after, []
    entries = [Entry(TransactionType.ADDON_REINSTATED, PERMANENT, given, description, source)]
    return apply(after, entries), entries


def collect_owed(account: Account, granted: list[Entry]) -> tuple[Account, list[Entry]]:
    """Pay what is owed from credits just granted: the one rule every grant goes through.

    `account` is the account after `granted` was applied. Each positive grant entry pays debts,
    oldest source id first, up to its own amount and what its pool still holds, as
    `addon_refunded` entries carrying the debt's source. Returns the account and those entries.
    """
    entries: list[Entry] = []
    for grant_entry in granted:
        if not account.owed_by:
            break
        if grant_entry.type not in _COLLECTING_TYPES or grant_entry.amount <= 0:
            continue
        room = min(grant_entry.amount, account.pool(grant_entry.pool))
        for source, owed in account.owed_by:
            part = min(room, owed)
            if part <= 0:
                continue
            entry = Entry(TransactionType.ADDON_REFUNDED, grant_entry.pool, -part,
                          "Owed credits collected (taken back by Stripe earlier)", source)
            account = _with_owed(apply(account, [entry]), source, owed - part)
            entries.append(entry)
            room -= part
    return account, entries


def grant_and_collect(account: Account, entries: list[Entry]) -> tuple[Account, list[Entry]]:
    """`apply(account, entries)` followed by `collect_owed`: the account after both, and all entries."""
    after = apply(account, entries)
    after, collected = collect_owed(after, entries)
    return after, list(entries) + collected
