"""The services behind the operator tools: adjustments, migration, reconciliation, reports.

Rules enforced here:
- an adjustment is one `adjustment` record in one commit with the user's pools and an audit
  document (`credit_adjustments/{id}`) naming the operator and the reason; it never takes a pool
  below zero; with an idempotency key the audit document's id is derived from the key and
  created only once, so a repeat changes nothing and a different request under the same key is
  refused;
- migration writes each user through the store's conditional commits, so a document changed by
  a live function meanwhile is re-read and re-decided (it is then no longer legacy and left
  alone); its `migration` record has an id derived from the user, created only once;
- migration walks the users in id order and reports the last user of the last finished page,
  so an interrupted run can continue from there; starting again from the beginning is just as
  safe, because migrated documents are skipped;
- reconciliation streams the users and the records (ordered by user) side by side, holding one
  user's sums at a time, and confirms every drift with a consistent read of that one user
  before reporting it, so a change that landed between the two streams is not reported.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterator, Optional

from . import core, ledger, log, operations, store
from .errors import IdempotencyConflict, InvalidRequest
from .models import CreditPool, TransactionType
from .operations import Drift, LedgerSums, MigrationAction

MAX_ADJUSTMENT = 1_000_000_000
MAX_REASON = 400
MAX_OPERATOR = 100


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- adjustments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdjustmentResult:
    adjustment_id: str
    replayed: bool
    transaction: dict[str, Any]
    balance: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "adjustment_id": self.adjustment_id,
            "replayed": self.replayed,
            "transaction": self.transaction,
            "balance": self.balance,
        }


def adjust(
    user_id: str,
    pool: str,
    amount: int,
    reason: str,
    operator: str,
    idempotency_key: Optional[str] = None,
) -> AdjustmentResult:
    """Add (or with a negative amount remove) `amount` credits to one pool of the user."""
    try:
        target = CreditPool(pool)
    except ValueError:
        raise InvalidRequest(f"pool must be monthly or permanent, not {pool!r}", fields=["pool"]) from None
    if type(amount) is not int or amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise InvalidRequest(f"amount must be a non-zero integer of at most {MAX_ADJUSTMENT:,}", fields=["amount"])
    reason, operator = (reason or "").strip(), (operator or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRequest(f"a reason of 1 to {MAX_REASON} characters is required", fields=["reason"])
    if not operator or len(operator) > MAX_OPERATOR:
        raise InvalidRequest(f"an operator name of 1 to {MAX_OPERATOR} characters is required", fields=["operator"])
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("the idempotency key must be 1 to 255 characters", fields=["idempotency_key"])

    adjustment_id = (
        f"adj_{_digest('adjustment:' + idempotency_key)[:40]}" if idempotency_key else f"adj_{uuid.uuid4().hex}"
    )
    marker = f"{store.ADJUSTMENTS}/{adjustment_id}"
    # The operator is not part of the request's identity: a colleague re-running it is a repeat.
    fingerprint = _digest(json.dumps([user_id, target.value, amount, reason]))
    description = f"Adjustment by {operator}: {reason}"

    def decide(snap: store.Snapshot) -> store.Change[AdjustmentResult]:
        seen = snap.markers[marker]
        if seen is not None:
            if seen.get("fingerprint") != fingerprint:
                raise IdempotencyConflict(
                    "this idempotency key was already used for a different adjustment",
                    idempotency_key=idempotency_key,
                )
            return store.Change(
                result=AdjustmentResult(
                    adjustment_id, True, json.loads(seen["transaction"]), ledger.stored_balance(user_id, snap.user_data).model_dump(mode="json")
                )
            )
        account, migration = core.migrate(snap.account)
        entry = core.Entry(TransactionType.ADJUSTMENT, target, amount, description)
        after = core.apply(account, [entry])
        written = ledger.records(user_id, migration + [entry], adjustment_id, snap.now)
        transaction = written[-1].model_dump(mode="json")
        audit = {
            "adjustment_id": adjustment_id,
            "user_id": user_id,
            "pool": target.value,
            "amount": amount,
            "reason": reason,
            "operator": operator,
            "idempotency_key": idempotency_key,
            "fingerprint": fingerprint,
            "transaction_id": written[-1].transaction_id,
            "transaction": json.dumps(transaction, separators=(",", ":")),
            "created_at": snap.now,
        }
        balance = ledger.balance_response(after, snap.now).model_dump(mode="json")
        return store.Change(
            result=AdjustmentResult(adjustment_id, False, transaction, balance),
            account=after,
            records=written,
            create={marker: audit},
        )

    result = store.change_user(user_id, decide, markers=[marker], operation="adjust")
    log.info(
        "adjustment replayed" if result.replayed else "adjustment applied",
        user_id=user_id,
        source=adjustment_id,
        outcome="replayed" if result.replayed else "applied",
        pool=target.value,
        amount=amount,
        operator=operator,
    )
    return result


# --- migration -----------------------------------------------------------------------------


@dataclass
class MigrationReport:
    dry_run: bool
    run_id: str
    examined: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {action.value: 0 for action in MigrationAction})
    credits_migrated: int = 0
    review: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    # The last user of the last page finished; a later run may continue after it.
    resume_after: Optional[str] = None
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "examined": self.examined,
            "counts": self.counts,
            "credits_migrated": self.credits_migrated,
            "review": self.review,
            "repaired": self.repaired,
            "resume_after": self.resume_after,
            "complete": self.complete,
        }


def migration_record_id(user_id: str) -> str:
    return f"txn_migration_{_digest('migration:' + user_id)[:32]}"


def _migration_change(user_id: str, prior: list[int], run_id: str):
    def decide(snap: store.Snapshot) -> store.Change[operations.MigrationDecision]:
        decision = operations.decide_migration(user_id, snap.user_data, prior)
        if not decision.writes:
            return store.Change(result=decision)
        records = (
            ledger.records(user_id, list(decision.entries), run_id, snap.now, ids=[migration_record_id(user_id)])
            if decision.entries
            else []
        )
        return store.Change(
            result=decision,
            account=decision.account,
            records=records,
            user_fields=dict(decision.user_fields or {}),
            create_records=True,
        )

    return decide


def migrate_users(
    batch_size: int = store.SCAN_PAGE_SIZE,
    dry_run: bool = False,
    start_after: Optional[str] = None,
    limit: Optional[int] = None,
    progress: Callable[[MigrationReport], None] = lambda report: None,
    report: Optional[MigrationReport] = None,
) -> MigrationReport:
    """Migrate every legacy user document, one page of `batch_size` users at a time.

    `report` may be passed in so a caller still holds the figures if the run is interrupted.
    """
    report = report or MigrationReport(dry_run=dry_run, run_id=f"migrate_{store.utcnow():%Y%m%dT%H%M%SZ}")
    report.resume_after = start_after
    for page in store.user_pages(batch_size, start_after):
        if limit is not None and report.examined >= limit:
            return report
        if limit is not None:
            page = page[: limit - report.examined]
        decisions: dict[str, operations.MigrationDecision] = {}
        items = []
        # Only a legacy document can have a migration record without pools; others need no lookup.
        priors = store.migration_amounts([user_id for user_id, data in page if core.is_legacy_document(data)])
        for user_id, data in page:
            prior = priors.get(user_id, [])
            decision = operations.decide_migration(user_id, data, prior)
            if decision.writes and not dry_run:
                items.append(store.UserChange(user_id, _migration_change(user_id, prior, report.run_id)))
            else:
                decisions[user_id] = decision
        if items:
            for item, decision in zip(items, store.change_users(items, operation="migrate")):
                decisions[item.user_id] = decision
        for user_id, _ in page:
            _count(report, user_id, decisions[user_id])
        report.examined += len(page)
        report.resume_after = page[-1][0]
        progress(report)
    report.complete = True
    return report


def _count(report: MigrationReport, user_id: str, decision: operations.MigrationDecision) -> None:
    report.counts[decision.action.value] += 1
    if decision.action is MigrationAction.MIGRATE:
        report.credits_migrated += sum(entry.amount for entry in decision.entries)
    if decision.action is MigrationAction.REVIEW:
        report.review.append({"user_id": user_id, "reason": decision.reason})
    elif decision.action in (MigrationAction.ADOPT_RECORD, MigrationAction.DROP_STRAY_BALANCE):
        report.repaired.append({"user_id": user_id, "action": decision.action.value, "reason": decision.reason})
    if decision.writes and not report.dry_run:
        log.info("user migrated", user_id=user_id, source=report.run_id, outcome=decision.action.value)


# --- reconciliation ------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    users: int = 0
    transactions: int = 0
    legacy_users: int = 0
    drift: list[Drift] = field(default_factory=list)
    # Drifts the scan saw that a consistent re-read did not: a change landed between streams.
    unconfirmed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "transactions": self.transactions,
            "legacy_users": self.legacy_users,
            "drift": [d.as_dict() for d in self.drift],
            "unconfirmed": self.unconfirmed,
        }


class OrderingError(RuntimeError):
    """A scan returned keys out of order, so a merge of the two streams would be wrong."""


def _user_groups(records: Iterator[dict[str, Any]], report: ReconcileReport) -> Iterator[tuple[str, LedgerSums]]:
    current: Optional[str] = None
    sums = LedgerSums()
    for record in records:
        report.transactions += 1
        user_id = record.get("user_id")
        if not isinstance(user_id, str):
            report.drift.append(
                Drift(str(user_id), "user_id", 0, record.get("amount") or 0, f"record {record.get('transaction_id')} has no string user_id")
            )
            continue
        if current is not None and user_id != current:
            if user_id < current:
                raise OrderingError(f"records are not ordered by user: {user_id!r} after {current!r}")
            yield current, sums
            sums = LedgerSums()
        current = user_id
        sums.add(record)
    if current is not None:
        yield current, sums


def _users(report: ReconcileReport, page_size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    previous: Optional[str] = None
    for page in store.user_pages(page_size):
        for user_id, data in page:
            if previous is not None and user_id <= previous:
                raise OrderingError(f"user documents are not ordered: {user_id!r} after {previous!r}")
            previous = user_id
            yield user_id, data


def reconcile(
    page_size: int = store.SCAN_PAGE_SIZE,
    progress: Callable[[ReconcileReport], None] = lambda report: None,
    progress_every: int = 10_000,
) -> ReconcileReport:
    """Compare every user's pools and totals with their records; only confirmed drift is kept."""
    report = ReconcileReport()
    users = _users(report, page_size)
    groups = _user_groups(store.transactions_by_user(page_size * 2), report)
    user = next(users, None)
    group = next(groups, None)
    while user is not None or group is not None:
        if group is None or (user is not None and user[0] < group[0]):
            user_id, data, sums = user[0], user[1], LedgerSums()
            user = next(users, None)
        elif user is None or group[0] < user[0]:
            user_id, data, sums = group[0], None, group[1]
            group = next(groups, None)
        else:
            user_id, data, sums = user[0], user[1], group[1]
            user, group = next(users, None), next(groups, None)
        report.users += 1
        if data is not None and core.is_legacy_document(data):
            report.legacy_users += 1
        if operations.compare(user_id, data, sums):
            _confirm(report, user_id)
        if report.users % progress_every == 0:
            progress(report)
    progress(report)
    for drift in report.drift:
        log.warning(
            "ledger drift",
            user_id=drift.user_id,
            outcome="drift",
            field=drift.field,
            stored=drift.stored,
            ledger=drift.ledger,
            note=drift.note or None,
        )
    return report


def _confirm(report: ReconcileReport, user_id: str) -> None:
    data, records = store.user_ledger(user_id)
    sums = LedgerSums()
    for record in records:
        sums.add(record)
    confirmed = operations.compare(user_id, data, sums)
    if confirmed:
        report.drift.extend(confirmed)
    else:
        report.unconfirmed += 1


# --- usage report --------------------------------------------------------------------------


def usage(start: date, end: date) -> list[operations.DayUsage]:
    """Per-day pool usage over `start`..`end` (UTC days, both included)."""
    begin, stop = operations.report_window(start, end)
    return operations.aggregate_usage(store.transactions_between(begin, stop), start, end)
