"""Pure rules behind the operator tools: migration decisions, reconciliation, usage reports.

No I/O and no google, stripe or flask imports: the store reads, these functions decide.

Rules enforced here:
- migration follows the contract: a legacy `balance` becomes the permanent pool, recorded as a
  `migration` transaction, totals kept; a document that already has pools is never re-migrated;
- a half-written document is repaired only where the repair is certain: pools beside a stray
  `balance` keep the pools (they are what every reader uses) and drop the stray field; a legacy
  document whose `migration` record already exists with exactly its balance gets its pools
  without a second record; anything else (a record that disagrees with the balance, a balance
  that is not a whole non-negative number) is left untouched for a person to review;
- reconciliation compares each pool with the sum of the user's records in that pool, and the
  totals with the records under the same rule `core.apply` uses; a legacy document's balance is
  outside the ledger until migrated, so its ledger must be empty; the totals a legacy document
  carried predate the ledger, so `migrate` stores them as `legacy_total_earned` and
  `legacy_total_spent` and reconciliation adds them to the ledger's; a user migrated by a live
  function (a `migration` record, no stored baseline) can only be checked for totals at least
  the ledger's;
- a usage report counts per day and pool: granted (what `total_earned` counts), spent (spends less
  refunds), expired (`monthly_expired`), and other (migrations and negative adjustments), so that
  granted - spent - expired + other is the pool's net change that day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Iterable, Mapping, Optional

from .core import Account, is_legacy_document, migrate, read_account, totals_change
from .models import CreditPool, TransactionType

POOLS = (CreditPool.MONTHLY, CreditPool.PERMANENT)
# Fields `migrate` adds to a migrated legacy document: its totals from before the ledger.
LEGACY_EARNED = "legacy_total_earned"
LEGACY_SPENT = "legacy_total_spent"


# --- migration -----------------------------------------------------------------------------


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


# --- reconciliation ------------------------------------------------------------------------


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


# --- usage report --------------------------------------------------------------------------

CATEGORIES = ("granted", "spent", "expired", "other")


def categorize(kind: TransactionType, amount: int) -> tuple[str, int]:
    """The report column a record counts in, and the (non-negative for the first three) value."""
    earned, spent = totals_change(kind, amount)
    if earned:
        return "granted", earned
    if kind in (TransactionType.SPENT, TransactionType.REFUND):
        return "spent", spent
    if kind is TransactionType.MONTHLY_EXPIRED:
        return "expired", -amount
    return "other", amount


@dataclass
class DayUsage:
    """One day's figures: `figures[pool][category]` in credits."""

    day: date
    figures: dict[str, dict[str, int]] = field(
        default_factory=lambda: {pool.value: {c: 0 for c in CATEGORIES} for pool in POOLS}
    )

    def spent_total(self) -> int:
        return sum(self.figures[pool.value]["spent"] for pool in POOLS)

    def share(self, pool: str) -> Optional[float]:
        """The pool's share of the day's spending, or None when nothing was spent."""
        total = self.spent_total()
        return round(self.figures[pool]["spent"] / total, 4) if total else None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"date": self.day.isoformat()}
        for pool in POOLS:
            for category in CATEGORIES:
                row[f"{pool.value}_{category}"] = self.figures[pool.value][category]
            row[f"{pool.value}_spend_share"] = self.share(pool.value)
        row["total_spent"] = self.spent_total()
        return row


def report_window(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants [start 00:00, day after end 00:00) a report over `start`..`end` covers."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    begin = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    return begin, datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(days=1)


def aggregate_usage(records: Iterable[Mapping[str, Any]], start: date, end: date) -> list[DayUsage]:
    """Per-day usage over `start`..`end` (UTC, both included), a row for every day."""
    days = {start + timedelta(days=i): DayUsage(start + timedelta(days=i)) for i in range((end - start).days + 1)}
    for record in records:
        created = record.get("created_at")
        pool = record.get("pool")
        amount = record.get("amount")
        if not isinstance(created, datetime) or pool not in ("monthly", "permanent"):
            continue
        if not isinstance(amount, int) or isinstance(amount, bool):
            continue
        try:
            kind = TransactionType(record.get("type"))
        except ValueError:
            continue
        day = days.get(created.astimezone(timezone.utc).date())
        if day is None:
            continue
        category, value = categorize(kind, amount)
        day.figures[pool][category] += value
    return [days[d] for d in sorted(days)]


def usage_totals(days: Iterable[DayUsage], start: date) -> DayUsage:
    """The sum of several days' figures (its `day` is the first day, for display only)."""
    total = DayUsage(start)
    for day in days:
        for pool, figures in day.figures.items():
            for category, value in figures.items():
                total.figures[pool][category] += value
    return total
