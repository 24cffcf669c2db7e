"""Reads that span documents: a user's history page, whole-collection scans, consistent per-user reads.

Rules enforced here:
- scans page through a collection with a cursor, so no stream stays open for long and no more
  than one page is held at a time;
- a page read that fails transiently is retried a few times, because a scan over a million
  documents should not die on one dropped connection; after that it is `Unavailable`;
- a drift seen by a scan is confirmed with a read of the one user at one instant (their document,
  records and derived documents).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Optional

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..ledger import collections
from .client import TRANSIENT, client, deadline, faults, unavailable

SCAN_PAGE_SIZE = 500
SCAN_ATTEMPTS = 4
# Firestore's limit on the values of one `in` filter.
IN_FILTER_MAX = 30


@dataclass(frozen=True)
class HistoryFilter:
    """Which of a user's records a history listing shows (every one, by default): each set
    condition must hold."""

    types: tuple[str, ...] = ()
    pool: Optional[str] = None
    since: Optional[datetime] = None  # created_at >= since
    until: Optional[datetime] = None  # created_at < until


def _records_of(user_id: str):
    return client().collection(collections.TRANSACTIONS).where(filter=FieldFilter("user_id", "==", user_id))


def list_transactions(
    user_id: str, limit: int, before_seq: Optional[int] = None, where: HistoryFilter = HistoryFilter()
) -> list[dict[str, Any]]:
    """Up to `limit` of the user's records that `where` lets through, by `seq` descending, each
    with a `seq` below `before_seq` (any, if None).

    One query; the filters on `created_at` are ranges on another field than the order, which
    Firestore orders after `seq` (terraform/firestore.tf has an index for each shape).
    """
    query = _records_of(user_id)
    if len(where.types) == 1:
        query = query.where(filter=FieldFilter("type", "==", where.types[0]))
    elif where.types:
        query = query.where(filter=FieldFilter("type", "in", list(where.types)))
    if where.pool is not None:
        query = query.where(filter=FieldFilter("pool", "==", where.pool))
    if where.since is not None:
        query = query.where(filter=FieldFilter("created_at", ">=", where.since))
    if where.until is not None:
        query = query.where(filter=FieldFilter("created_at", "<", where.until))
    query = query.order_by("seq", direction=firestore.Query.DESCENDING)
    if before_seq is not None:
        query = query.start_after({"seq": before_seq})
    with faults("list_transactions"):
        return [snap.to_dict() for snap in query.limit(limit).stream(retry=None, timeout=deadline())]


def record_as_of(user_id: str, at: datetime) -> Optional[dict[str, Any]]:
    """The user's last record (highest `seq`) created at or before `at`, or None."""
    query = (
        _records_of(user_id)
        .where(filter=FieldFilter("created_at", "<=", at))
        .order_by("seq", direction=firestore.Query.DESCENDING)
        .limit(1)
    )
    with faults("record_as_of"):
        found = [snap.to_dict() for snap in query.stream(retry=None, timeout=deadline())]
    return found[0] if found else None


def ledger_length(user_id: str) -> int:
    """How far a user's ledger goes: the highest `seq` of their records, or how many records
    they have if that is more (records written before `seq` existed have none)."""
    with faults("ledger_length"):
        count = _records_of(user_id).count(alias="count").get(retry=None, timeout=deadline())
        top = list(
            _records_of(user_id).order_by("seq", direction=firestore.Query.DESCENDING).limit(1)
            .select(["seq"]).stream(retry=None, timeout=deadline())
        )
    highest = top[0].get("seq") if top else 0
    highest = highest if isinstance(highest, int) and not isinstance(highest, bool) else 0
    return max(int(count[0][0].value), highest)


def _page(query, what: str) -> list[Any]:
    for attempt in range(SCAN_ATTEMPTS):
        try:
            return list(query.stream(retry=None, timeout=deadline(3)))
        except TRANSIENT as exc:
            if attempt == SCAN_ATTEMPTS - 1:
                raise unavailable(exc, what) from exc
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _scan(query, page_size: int, what: str) -> Iterator[list[Any]]:
    """Pages of snapshots of `query` (which must be ordered), each at most `page_size` long."""
    last = None
    while True:
        page_query = query.limit(page_size) if last is None else query.start_after(last).limit(page_size)
        page = _page(page_query, what)
        if page:
            yield page
        if len(page) < page_size:
            return
        last = page[-1]


def user_pages(
    page_size: int = SCAN_PAGE_SIZE, start_after: Optional[str] = None
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every `users_credits` document as (user id, data), in pages ordered by user id."""
    query = client().collection(collections.USERS).order_by("__name__")
    if start_after is not None:
        query = query.where(filter=FieldFilter("__name__", ">", client().document(collections.user(start_after))))
    for page in _scan(query, page_size, "user_pages"):
        yield [(snap.id, snap.to_dict()) for snap in page]


def count_users() -> int:
    """How many `users_credits` documents exist (one aggregation read)."""
    with faults("count_users"):
        result = client().collection(collections.USERS).count().get(retry=None, timeout=deadline(3))
    return int(result[0][0].value)


def record_amounts(kind: str, user_ids: list[str]) -> dict[str, list[int]]:
    """The amounts of each user's records of type `kind` (one query per 30 users)."""
    found: dict[str, list[int]] = {user_id: [] for user_id in user_ids}
    for i in range(0, len(user_ids), IN_FILTER_MAX):
        query = (
            client()
            .collection(collections.TRANSACTIONS)
            .where(filter=FieldFilter("type", "==", kind))
            .where(filter=FieldFilter("user_id", "in", user_ids[i : i + IN_FILTER_MAX]))
        )
        for snap in _page(query, "record_amounts"):
            found[snap.get("user_id")].append(snap.get("amount"))
    return found


def transactions_by_user(page_size: int = SCAN_PAGE_SIZE * 2) -> Iterator[dict[str, Any]]:
    """Every transaction record, ordered by `user_id` (then id), streamed page by page."""
    query = client().collection(collections.TRANSACTIONS).order_by("user_id")
    for page in _scan(query, page_size, "transactions_by_user"):
        yield from (snap.to_dict() for snap in page)


def transactions_in_user_range(
    after: Optional[str], up_to: Optional[str], page_size: int = SCAN_PAGE_SIZE * 2
) -> Iterator[dict[str, Any]]:
    """The records whose string `user_id` is > `after` (any, if None) and <= `up_to` (no bound, if
    None), ordered by `user_id`, streamed page by page: one range of `transactions_by_user`."""
    return in_user_range(collections.TRANSACTIONS, after, up_to, page_size)


def in_user_range(
    collection: str, after: Optional[str], up_to: Optional[str], page_size: int = SCAN_PAGE_SIZE * 2
) -> Iterator[dict[str, Any]]:
    """The documents of `collection` whose string `user_id` is > `after` (any, if None) and <=
    `up_to` (no bound, if None), ordered by `user_id`, streamed page by page. A range and an order
    on the one field need only its single-field index."""
    # A range filter on a string matches strings only, so the lower bound is always set.
    query = client().collection(collection).where(filter=FieldFilter("user_id", ">", after or ""))
    if up_to is not None:
        query = query.where(filter=FieldFilter("user_id", "<=", up_to))
    for page in _scan(query.order_by("user_id"), page_size, f"in_user_range:{collection}"):
        yield from (snap.to_dict() for snap in page)


def transactions_between(
    start: datetime, end: datetime, page_size: int = SCAN_PAGE_SIZE * 2
) -> Iterator[dict[str, Any]]:
    """Every transaction record created in [start, end), oldest first, streamed page by page."""
    query = (
        client()
        .collection(collections.TRANSACTIONS)
        .where(filter=FieldFilter("created_at", ">=", start))
        .where(filter=FieldFilter("created_at", "<", end))
        .order_by("created_at")
    )
    for page in _scan(query, page_size, "transactions_between"):
        yield from (snap.to_dict() for snap in page)


def user_ledger(user_id: str, derived: tuple[str, ...] = ()) -> tuple[
    Optional[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]
]:
    """The user document, all its records and its documents in each `derived` collection (those
    whose `user_id` is the user's), read at one instant (a read-only transaction)."""
    db = client()

    def mine(collection: str, transaction) -> list[dict[str, Any]]:
        query = db.collection(collection).where(filter=FieldFilter("user_id", "==", user_id))
        return [s.to_dict() for s in query.stream(transaction=transaction)]

    @firestore.transactional
    def read(transaction):
        snap = db.document(collections.user(user_id)).get(transaction=transaction)
        return ((snap.to_dict() if snap.exists else None), mine(collections.TRANSACTIONS, transaction),
                {collection: mine(collection, transaction) for collection in derived})

    with faults("user_ledger"):
        return read(db.transaction(read_only=True))


def user_records(user_id: str) -> tuple[Optional[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The user document and all its records by id, read at one instant (a read-only transaction)."""
    db = client()

    @firestore.transactional
    def read(transaction):
        snap = db.document(collections.user(user_id)).get(transaction=transaction)
        query = db.collection(collections.TRANSACTIONS).where(filter=FieldFilter("user_id", "==", user_id))
        return ((snap.to_dict() if snap.exists else None),
                {record.id: record.to_dict() for record in query.stream(transaction=transaction)})

    with faults("user_records"):
        return read(db.transaction(read_only=True))


def documents(collection: str, field: Optional[str] = None, value: Any = None,
              order_by: Optional[str] = None, limit: Optional[int] = None) -> list[Any]:
    """The snapshots of a small bookkeeping collection, optionally filtered on one field."""
    query = client().collection(collection)
    if field is not None:
        query = query.where(filter=FieldFilter(field, "==", value))
    if order_by is not None:
        query = query.order_by(order_by)
    if limit is not None:
        query = query.limit(limit)
    with faults(f"documents:{collection}"):
        return list(query.stream(retry=None, timeout=deadline()))


def latest(collection: str, order_by: str, limit: int) -> list[Any]:
    """The snapshots of a bookkeeping collection with the highest `order_by`, highest first."""
    query = client().collection(collection).order_by(order_by, direction="DESCENDING").limit(limit)
    with faults(f"latest:{collection}"):
        return list(query.stream(retry=None, timeout=deadline()))


def expired_holds(now: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` holds still `held` whose `expires_at` has passed, soonest expired first."""
    query = (
        client()
        .collection(collections.HOLDS)
        .where(filter=FieldFilter("status", "==", "held"))
        .where(filter=FieldFilter("expires_at", "<=", now))
        .order_by("expires_at")
        .limit(limit)
    )
    return [snap.to_dict() for snap in _page(query, "expired_holds")]


def stale_attempts(before: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` auto top-up attempts still `pending` that were created before `before`, oldest first."""
    query = (
        client()
        .collection(collections.TOPUPS)
        .where(filter=FieldFilter("status", "==", "pending"))
        .where(filter=FieldFilter("created_at", "<", before))
        .order_by("created_at")
        .limit(limit)
    )
    return [snap.to_dict() for snap in _page(query, "stale_attempts")]


def user_attempts(user_id: str, limit: int, since: Optional[datetime] = None) -> list[dict[str, Any]]:
    """Up to `limit` of the user's auto top-up attempts, newest first (those created at or after
    `since`, if given)."""
    query = client().collection(collections.TOPUPS).where(filter=FieldFilter("user_id", "==", user_id))
    if since is not None:
        query = query.where(filter=FieldFilter("created_at", ">=", since))
    query = (query.order_by("created_at", direction=firestore.Query.DESCENDING)
             .order_by("__name__", direction=firestore.Query.DESCENDING))
    with faults("user_attempts"):
        return [snap.to_dict() for snap in query.limit(limit).stream(retry=None, timeout=deadline())]


def list_holds(user_id: str, statuses: Optional[tuple[str, ...]], limit: int,
               after: Optional[tuple[datetime, str]] = None) -> list[dict[str, Any]]:
    """Up to `limit` of the user's hold documents (those whose stored `status` is one of
    `statuses`, any if None), newest first, strictly after the `after` cursor (created_at,
    document id); each with its document id as `_id`."""
    query = client().collection(collections.HOLDS).where(filter=FieldFilter("user_id", "==", user_id))
    if statuses is not None:
        one = len(statuses) == 1
        query = query.where(filter=FieldFilter("status", "==" if one else "in", statuses[0] if one else list(statuses)))
    query = (query.order_by("created_at", direction=firestore.Query.DESCENDING)
             .order_by("__name__", direction=firestore.Query.DESCENDING))
    if after is not None:
        query = query.start_after({"created_at": after[0], "__name__": after[1]})
    with faults("list_holds"):
        return [{**snap.to_dict(), "_id": snap.id} for snap in query.limit(limit).stream(retry=None, timeout=deadline())]


def aggregate(collection: str, filters: tuple[tuple[str, str, Any], ...] = (),
              sum_of: Optional[str] = None) -> tuple[int, int]:
    """How many documents of `collection` match every `(field, op, value)`, and the sum of `sum_of`
    over them (0 without it): one aggregation read, no document is downloaded."""
    query = client().collection(collection)
    for name, op, value in filters:
        query = query.where(filter=FieldFilter(name, op, value))
    aggregation = query.count(alias="count")
    if sum_of is not None:
        aggregation = aggregation.sum(sum_of, alias="sum")
    with faults(f"aggregate:{collection}"):
        result = aggregation.get(retry=None, timeout=deadline(3))
    values = {item.alias: item.value for item in result[0]}
    return int(values["count"]), int(values.get("sum") or 0)
