"""The pure rules of legacy migration (no I/O).

Rules enforced here:
- a legacy `balance` becomes the permanent pool, recorded as a `migration` transaction, totals
  kept; a document that already has pools is never re-migrated;
- a half-written document is repaired only where the repair is certain: pools beside a stray
  `balance` keep the pools (they are what every reader uses) and drop the stray field; a legacy
  document whose `migration` record already exists with exactly its balance gets its pools
  without a second record; anything else (a record that disagrees with the balance, a balance
  that is not a whole non-negative number) is left untouched for a person to review;
- the totals a legacy document carried predate the ledger, so migration stores them as
  `legacy_total_earned` and `legacy_total_spent` for reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping, Optional

from ..ledger.accounts import Account, migrate
from ..ledger.codec import LEGACY_EARNED, LEGACY_SPENT, is_legacy_document, read_account


class MigrationAction(str, Enum):
    """What `migrate` does with one user document."""

    ALREADY_MIGRATED = "already_migrated"  # pools, no `balance`: untouched
    MIGRATE = "migrate"  # legacy: pools written, `migration` record created
    ADOPT_RECORD = "adopt_record"  # legacy with its `migration` record already written: pools only
    DROP_STRAY_BALANCE = "drop_stray_balance"  # pools and a leftover `balance`: the field removed
    REVIEW = "review"  # inconsistent: left untouched, reported
    ABSENT = "absent"  # the document disappeared between the scan and the change


@dataclass(frozen=True)
class MigrationDecision:
    action: MigrationAction
    reason: str = ""
    account: Optional[Account] = None  # the account to write, for actions that write
    entries: tuple = ()  # ledger entries to record (core.Entry), for MIGRATE
    user_fields: Optional[dict[str, int]] = None  # extra fields stored on the user document

    @property
    def writes(self) -> bool:
        return self.action in (MigrationAction.MIGRATE, MigrationAction.ADOPT_RECORD, MigrationAction.DROP_STRAY_BALANCE)


def legacy_balance_value(data: Mapping[str, Any]) -> Optional[int]:
    """The legacy balance as credits, or None if it is not a whole non-negative number."""
    raw = data.get("balance")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, float) and raw.is_integer() and raw >= 0:
        return int(raw)
    return None


def decide_migration(
    user_id: str, data: Optional[Mapping[str, Any]], prior_migration_amounts: Iterable[int] = ()
) -> MigrationDecision:
    """What to do with one stored user document, given the user's existing `migration` records."""
    if data is None:
        return MigrationDecision(MigrationAction.ABSENT, "no document")
    if "balance" not in data:
        return MigrationDecision(MigrationAction.ALREADY_MIGRATED)
    if not is_legacy_document(data):
        # Every reader already uses the pools; the stray field is only a contradiction waiting.
        return MigrationDecision(
            MigrationAction.DROP_STRAY_BALANCE,
            f"pools present beside a stray balance of {data.get('balance')!r}",
            account=read_account(user_id, data),
        )
    balance = legacy_balance_value(data)
    if balance is None:
        return MigrationDecision(
            MigrationAction.REVIEW, f"legacy balance {data.get('balance')!r} is not a whole non-negative number"
        )
    prior = list(prior_migration_amounts)
    account = read_account(user_id, data)
    # The totals so far were earned and spent before the ledger existed: kept as its baseline.
    baseline = {LEGACY_EARNED: account.total_earned, LEGACY_SPENT: account.total_spent}
    if not prior:
        migrated, entries = migrate(account)
        return MigrationDecision(
            MigrationAction.MIGRATE, account=migrated, entries=tuple(entries), user_fields=baseline
        )
    if sum(prior) == balance:
        # The record was committed without its pools: the ledger already explains the credits.
        migrated, _ = migrate(account)
        return MigrationDecision(
            MigrationAction.ADOPT_RECORD,
            f"migration record of {sum(prior)} already written",
            account=migrated,
            user_fields=baseline,
        )
    return MigrationDecision(
        MigrationAction.REVIEW,
        f"migration records total {sum(prior)} but the legacy balance is {balance}",
    )
