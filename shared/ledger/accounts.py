"""Account arithmetic: the pure rules every change to a user's pools obeys (no I/O, no google,
stripe or flask imports).

Rules enforced here:
- credits are `int`; a pool never goes below zero and no ledger entry has amount 0;
- a grant without an explicit pool goes where its transaction type belongs
  (subscription grants and expiries to monthly, everything else to permanent);
- a legacy account (read from a `balance`-only document) holds that many permanent credits, and
  its first change writes them as a `migration` entry, keeping `total_earned` and `total_spent`;
- `total_earned` counts every credit granted, `total_spent` every credit spent less refunds;
  migrations and expiries move neither.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from ..common.errors import InvalidRequest, PoolUnderflow
from .models import CreditPool, TransactionType

MONTHLY = CreditPool.MONTHLY
PERMANENT = CreditPool.PERMANENT

# Types whose positive amounts count as credits granted (total_earned).
_EARNING_TYPES = frozenset(
    {
        TransactionType.SUBSCRIPTION_GRANT,
        TransactionType.ADDON_PURCHASE,
        TransactionType.PROMO_GRANT,
        TransactionType.ADJUSTMENT,
    }
)

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

    @property
    def balance(self) -> int:
        return self.monthly + self.permanent

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
