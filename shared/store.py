"""The one module that reads and writes Firestore.

Rules enforced here:
- every change to a user is one atomic commit holding the user document, its ledger records
  and the idempotency marker of its source, so a change is either whole or absent;
- all reads happen before any write: one batched read (user document plus markers), a pure
  decision, then one commit;
- the commit is conditioned on the user document's update time (or on its absence), and
  markers are create-only, so a concurrent change makes the commit fail instead of
  overwriting; the change is then re-read and re-decided, with a short bounded backoff;
- within one process, changes to the same user take turns (a striped lock), so threads of
  one instance do not burn round trips racing each other; across instances the precondition
  alone keeps changes serial;
- many users may share one commit (`change_users`, at most 500 writes), each user with all
  of the guarantees above; a batch that fails on a marker or a precondition is redone user
  by user, never partly applied;
- a Firestore fault that may heal is raised as `Unavailable`, never half-applied.
"""

from __future__ import annotations

import contextlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from . import config, log
from .core import Account, read_account
from .errors import Unavailable
from .models import BaseCreditTransaction

USERS = "users_credits"
TRANSACTIONS = "credits_transactions"
SPEND_KEYS = "spend_idempotency"

RPC_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 20
BACKOFF_BASE_S = 0.004
BACKOFF_CAP_S = 0.064

# A lost race: another writer changed the user document or created the marker first.
_RACE_LOST = (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted, gexc.Conflict)
# Faults that may heal on their own; anything else is a bug and propagates.
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Unknown,
    gexc.TooManyRequests,
    gexc.RetryError,
    gexc.ResourceExhausted,
    gexc.BadGateway,
    gexc.GatewayTimeout,
)

_client: Optional[firestore.Client] = None
_client_lock = threading.Lock()

# Striped rather than one lock per user: bounded memory, and two users rarely share a stripe.
_USER_STRIPES = [threading.Lock() for _ in range(256)]


def _stripe(user_id: str) -> threading.Lock:
    return _USER_STRIPES[hash(user_id) % len(_USER_STRIPES)]


def client() -> firestore.Client:
    """The Firestore client, built on first use (never at import) and shared afterwards."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = firestore.Client(project=config.project())
    return _client


def reset_client() -> None:
    """Forget the client, so the next use builds one for the current environment."""
    global _client
    with _client_lock:
        _client = None


def user_ref(user_id: str) -> firestore.DocumentReference:
    return client().collection(USERS).document(user_id)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Snapshot:
    """What a decision sees: the user's account and raw document, the markers it asked for."""

    account: Account
    user_data: Optional[dict[str, Any]]
    markers: dict[str, Optional[dict[str, Any]]]
    now: datetime


R = TypeVar("R")


@dataclass
class Change(Generic[R]):
    """What a decision asks to commit; with no records and no writes nothing is committed."""

    result: R
    account: Optional[Account] = None
    records: list[BaseCreditTransaction] = field(default_factory=list)
    # Marker documents (path -> data) that must not exist yet: their creation is the idempotency.
    create: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Documents (path -> data) overwritten whole; only for documents the user document guards.
    overwrite: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Documents deleted in the same commit (bookkeeping the change makes obsolete).
    delete: list[str] = field(default_factory=list)
    # Extra fields stored on the user document beside the pools.
    user_fields: dict[str, Any] = field(default_factory=dict)
    # Records whose ids are derived from their source are created, so a repeat fails.
    create_records: bool = False

    @property
    def writes_anything(self) -> bool:
        return bool(self.account is not None or self.records or self.create or self.overwrite or self.delete)


def _transient(exc: Exception, what: str) -> Unavailable:
    log.warning("firestore unavailable", operation=what, error=type(exc).__name__, detail=str(exc)[:300])
    return Unavailable(f"Firestore is unavailable ({type(exc).__name__}); retry later")


@contextlib.contextmanager
def _faults(operation: str) -> Iterator[None]:
    """Turn a Firestore fault that may heal into `Unavailable`; anything else propagates."""
    try:
        yield
    except _TRANSIENT as exc:
        raise _transient(exc, operation) from exc


def _backoff(attempt: int) -> None:
    # Full jitter keeps concurrent losers from colliding again on the next attempt.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt))))


def change_user(
    user_id: str,
    decide: Callable[[Snapshot], Change[R]],
    markers: Iterable[str] = (),
    operation: str = "change",
) -> R:
    """Read the user and `markers`, let `decide` choose, and commit its change atomically.

    `decide` is pure and may run several times: a lost race re-reads and re-decides.
    """
    with _stripe(user_id):
        return _change_user(user_id, decide, markers, operation)


def _change_user(
    user_id: str,
    decide: Callable[[Snapshot], Change[R]],
    markers: Iterable[str],
    operation: str,
) -> R:
    db = client()
    uref = db.collection(USERS).document(user_id)
    marker_paths = list(markers)
    refs = [uref] + [db.document(path) for path in marker_paths]
    for attempt in range(MAX_ATTEMPTS):
        with _faults(operation):
            snaps = {snap.reference.path: snap for snap in db.get_all(refs, retry=None, timeout=RPC_TIMEOUT_S)}
        user_snap = snaps[uref.path]
        user_data = user_snap.to_dict() if user_snap.exists else None
        snapshot = Snapshot(
            account=read_account(user_id, user_data),
            user_data=user_data,
            markers={p: (snaps[p].to_dict() if snaps[p].exists else None) for p in marker_paths},
            now=utcnow(),
        )
        change = decide(snapshot)
        if not change.writes_anything:
            return change.result
        batch = db.batch()
        _stage_change(batch, db, uref, user_snap, user_data, change, snapshot.now)
        try:
            batch.commit(retry=None, timeout=RPC_TIMEOUT_S)
            return change.result
        except _RACE_LOST:
            _backoff(attempt)
        except _TRANSIENT as exc:
            raise _transient(exc, operation) from exc
    log.warning("change lost every race", operation=operation, user_id=user_id, attempts=MAX_ATTEMPTS)
    raise Unavailable("too many concurrent changes to this user; retry later")


def _stage_change(batch, db, uref, user_snap, user_data, change: Change, now: datetime) -> None:
    """Put every write of one user's change into `batch`, so it commits whole or not at all."""
    _write_user(batch, uref, user_snap, user_data, change, now)
    for record in change.records:
        ref = db.collection(TRANSACTIONS).document(record.transaction_id)
        data = transaction_document(record)
        batch.create(ref, data) if change.create_records else batch.set(ref, data)
    for path, data in change.create.items():
        batch.create(db.document(path), data)
    for path, data in change.overwrite.items():
        batch.set(db.document(path), data)
    for path in change.delete:
        batch.delete(db.document(path))


def _write_user(batch, uref, user_snap, user_data, change: Change, now: datetime) -> None:
    account = change.account
    if account is None:
        return
    data: dict[str, Any] = {
        "user_id": account.user_id,
        "credits_monthly": account.monthly,
        "credits_permanent": account.permanent,
        "total_earned": account.total_earned,
        "total_spent": account.total_spent,
        "last_updated": now,
        **change.user_fields,
    }
    if not user_snap.exists:
        batch.create(uref, data)
        return
    if user_data and "balance" in user_data:
        # The legacy field would contradict the pools once they move; it is migrated away.
        data["balance"] = firestore.DELETE_FIELD
    batch.update(uref, data, option=client().write_option(last_update_time=user_snap.update_time))


def transaction_document(record: BaseCreditTransaction) -> dict[str, Any]:
    return {
        "transaction_id": record.transaction_id,
        "user_id": record.user_id,
        "type": record.type.value,
        "pool": record.pool.value if record.pool else None,
        "amount": record.amount,
        "description": record.description,
        "source": record.source,
        "created_at": record.created_at,
    }


def get_user(user_id: str) -> Optional[dict[str, Any]]:
    """The raw `users_credits` document, or None."""
    return read_document(f"{USERS}/{user_id}")


def list_transactions(
    user_id: str, limit: int, after: Optional[tuple[datetime, str]] = None
) -> list[dict[str, Any]]:
    """Up to `limit` of the user's records, newest first, strictly after the `after` cursor."""
    query = (
        client()
        .collection(TRANSACTIONS)
        .where(filter=FieldFilter("user_id", "==", user_id))
        .order_by("created_at", direction=firestore.Query.DESCENDING)
        .order_by("transaction_id", direction=firestore.Query.DESCENDING)
    )
    if after is not None:
        query = query.start_after({"created_at": after[0], "transaction_id": after[1]})
    with _faults("list_transactions"):
        return [snap.to_dict() for snap in query.limit(limit).stream(retry=None, timeout=RPC_TIMEOUT_S)]


# =============================================================================
# Batched changes to many users, and the rejected promotion messages
#
# `change_users` gives each user exactly the guarantees of `change_user` (one pure decision
# per user, the user document conditioned on its update time or created if absent, markers
# and derived records create-only, all of one user's writes in one commit) while putting
# many users in each commit, so a campaign costs a few commits instead of one per user.
# Only the user documents are read in bulk: every marker a decision names is assumed absent
# and must be created by its change, so a marker that exists after all (a repeat, a partial
# earlier run, a concurrent writer) fails the whole batch atomically. That batch is then
# redone user by user through `change_user`, which reads the markers and decides again.
# =============================================================================

MAX_BATCH_WRITES = 500
FALLBACK_THREADS = 8
PIPELINE_THREADS = 3
# One batch's worth of users when each takes two writes: measured faster than smaller reads.
READ_SLICE_USERS = 250
PROMO_REJECTED = "promo_rejected"


@dataclass(frozen=True)
class UserChange(Generic[R]):
    """One user's part in a batched change: its decision and the markers that decision reads."""

    user_id: str
    decide: Callable[[Snapshot], Change[R]]
    markers: tuple[str, ...] = ()


@dataclass
class _Staged(Generic[R]):
    index: int
    item: UserChange[R]
    user_snap: Any
    user_data: Optional[dict[str, Any]]
    change: Change[R]
    writes: int


def _writes_of(change: Change) -> int:
    return (
        (change.account is not None)
        + len(change.records)
        + len(change.create)
        + len(change.overwrite)
        + len(change.delete)
    )


def _creates_markers(item: UserChange, change: Change) -> bool:
    """Whether the change creates every marker it was told is absent, so the commit checks it."""
    created = set(change.create)
    if change.create_records:
        created.update(f"{TRANSACTIONS}/{record.transaction_id}" for record in change.records)
    return set(item.markers) <= created


def _stage(batch, db, staged: _Staged, now: datetime) -> None:
    # The same writes, in the same form, as `change_user` commits for one user.
    snap = staged.user_snap
    _stage_change(batch, db, snap.reference, snap, staged.user_data, staged.change, now)


def change_users(
    items: list[UserChange[R]], operation: str = "change_users", max_writes: int = MAX_BATCH_WRITES
) -> list[R]:
    """Apply each item's decision like `change_user` does, packing users into batched commits.

    Returns the results in the order of `items`. Users are read (batched reads of
    `READ_SLICE_USERS`) and decided slice by slice, and committed in batches of at most
    `max_writes` writes, each holding whole users. A batch that fails because a marker exists
    or a user document changed is redone per user; a fault that may heal raises `Unavailable`
    (batches committed before it stay committed, which is safe because every repeat of a
    committed user fails on its create-only marker).
    """
    user_ids = [item.user_id for item in items]
    if len(set(user_ids)) != len(user_ids):
        # Two writes to one user in a commit would both pass the same precondition.
        raise ValueError("change_users needs distinct user ids")
    db = client()
    results: dict[int, R] = {}
    one_by_one: list[int] = []
    commits: list[tuple[list[_Staged[R]], Any]] = []
    indexed = list(enumerate(items))
    slices = [indexed[k : k + READ_SLICE_USERS] for k in range(0, len(indexed), READ_SLICE_USERS)]
    # Reading the next slice and committing a full batch wait on Firestore; they run beside the
    # CPU-bound deciding and staging of the current slice. Batches hold different users, so
    # their commits are independent.
    with ThreadPoolExecutor(max_workers=PIPELINE_THREADS) as pool:
        batch, group, size = db.batch(), [], 0
        reading = pool.submit(_read_users, db, slices[0], operation) if slices else None
        for number, part in enumerate(slices):
            snaps = reading.result()
            if number + 1 < len(slices):
                reading = pool.submit(_read_users, db, slices[number + 1], operation)
            now = utcnow()
            for index, item in part:
                user_snap = snaps[index]
                user_data = user_snap.to_dict() if user_snap.exists else None
                snapshot = Snapshot(
                    account=read_account(item.user_id, user_data),
                    user_data=user_data,
                    markers={path: None for path in item.markers},
                    now=now,
                )
                change = item.decide(snapshot)
                writes = _writes_of(change)
                if not change.writes_anything:
                    results[index] = change.result
                    continue
                if not _creates_markers(item, change) or writes > max_writes:
                    # An absent marker it would not create cannot be checked by the commit.
                    one_by_one.append(index)
                    continue
                if group and size + writes > max_writes:
                    commits.append((group, pool.submit(batch.commit, retry=None, timeout=RPC_TIMEOUT_S)))
                    batch, group, size = db.batch(), [], 0
                entry = _Staged(index, item, user_snap, user_data, change, writes)
                _stage(batch, db, entry, now)
                group.append(entry)
                size += writes
        if group:
            commits.append((group, pool.submit(batch.commit, retry=None, timeout=RPC_TIMEOUT_S)))

    transient: Optional[Exception] = None
    for group, commit in commits:
        try:
            commit.result()
        except _RACE_LOST as exc:
            log.info("batch fell back to per-user commits", operation=operation, users=len(group),
                     reason=type(exc).__name__)
            one_by_one.extend(entry.index for entry in group)
            continue
        except _TRANSIENT as exc:
            transient = exc
            continue
        for entry in group:
            results[entry.index] = entry.change.result
    if transient is not None:
        raise _transient(transient, operation) from transient
    if one_by_one:
        results.update(_one_by_one(items, sorted(one_by_one), operation))
    return [results[index] for index in range(len(items))]


def _read_users(db, part: list[tuple[int, UserChange]], operation: str) -> dict[int, Any]:
    """One batched read of a slice's user documents, by item index."""
    refs = {index: db.collection(USERS).document(item.user_id) for index, item in part}
    with _faults(operation):
        snaps = {snap.reference.path: snap for snap in db.get_all(list(refs.values()), retry=None,
                                                                  timeout=RPC_TIMEOUT_S)}
    return {index: snaps[ref.path] for index, ref in refs.items()}


def _one_by_one(items: list[UserChange[R]], indexes: list[int], operation: str) -> dict[int, R]:
    # Users are independent, so their single commits may run side by side; the first fault
    # that may heal is raised once the others have finished.
    def run(index: int) -> R:
        item = items[index]
        return change_user(item.user_id, item.decide, markers=item.markers, operation=operation)

    with ThreadPoolExecutor(max_workers=min(FALLBACK_THREADS, len(indexes))) as pool:
        futures = {index: pool.submit(run, index) for index in indexes}
    return {index: future.result() for index, future in futures.items()}


def create_rejected(doc_id: str, data: dict[str, Any]) -> bool:
    """Keep a rejected promotion message; False if one with this id is already kept."""
    try:
        client().collection(PROMO_REJECTED).document(doc_id).create(data, retry=None, timeout=RPC_TIMEOUT_S)
        return True
    except gexc.AlreadyExists:
        return False
    except _TRANSIENT as exc:
        raise _transient(exc, "create_rejected") from exc


def rejected(
    doc_id: Optional[str] = None, status: Optional[str] = None
) -> list[tuple[str, dict[str, Any], datetime]]:
    """Kept rejected messages (one by id, or all with `status`): id, data and update time."""
    collection = client().collection(PROMO_REJECTED)
    with _faults("rejected"):
        if doc_id is not None:
            snap = collection.document(doc_id).get(retry=None, timeout=RPC_TIMEOUT_S)
            snaps = [snap] if snap.exists else []
        else:
            query = collection.where(filter=FieldFilter("status", "==", status)) if status else collection
            snaps = list(query.stream(retry=None, timeout=RPC_TIMEOUT_S))
    return [(snap.id, snap.to_dict(), snap.update_time) for snap in snaps]


def update_rejected(doc_id: str, fields: dict[str, Any], update_time: datetime) -> bool:
    """Update a kept rejected message if it is unchanged since `update_time`; False if it changed."""
    ref = client().collection(PROMO_REJECTED).document(doc_id)
    try:
        ref.update(
            fields,
            option=client().write_option(last_update_time=update_time),
            retry=None,
            timeout=RPC_TIMEOUT_S,
        )
        return True
    except (gexc.FailedPrecondition, gexc.NotFound):
        return False
    except _TRANSIENT as exc:
        raise _transient(exc, "update_rejected") from exc


# =============================================================================
# Operator tools: whole-collection scans, ledger streams and consistent per-user reads
#
# Scans page through a collection with a cursor, so no stream stays open for long and no
# more than one page is held at a time; a page read that fails transiently is retried a few
# times, because a scan over a million documents should not die on one dropped connection.
# =============================================================================

ADJUSTMENTS = "credit_adjustments"
SCAN_PAGE_SIZE = 500
SCAN_ATTEMPTS = 4


def _page(query, what: str) -> list[Any]:
    for attempt in range(SCAN_ATTEMPTS):
        try:
            return list(query.stream(retry=None, timeout=RPC_TIMEOUT_S * 3))
        except _TRANSIENT as exc:
            if attempt == SCAN_ATTEMPTS - 1:
                raise _transient(exc, what) from exc
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
    query = client().collection(USERS).order_by("__name__")
    if start_after is not None:
        query = query.where(filter=FieldFilter("__name__", ">", user_ref(start_after)))
    for page in _scan(query, page_size, "user_pages"):
        yield [(snap.id, snap.to_dict()) for snap in page]


def count_users() -> int:
    """How many `users_credits` documents exist (one aggregation read)."""
    with _faults("count_users"):
        result = client().collection(USERS).count().get(retry=None, timeout=RPC_TIMEOUT_S * 3)
    return int(result[0][0].value)


# Firestore's limit on the values of one `in` filter.
IN_FILTER_MAX = 30


def migration_amounts(user_ids: list[str]) -> dict[str, list[int]]:
    """The amounts of the existing `migration` records of each of `user_ids` (one query per 30)."""
    found: dict[str, list[int]] = {user_id: [] for user_id in user_ids}
    for i in range(0, len(user_ids), IN_FILTER_MAX):
        query = (
            client()
            .collection(TRANSACTIONS)
            .where(filter=FieldFilter("type", "==", "migration"))
            .where(filter=FieldFilter("user_id", "in", user_ids[i : i + IN_FILTER_MAX]))
        )
        for snap in _page(query, "migration_amounts"):
            found[snap.get("user_id")].append(snap.get("amount"))
    return found


def transactions_by_user(page_size: int = SCAN_PAGE_SIZE * 2) -> Iterator[dict[str, Any]]:
    """Every transaction record, ordered by `user_id` (then id), streamed page by page."""
    query = client().collection(TRANSACTIONS).order_by("user_id")
    for page in _scan(query, page_size, "transactions_by_user"):
        yield from (snap.to_dict() for snap in page)


def transactions_between(
    start: datetime, end: datetime, page_size: int = SCAN_PAGE_SIZE * 2
) -> Iterator[dict[str, Any]]:
    """Every transaction record created in [start, end), oldest first, streamed page by page."""
    query = (
        client()
        .collection(TRANSACTIONS)
        .where(filter=FieldFilter("created_at", ">=", start))
        .where(filter=FieldFilter("created_at", "<", end))
        .order_by("created_at")
    )
    for page in _scan(query, page_size, "transactions_between"):
        yield from (snap.to_dict() for snap in page)


def user_ledger(user_id: str) -> tuple[Optional[dict[str, Any]], list[dict[str, Any]]]:
    """The user document and all its records, read at one instant (a read-only transaction).

    Used to confirm a drift seen by a scan, which may have read the two at different times.
    """
    db = client()

    @firestore.transactional
    def read(transaction):
        snap = db.collection(USERS).document(user_id).get(transaction=transaction)
        query = db.collection(TRANSACTIONS).where(filter=FieldFilter("user_id", "==", user_id))
        return (snap.to_dict() if snap.exists else None), [s.to_dict() for s in query.stream(transaction=transaction)]

    with _faults("user_ledger"):
        return read(db.transaction(read_only=True))


# =============================================================================
# Stripe webhook: applied-event markers, the customer-to-user link, unapplied events
#
# Markers (`webhook_applied/{kind}:{id}`) are created in the commit of the change they mark,
# through `change_user`. The customer link and the unapplied-event records are bookkeeping
# outside any user's commit: each is one write, and each write is idempotent, so a retry of
# the same event writes the same thing again.
# =============================================================================

WEBHOOK_APPLIED = "webhook_applied"
STRIPE_CUSTOMERS = "stripe_customers"
UNAPPLIED_EVENTS = "webhook_unapplied"


def applied_marker_path(kind: str, key: str) -> str:
    return f"{WEBHOOK_APPLIED}/{kind}:{key}"


def customer_link_path(customer_id: str) -> str:
    return f"{STRIPE_CUSTOMERS}/{customer_id}"


def unapplied_path(event_id: str) -> str:
    return f"{UNAPPLIED_EVENTS}/{event_id}"


def read_document(path: str) -> Optional[dict[str, Any]]:
    """One document by path, or None."""
    with _faults("read_document"):
        snap = client().document(path).get(retry=None, timeout=RPC_TIMEOUT_S)
    return snap.to_dict() if snap.exists else None


def customer_user(customer_id: str) -> Optional[str]:
    """The user a Stripe customer was last linked to, or None."""
    data = read_document(customer_link_path(customer_id))
    return data.get("user_id") if data else None


def customer_link(customer_id: str, user_id: str, event_id: str, now: datetime) -> dict[str, Any]:
    return {"customer_id": customer_id, "user_id": user_id, "learned_from": event_id, "updated_at": now}


def link_customer(customer_id: str, user_id: str, event_id: str) -> None:
    """Remember which user a Stripe customer belongs to (the latest event that says so wins)."""
    with _faults("link_customer"):
        client().document(customer_link_path(customer_id)).set(
            customer_link(customer_id, user_id, event_id, utcnow()), retry=None, timeout=RPC_TIMEOUT_S
        )


def record_unapplied(event_id: str, fields: dict[str, Any]) -> None:
    """Keep (or refresh) an event that could not be applied, counting the attempts."""
    now = utcnow()
    data = {**fields, "event_id": event_id, "last_attempt_at": now, "attempts": firestore.Increment(1)}
    with _faults("record_unapplied"):
        client().document(unapplied_path(event_id)).set(data, merge=True, retry=None, timeout=RPC_TIMEOUT_S)


def forget_unapplied(event_id: str) -> None:
    """Drop the record of an event once it has an outcome; its marker keeps the history."""
    with _faults("forget_unapplied"):
        client().document(unapplied_path(event_id)).delete(retry=None, timeout=RPC_TIMEOUT_S)


def unapplied_events(event_id: Optional[str] = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The stored unapplied events, oldest attempt first, or the one with `event_id` (or none)."""
    if event_id is not None:
        data = read_document(unapplied_path(event_id))
        return [data] if data else []
    query = client().collection(UNAPPLIED_EVENTS).order_by("last_attempt_at").limit(limit)
    with _faults("unapplied_events"):
        return [snap.to_dict() for snap in query.stream(retry=None, timeout=RPC_TIMEOUT_S)]
