"""Reconciliation over every user, as an operator runs it.

Rules enforced here:
- the users and the records (ordered by user) are streamed side by side, holding one user's
  sums at a time;
- every drift is confirmed with a consistent read of that one user before it is reported, so a
  change that landed between the two streams is not reported;
- a user who owes credits, or whose ledger took credits back, also has their add-on payments
  read, so what is owed is accounted for (`reconcile_rules.owed_drift`); the report counts the
  users who owe and the credits owed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..common import log
from ..ledger.codec import is_legacy_document, read_owed
from ..store import collections, scans
from .reconcile_rules import Drift, LedgerSums, compare, owed_drift


@dataclass
class ReconcileReport:
    users: int = 0
    transactions: int = 0
    legacy_users: int = 0
    drift: list[Drift] = field(default_factory=list)
    # Drifts the scan saw that a consistent re-read did not: a change landed between streams.
    unconfirmed: int = 0
    # Users who owe credits taken back by Stripe refunds or disputes, and how many in all.
    owing_users: int = 0
    credits_owed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "transactions": self.transactions,
            "legacy_users": self.legacy_users,
            "drift": [d.as_dict() for d in self.drift],
            "unconfirmed": self.unconfirmed,
            "owing_users": self.owing_users,
            "credits_owed": self.credits_owed,
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
    for page in scans.user_pages(page_size):
        for user_id, data in page:
            if previous is not None and user_id <= previous:
                raise OrderingError(f"user documents are not ordered: {user_id!r} after {previous!r}")
            previous = user_id
            yield user_id, data


def reconcile(
    page_size: int = scans.SCAN_PAGE_SIZE,
    progress: Callable[[ReconcileReport], None] = lambda report: None,
    progress_every: int = 10_000,
) -> ReconcileReport:
    """Compare every user's pools and totals with their records; only confirmed drift is kept."""
    report = ReconcileReport()
    users = _users(report, page_size)
    groups = _user_groups(scans.transactions_by_user(page_size * 2), report)
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
        if data is not None and is_legacy_document(data):
            report.legacy_users += 1
        owed = sum(amount for _, amount in read_owed(data)) if data is not None and not is_legacy_document(data) else 0
        if owed:
            report.owing_users += 1
            report.credits_owed += owed
        if compare(user_id, data, sums) or _owed_drift(user_id, data, sums):
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
    data, records = scans.user_ledger(user_id)
    sums = LedgerSums()
    for record in records:
        sums.add(record)
    confirmed = compare(user_id, data, sums) + _owed_drift(user_id, data, sums)
    if confirmed:
        report.drift.extend(confirmed)
    else:
        report.unconfirmed += 1


def _owed_drift(user_id: str, data: Optional[dict[str, Any]], sums: LedgerSums) -> list[Drift]:
    # Only users touched by money back need their payments read.
    if data is None or not (sums.taken_by_source or read_owed(data)):
        return []
    payments = [snap.to_dict() for snap in scans.documents(collections.STRIPE_PAYMENTS, "user_id", user_id)]
    return owed_drift(user_id, data, sums, payments)
