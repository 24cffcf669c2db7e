"""Reconciliation over every user, as an operator runs it, or one bounded page at a time, as the
scheduler runs it.

Rules enforced here:
- the users and the records (ordered by user) are streamed side by side, holding one user's
  sums at a time; a user with records and no document is a user too;
- every drift is confirmed with a consistent read of that one user before it is reported, so a
  change that landed between the two streams is not reported;
- a user who owes credits, or whose ledger took credits back, also has their add-on payments
  read, so what is owed is accounted for (`reconcile_rules.owed_drift`); the report counts the
  users who owe and the credits owed;
- a page reconciles at most `limit` users after the stored cursor, writes no credit data, and
  records its progress in one bookkeeping document only over the version it read, so of two
  overlapping runs one advances the cursor and the other writes and logs nothing; a write whose
  reply is lost is read back, so a page that did advance still logs its drift;
- each confirmed drift is logged once as `ledger drift`; a page that reaches the last user
  completes the pass and logs `reconcile pass complete`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Optional

from ..common import log
from ..common.errors import Unavailable
from ..ledger import collections
from ..ledger.codec import is_legacy_document, read_owed
from ..store import documents, scans
from ..store.client import utcnow
from .reconcile_rules import (
    Drift,
    LedgerSums,
    PageCounts,
    after_page,
    compare,
    owed_drift,
)


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
    # The last user reconciled (the order is the users' and the records' own).
    last_user: Optional[str] = None

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
        user_id = record.get("user_id")
        if not isinstance(user_id, str):
            report.transactions += 1
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


def _users(pages: Iterable[list[tuple[str, dict[str, Any]]]], after: Optional[str] = None) -> Iterator[tuple[str, dict[str, Any]]]:
    # Users come ordered by document name, records by the `user_id` field: the merge is right
    # only while both orders agree, so any disorder stops it rather than misreport.
    previous = after
    for page in pages:
        for user_id, data in page:
            if previous is not None and user_id <= previous:
                raise OrderingError(f"user documents are not ordered: {user_id!r} after {previous!r}")
            previous = user_id
            yield user_id, data


def _merge(
    users: Iterator[tuple[str, dict[str, Any]]],
    groups: Iterator[tuple[str, LedgerSums]],
    report: ReconcileReport,
    limit: Optional[int] = None,
    progress: Callable[[ReconcileReport], None] = lambda report: None,
    progress_every: int = 10_000,
) -> bool:
    """Reconcile the users of both streams in order, at most `limit`; True if both streams ended."""
    user = next(users, None)
    group = next(groups, None)
    while user is not None or group is not None:
        if limit is not None and report.users >= limit:
            return False
        if group is None or (user is not None and user[0] < group[0]):
            user_id, data, sums = user[0], user[1], LedgerSums()
            user = next(users, None)
        elif user is None or group[0] < user[0]:
            user_id, data, sums = group[0], None, group[1]
            group = next(groups, None)
        else:
            user_id, data, sums = user[0], user[1], group[1]
            user, group = next(users, None), next(groups, None)
        _check(report, user_id, data, sums)
        if report.users % progress_every == 0:
            progress(report)
    return True


def _check(report: ReconcileReport, user_id: str, data: Optional[dict[str, Any]], sums: LedgerSums) -> None:
    report.users += 1
    report.transactions += sums.records
    report.last_user = user_id
    if data is not None and is_legacy_document(data):
        report.legacy_users += 1
    owed = sum(amount for _, amount in read_owed(data)) if data is not None and not is_legacy_document(data) else 0
    if owed:
        report.owing_users += 1
        report.credits_owed += owed
    if compare(user_id, data, sums) or _owed_drift(user_id, data, sums):
        _confirm(report, user_id)


def log_drift(drift: Iterable[Drift]) -> None:
    """One `ledger drift` warning per confirmed drift (the line the drift alert counts)."""
    for d in drift:
        log.warning(
            "ledger drift",
            user_id=d.user_id,
            outcome="drift",
            field=d.field,
            stored=d.stored,
            ledger=d.ledger,
            note=d.note or None,
        )


def reconcile(
    page_size: int = scans.SCAN_PAGE_SIZE,
    progress: Callable[[ReconcileReport], None] = lambda report: None,
    progress_every: int = 10_000,
) -> ReconcileReport:
    """Compare every user's pools and totals with their records; only confirmed drift is kept."""
    report = ReconcileReport()
    users = _users(scans.user_pages(page_size))
    groups = _user_groups(scans.transactions_by_user(page_size * 2), report)
    _merge(users, groups, report, progress=progress, progress_every=progress_every)
    progress(report)
    log_drift(report.drift)
    return report


# How many users a page of the scheduled pass reconciles unless told (the route allows 1 to 2000).
PAGE_DEFAULT = 500
ADVANCED = "advanced"
LOST_RACE = "lost_race"


def reconcile_page(limit: int = PAGE_DEFAULT, now: Optional[datetime] = None) -> dict[str, Any]:
    """Reconcile the next `limit` users after the stored cursor and record the pass's progress.

    The range is the users after the cursor up to the `limit`-th user document (the records read
    are those of that range; users with records and no document in it count too), and at most
    `limit` users in all. A page that finds no user document after its range completes the pass.
    """
    found = documents.read_versioned(collections.reconcile_state())
    state, version = found if found is not None else ({}, None)
    cursor = state.get("cursor")
    page = next(scans.user_pages(limit, start_after=cursor), [])
    more_documents = len(page) == limit
    report = ReconcileReport()
    groups = _user_groups(
        scans.transactions_in_user_range(cursor, page[-1][0] if more_documents else None), report
    )
    ended = _merge(_users([page], after=cursor), groups, report, limit)
    completed = ended and not more_documents
    counts = PageCounts(report.users, report.transactions, len(report.drift),
                        len({d.user_id for d in report.drift}), report.unconfirmed)
    now = now or utcnow()
    new_state, finished = after_page(state, counts, report.last_user or cursor, completed, now)
    written = _record(new_state, version)
    if not written:
        # Another run advanced the pass from the same cursor; it reports these users, not this one.
        log.info("reconcile page lost the race", outcome=LOST_RACE, cursor=cursor)
        return {"outcome": LOST_RACE, "users": 0, "transactions": 0, "drift": 0, "completed": False, "cursor": cursor}
    log_drift(report.drift)
    log.info("reconcile page", outcome=ADVANCED, users=counts.users, transactions=counts.transactions,
             drift=counts.drift, unconfirmed=counts.unconfirmed, cursor=new_state["cursor"], completed=completed)
    if finished is not None:
        log.info("reconcile pass complete", outcome="complete", users=finished["users"],
                 transactions=finished["transactions"], drift=finished["drift"], drift_users=finished["drift_users"],
                 unconfirmed=finished["unconfirmed"], pages=finished["pages"],
                 started_at=finished["started_at"].isoformat(), duration_s=finished["duration_s"])
    return {"outcome": ADVANCED, "users": counts.users, "transactions": counts.transactions,
            "drift": counts.drift, "completed": completed, "cursor": new_state["cursor"]}


def _record(new_state: dict[str, Any], version: Optional[datetime]) -> bool:
    """Write the pass's bookkeeping over the version read; False if another run wrote first."""
    path = collections.reconcile_state()
    try:
        return documents.create(path, new_state) if version is None else documents.update_if_unchanged(
            path, new_state, version)
    except Unavailable:
        # The write may have landed with its reply lost: if it did, this run advanced the pass
        # and must still log its drift, or that drift would go unlogged until the next pass.
        landed = documents.read(path)
        if landed is not None and landed.get("updated_at") == new_state["updated_at"]:
            return True
        raise


def state() -> Optional[dict[str, Any]]:
    """The scheduled reconcile's bookkeeping document, or None before its first run."""
    return documents.read(collections.reconcile_state())


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
