"""Reconciliation over every user, as an operator runs it, or one bounded page at a time, as the
scheduler runs it.

Rules enforced here:
- the users, the records and the documents derived from them (`spend_refunds`, `credit_holds`,
  `stripe_payments`), each ordered by user, are streamed side by side, holding one user's sums
  and derived documents at a time; a user with records or derived documents and no user
  document is a user too; a user's spends are kept one by one only for the keys their derived
  documents name;
- every drift is confirmed with a consistent read of that one user (document, records, derived
  documents) before it is reported, so a change that landed between the streams is not reported;
- what is owed is checked against the user's add-on payments (`reconcile_rules.owed_drift`); the
  report counts the users who owe and the credits owed;
- a page reconciles at most `limit` users after the stored cursor, writes no credit data, and
  records its progress in one bookkeeping document only over the version it read, so of two
  overlapping runs one advances the cursor and the other writes and logs nothing; a write whose
  reply is lost is read back, so a page that did advance still logs its drift;
- each confirmed drift is logged once as `ledger drift`, with the `kind` of check that found it;
  a page that reaches the last user completes the pass and logs `reconcile pass complete`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from ..common import log
from ..common.errors import Unavailable
from ..ledger import collections
from ..ledger.codec import is_legacy_document, read_owed
from ..store import documents, scans
from ..store.client import utcnow
from .reconcile_rules import RECORD, Derived, Drift, LedgerSums, PageCounts, after_page, user_drift

# The collections derived from the ledger, found by their `user_id`, and where each goes in `Derived`.
DERIVED = {
    collections.SPEND_REFUNDS: "spend_refunds",
    collections.HOLDS: "holds",
    collections.STRIPE_PAYMENTS: "payments",
}


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
    """A scan returned keys out of order, so a merge of the streams would be wrong."""


class _Records:
    """The record stream, taken one user's records at a time."""

    def __init__(self, records: Iterable[dict[str, Any]], report: ReconcileReport):
        self._records = iter(records)
        self._report = report
        self._last: Optional[str] = None
        self._started = False
        self._head: Optional[dict[str, Any]] = None

    def _peek(self) -> Optional[dict[str, Any]]:
        # The stream starts on first use, after the users' first page, as the merge reads them.
        if not self._started:
            self._started = True
            self._head = self._next()
        return self._head

    def _next(self) -> Optional[dict[str, Any]]:
        for record in self._records:
            user_id = record.get("user_id")
            if not isinstance(user_id, str):
                self._report.transactions += 1
                self._report.drift.append(Drift(
                    str(user_id), "user_id", 0, record.get("amount") or 0,
                    f"record {record.get('transaction_id')} has no string user_id", RECORD))
                continue
            if self._last is not None and user_id < self._last:
                raise OrderingError(f"records are not ordered by user: {user_id!r} after {self._last!r}")
            self._last = user_id
            return record
        return None

    @property
    def user(self) -> Optional[str]:
        head = self._peek()
        return head["user_id"] if head is not None else None

    def sums(self, user_id: str, wanted: frozenset[str]) -> LedgerSums:
        """The sums of `user_id`'s records (the next ones in the stream, if any are theirs)."""
        sums = LedgerSums(wanted=wanted)
        while (head := self._peek()) is not None and head["user_id"] == user_id:
            sums.add(head)
            self._head = self._next()
        return sums


def _grouped(docs: Iterable[dict[str, Any]], collection: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Consecutive documents of one user, as (user id, documents)."""
    current: Optional[str] = None
    group: list[dict[str, Any]] = []
    for doc in docs:
        user_id = doc["user_id"]
        if current is not None and user_id != current:
            if user_id < current:
                raise OrderingError(f"{collection} is not ordered by user: {user_id!r} after {current!r}")
            yield current, group
            group = []
        current = user_id
        group.append(doc)
    if current is not None:
        yield current, group


def _derived(streams: Mapping[str, Iterable[dict[str, Any]]]) -> Iterator[tuple[str, Derived]]:
    """Each user's derived documents, merged from one stream per collection (`DERIVED`), by user."""
    groups = {collection: _grouped(docs, collection) for collection, docs in streams.items()}
    heads = {collection: next(group, None) for collection, group in groups.items()}
    while any(head is not None for head in heads.values()):
        user_id = min(head[0] for head in heads.values() if head is not None)
        derived = Derived()
        for collection, head in heads.items():
            if head is not None and head[0] == user_id:
                setattr(derived, DERIVED[collection], head[1])
                heads[collection] = next(groups[collection], None)
        yield user_id, derived


def _derived_of(found: Mapping[str, list[dict[str, Any]]]) -> Derived:
    derived = Derived()
    for collection, docs in found.items():
        setattr(derived, DERIVED[collection], docs)
    return derived


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
    records: _Records,
    derived: Iterator[tuple[str, Derived]],
    report: ReconcileReport,
    limit: Optional[int] = None,
    progress: Callable[[ReconcileReport], None] = lambda report: None,
    progress_every: int = 10_000,
) -> bool:
    """Reconcile the users of the three streams in order, at most `limit`; True if all ended."""
    user = next(users, None)
    bundle = next(derived, None)
    while True:
        heads = [head for head in (user and user[0], records.user, bundle and bundle[0]) if head is not None]
        if not heads:
            return True
        if limit is not None and report.users >= limit:
            return False
        user_id = min(heads)
        data, mine = None, Derived()
        if user is not None and user[0] == user_id:
            data, user = user[1], next(users, None)
        if bundle is not None and bundle[0] == user_id:
            mine, bundle = bundle[1], next(derived, None)
        # The derived documents come first, so only the spends they name are kept one by one.
        _check(report, user_id, data, records.sums(user_id, mine.sources), mine)
        if report.users % progress_every == 0:
            progress(report)


def _check(report: ReconcileReport, user_id: str, data: Optional[dict[str, Any]], sums: LedgerSums,
           derived: Derived) -> None:
    report.users += 1
    report.transactions += sums.records
    report.last_user = user_id
    if data is not None and is_legacy_document(data):
        report.legacy_users += 1
    owed = sum(amount for _, amount in read_owed(data)) if data is not None and not is_legacy_document(data) else 0
    if owed:
        report.owing_users += 1
        report.credits_owed += owed
    if user_drift(user_id, data, sums, derived):
        _confirm(report, user_id)


def log_drift(drift: Iterable[Drift]) -> None:
    """One `ledger drift` warning per confirmed drift (the line the drift alert counts)."""
    for d in drift:
        log.warning(
            "ledger drift",
            user_id=d.user_id,
            outcome="drift",
            kind=d.kind,
            subject=d.subject,
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
    """Compare every user's pools, totals and derived documents with their records; only
    confirmed drift is kept."""
    report = ReconcileReport()
    users = _users(scans.user_pages(page_size))
    records = _Records(scans.transactions_by_user(page_size * 2), report)
    derived = _derived({collection: scans.in_user_range(collection, None, None, page_size * 2)
                        for collection in DERIVED})
    _merge(users, records, derived, report, progress=progress, progress_every=progress_every)
    progress(report)
    log_drift(report.drift)
    return report


# How many users a page of the scheduled pass reconciles unless told (the route allows 1 to 2000).
PAGE_DEFAULT = 500
ADVANCED = "advanced"
LOST_RACE = "lost_race"


def reconcile_page(limit: int = PAGE_DEFAULT, now: Optional[datetime] = None) -> dict[str, Any]:
    """Reconcile the next `limit` users after the stored cursor and record the pass's progress.

    The range is the users after the cursor up to the `limit`-th user document (the records and
    derived documents read are those of that range; users with records or derived documents and
    no user document in it count too), and at most `limit` users in all. A page that finds no user
    document after its range completes the pass.
    """
    found = documents.read_versioned(collections.reconcile_state())
    state, version = found if found is not None else ({}, None)
    cursor = state.get("cursor")
    page = next(scans.user_pages(limit, start_after=cursor), [])
    more_documents = len(page) == limit
    report = ReconcileReport()
    up_to = page[-1][0] if more_documents else None
    records = _Records(scans.transactions_in_user_range(cursor, up_to), report)
    derived = _derived({collection: scans.in_user_range(collection, cursor, up_to) for collection in DERIVED})
    ended = _merge(_users([page], after=cursor), records, derived, report, limit)
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
    data, records, found = scans.user_ledger(user_id, tuple(DERIVED))
    derived = _derived_of(found)
    sums = LedgerSums(wanted=derived.sources)
    for record in records:
        sums.add(record)
    confirmed = user_drift(user_id, data, sums, derived)
    if confirmed:
        report.drift.extend(confirmed)
    else:
        report.unconfirmed += 1
