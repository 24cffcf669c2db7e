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
  `legacy_total_earned` and `legacy_total_spent` for reconciliation;
- a user's records are numbered in commit order (`plan_numbering`): those written before `seq`
  existed come first, by `created_at` (then id: records of one commit share a time only when
  the time cannot order them anyway), then the numbered ones in their `seq` order, each
  `balance_after` the running sums of the pools; a record already numbered so is left as it
  is, so a numbered ledger plans nothing, and the document's `last_seq` becomes the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterable, Mapping, Optional

from ..ledger.accounts import Account, migrate
from ..ledger.codec import LEGACY_EARNED, LEGACY_SPENT, is_legacy_document, last_seq, read_account
from ..ledger.models import CreditPool


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


@dataclass(frozen=True)
class NumberingPlan:
    """What numbering one user's records writes: the new `seq` and `balance_after` of each
    record that needs them (by record id, in `seq` order), and the document's `last_seq`."""

    numbers: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    last_seq: int = 0
    # Whether the document's `last_seq` must be written.
    document: bool = False

    @property
    def needed(self) -> bool:
        return bool(self.numbers) or self.document


_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _created(record: Mapping[str, Any]) -> datetime:
    value = record.get("created_at")
    if not isinstance(value, datetime):
        return _EPOCH
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _numbered(record: Mapping[str, Any]) -> bool:
    seq = record.get("seq")
    return isinstance(seq, int) and not isinstance(seq, bool)


def numbering_order(records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The ids of a user's records (by id) in commit order, as far as it can be known (see the
    module's rules)."""
    unnumbered = sorted((rid for rid, r in records.items() if not _numbered(r)),
                        key=lambda rid: (_created(records[rid]), rid))
    numbered = sorted((rid for rid, r in records.items() if _numbered(r)),
                      key=lambda rid: (records[rid]["seq"], _created(records[rid]), rid))
    return unnumbered + numbered


def plan_numbering(data: Optional[Mapping[str, Any]], records: Mapping[str, Mapping[str, Any]]) -> NumberingPlan:
    """How one user's records (by id) are numbered 1..n with their running sums; nothing for a
    user whose document is absent or still legacy (their records are reconcile's to report)."""
    if data is None or is_legacy_document(data):
        return NumberingPlan()
    running = {CreditPool.MONTHLY.value: 0, CreditPool.PERMANENT.value: 0}
    numbers: dict[str, tuple[int, dict[str, int]]] = {}
    ordered = numbering_order(records)
    for seq, record_id in enumerate(ordered, start=1):
        record = records[record_id]
        pool = record.get("pool")
        if pool in running:
            running[pool] += _whole(record.get("amount"))
        after = {"credits_monthly": running[CreditPool.MONTHLY.value],
                 "credits_permanent": running[CreditPool.PERMANENT.value]}
        if record.get("seq") != seq or record.get("balance_after") != after:
            numbers[record_id] = (seq, after)
    # A document without `last_seq` learns it on its next change (`store.pipeline`): written
    # here only with renumbered records, or when it says a wrong one.
    stored = last_seq(data)
    return NumberingPlan(numbers, len(ordered), document=stored is not None and stored != len(ordered))
