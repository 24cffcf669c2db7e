"""The pure rules of reconciliation (no I/O): does a user's ledger explain their document?

Rules enforced here:
- each pool must equal the sum of the user's records in that pool, and the totals must equal
  the records under the rule `accounts.totals_change` applies;
- a legacy document's balance is outside the ledger until migrated, so its ledger must be empty;
- a migrated legacy document's stored baseline (`legacy_total_earned`, `legacy_total_spent`) is
  added to the ledger's totals; a user migrated by a live function (a `migration` record, no
  stored baseline) can only be checked for totals at least the ledger's;
- a pool that is not stored as an integer is drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..ledger.accounts import totals_change
from ..ledger.codec import is_legacy_document, read_account
from ..ledger.models import CreditPool, TransactionType
from .migration_rules import LEGACY_EARNED, LEGACY_SPENT


@dataclass
class LedgerSums:
    """The running sums of one user's transaction records."""

    monthly: int = 0
    permanent: int = 0
    earned: int = 0
    spent: int = 0
    records: int = 0
    migrated: bool = False

    def add(self, record: Mapping[str, Any]) -> None:
        amount = record.get("amount")
        amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
        pool = record.get("pool")
        if pool == CreditPool.MONTHLY.value:
            self.monthly += amount
        elif pool == CreditPool.PERMANENT.value:
            self.permanent += amount
        try:
            kind = TransactionType(record.get("type"))
        except ValueError:
            kind = None
        if kind is not None:
            earned, spent = totals_change(kind, amount)
            self.earned += earned
            self.spent += spent
            self.migrated = self.migrated or kind is TransactionType.MIGRATION
        self.records += 1


@dataclass(frozen=True)
class Drift:
    """One stored figure that disagrees with the user's ledger."""

    user_id: str
    field: str
    stored: int
    ledger: int
    note: str = ""

    @property
    def difference(self) -> int:
        return self.stored - self.ledger

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "field": self.field,
            "stored": self.stored,
            "ledger": self.ledger,
            "difference": self.difference,
            "note": self.note,
        }


def compare(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums) -> list[Drift]:
    """Every figure of the user's document that its ledger does not explain."""
    if data is None:
        note = "records without a user document"
        return [
            Drift(user_id, f"credits_{pool}", 0, ledger, note)
            for pool, ledger in (("monthly", sums.monthly), ("permanent", sums.permanent))
            if ledger
        ]
    if is_legacy_document(data):
        note = "legacy document: its balance is outside the ledger until migrated"
        return [
            Drift(user_id, f"credits_{pool}", 0, ledger, note)
            for pool, ledger in (("monthly", sums.monthly), ("permanent", sums.permanent))
            if ledger
        ]
    account = read_account(user_id, data)
    drifts = [
        Drift(user_id, "credits_monthly", account.monthly, sums.monthly),
        Drift(user_id, "credits_permanent", account.permanent, sums.permanent),
    ]
    totals = (("total_earned", account.total_earned, sums.earned), ("total_spent", account.total_spent, sums.spent))
    if LEGACY_EARNED in data or LEGACY_SPENT in data:
        base = {"total_earned": _whole(data.get(LEGACY_EARNED)), "total_spent": _whole(data.get(LEGACY_SPENT))}
        drifts += [Drift(user_id, name, stored, base[name] + ledger, "ledger plus legacy totals") for name, stored, ledger in totals]
    elif sums.migrated:
        # Migrated by a live function: the legacy baseline is unknown, but it is never negative.
        drifts += [
            Drift(user_id, name, stored, ledger, "below what the ledger explains")
            for name, stored, ledger in totals
            if stored < ledger
        ]
    else:
        drifts += [Drift(user_id, name, stored, ledger) for name, stored, ledger in totals]
    drifts = [d for d in drifts if d.difference]
    for pool_field in ("credits_monthly", "credits_permanent"):
        raw = data.get(pool_field, 0)
        if not isinstance(raw, int) or isinstance(raw, bool):
            drifts.append(Drift(user_id, pool_field, 0, 0, f"stored value {raw!r} is not an integer"))
    return drifts


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
