"""The pure rules of reconciliation (no I/O): does a user's ledger explain their document?

Rules enforced here:
- each pool must equal the sum of the user's records in that pool, and the totals must equal
  the records under the rule `accounts.totals_change` applies;
- a legacy document's balance is outside the ledger until migrated, so its ledger must be empty;
- a migrated legacy document's stored baseline (`legacy_total_earned`, `legacy_total_spent`),
  kept by whichever write migrated it (`credits migrate` or a function's first change), is added
  to the ledger's totals; a document a function migrated before functions kept the baseline (a
  `migration` record, no baseline) can only be checked for totals at least the ledger's;
- a pool that is not stored as an integer is drift;
- what is owed (`credits_owed`) must equal the sum of its parts by source (`credits_owed_by`),
  and what the user's add-on payments (`stripe_payments`) have claimed by refunds and disputes
  must equal what the ledger took back for their charges and disputes (`addon_refunded` less
  `addon_reinstated`) plus what is still owed: claimed = taken + owed;
- a plain pool drift is corrected in the ledger, never in the pool: one `adjustment` record of
  stored - ledger (`correction`), with an id derived from the drift; other drift is not corrected;
- a scheduled pass adds each page's counts to the pass's running totals and moves its cursor;
  the page that reaches the end completes the pass, which becomes the last pass, and the next
  page starts a new one from the first user (`after_page`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from ..common import ids
from ..ledger.accounts import totals_change
from ..ledger.codec import CREDITS_OWED, LEGACY_EARNED, LEGACY_SPENT, is_legacy_document, read_account, read_owed
from ..ledger.models import CreditPool, TransactionType


@dataclass
class LedgerSums:
    """The running sums of one user's transaction records."""

    monthly: int = 0
    permanent: int = 0
    earned: int = 0
    spent: int = 0
    records: int = 0
    migrated: bool = False
    # Net credits taken back per source (charge or dispute id): -(addon_refunded + addon_reinstated).
    taken_by_source: dict[str, int] = field(default_factory=dict)

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
            if kind in (TransactionType.ADDON_REFUNDED, TransactionType.ADDON_REINSTATED):
                source = str(record.get("source"))
                self.taken_by_source[source] = self.taken_by_source.get(source, 0) - amount
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


def _claimed(payment: Mapping[str, Any]) -> int:
    """What a payment document says its refunds and still-holding disputes have claimed."""
    disputes = payment.get("disputes") or {}
    holding = sum(_whole(d.get("claimed")) for d in disputes.values() if isinstance(d, Mapping) and not d.get("reinstated"))
    return _whole(payment.get("refund_claimed")) + holding


def _sources(payment: Mapping[str, Any]) -> set[str]:
    return set(payment.get("charges") or {}) | set(payment.get("disputes") or {})


def owed_drift(
    user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums, payments: Iterable[Mapping[str, Any]]
) -> list[Drift]:
    """Drift in what the user owes: its parts, and claimed = taken + owed over the user's payments."""
    if data is None or is_legacy_document(data):
        return []
    owed_by = dict(read_owed(data))
    drifts = []
    if CREDITS_OWED in data and _whole(data.get(CREDITS_OWED)) != sum(owed_by.values()):
        drifts.append(Drift(user_id, CREDITS_OWED, _whole(data.get(CREDITS_OWED)), sum(owed_by.values()),
                            "credits_owed is not the sum of credits_owed_by"))
    payments = list(payments)
    sources = set().union(*(_sources(p) for p in payments)) if payments else set()
    claimed = sum(_claimed(p) for p in payments)
    taken = sum(sums.taken_by_source.get(source, 0) for source in sources)
    owed = sum(owed_by.values())
    if claimed - taken != owed:
        drifts.append(Drift(user_id, CREDITS_OWED, owed, claimed - taken,
                            f"add-on payments claimed {claimed}, the ledger took back {taken}"))
    return drifts


# Drift in these fields of a two-pool document (with no note: a plain disagreement) can be
# corrected by a record; everything else is for a person to look at.
_POOL_FIELDS = {"credits_monthly": CreditPool.MONTHLY, "credits_permanent": CreditPool.PERMANENT}


@dataclass(frozen=True)
class Correction:
    """The ledger-only record that makes a user's records explain the pool they have stored."""

    user_id: str
    pool: CreditPool
    stored: int
    ledger: int
    correction_id: str

    @property
    def amount(self) -> int:
        return self.stored - self.ledger

    @property
    def field(self) -> str:
        return f"credits_{self.pool.value}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "correction_id": self.correction_id,
            "user_id": self.user_id,
            "pool": self.pool.value,
            "stored": self.stored,
            "ledger": self.ledger,
            "amount": self.amount,
        }


def correction(drift: Drift) -> Optional[Correction]:
    """The correction of one drift, or None when a record cannot be the fix.

    The stored pool is what the user sees and spends, so it stays; the ledger gains one
    `adjustment` record of stored - ledger in that pool. Only a plain pool drift of a two-pool
    document qualifies: totals, what is owed, records without a user document, legacy documents
    and pools not stored as integers are reported, not corrected.
    """
    pool = _POOL_FIELDS.get(drift.field)
    if pool is None or drift.note or not drift.difference:
        return None
    return Correction(drift.user_id, pool, drift.stored, drift.ledger,
                      ids.correction_id(drift.user_id, drift.field, drift.stored, drift.ledger))


# The counts a scheduled pass adds up page by page, and keeps for its last completed pass.
PASS_COUNTS = ("users", "transactions", "drift", "drift_users", "unconfirmed", "pages")


@dataclass(frozen=True)
class PageCounts:
    """What one page of a scheduled pass reconciled."""

    users: int
    transactions: int
    drift: int
    drift_users: int
    unconfirmed: int
    pages: int = 1


def after_page(
    state: Mapping[str, Any], page: PageCounts, cursor: Optional[str], completed: bool, now: datetime
) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
    """The bookkeeping document after one page, and the pass it completed (None if it did not).

    `state` is the stored document ({} before the first run); `cursor` is the last user the page
    reconciled. The whole document is returned, so a write never depends on fields it did not see.
    """
    started = state.get("pass_started_at") or now
    totals = {name: _whole(state.get(name)) + getattr(page, name) for name in PASS_COUNTS}
    kept = {"last_pass": state.get("last_pass"), "passes_completed": _whole(state.get("passes_completed"))}
    if not completed:
        return {"pass_started_at": started, "cursor": cursor, **totals, **kept, "updated_at": now}, None
    finished = {"started_at": started, "finished_at": now, "duration_s": round((now - started).total_seconds(), 3),
                **totals}
    fresh = {name: 0 for name in PASS_COUNTS}
    return ({"pass_started_at": None, "cursor": None, **fresh, "last_pass": finished,
             "passes_completed": kept["passes_completed"] + 1, "updated_at": now}, finished)
