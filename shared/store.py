"""The one module that reads and writes Firestore.

Rules enforced here:
- every change to a user is one atomic commit holding the user document, its ledger records
  and the idempotency marker of its source, so a change is either whole or absent;
- all reads happen before any write: one batched read (user document plus markers), a pure
  decision, then one commit;
- the commit is conditioned on the user document's update time (or on its absence), and
  markers are create-only, so a concurrent change makes the commit fail instead of
  overwriting; the change is then re-read and re-decided, with a short bounded backoff;
- a Firestore fault that may heal is raised as `Unavailable`, never half-applied.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generic, Iterable, Optional, TypeVar

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
    # Extra fields stored on the user document beside the pools.
    user_fields: dict[str, Any] = field(default_factory=dict)
    # Records whose ids are derived from their source are created, so a repeat fails.
    create_records: bool = False

    @property
    def writes_anything(self) -> bool:
        return bool(self.account is not None or self.records or self.create or self.overwrite)


def _transient(exc: Exception, what: str) -> Unavailable:
    log.warning("firestore unavailable", operation=what, error=type(exc).__name__, detail=str(exc)[:300])
    return Unavailable(f"Firestore is unavailable ({type(exc).__name__}); retry later")


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
    db = client()
    uref = db.collection(USERS).document(user_id)
    marker_paths = list(markers)
    refs = [uref] + [db.document(path) for path in marker_paths]
    for attempt in range(MAX_ATTEMPTS):
        try:
            snaps = {snap.reference.path: snap for snap in db.get_all(refs, retry=None, timeout=RPC_TIMEOUT_S)}
        except _TRANSIENT as exc:
            raise _transient(exc, operation) from exc
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
        _write_user(batch, uref, user_snap, user_data, change, snapshot.now)
        for record in change.records:
            ref = db.collection(TRANSACTIONS).document(record.transaction_id)
            data = transaction_document(record)
            batch.create(ref, data) if change.create_records else batch.set(ref, data)
        for path, data in change.create.items():
            batch.create(db.document(path), data)
        for path, data in change.overwrite.items():
            batch.set(db.document(path), data)
        try:
            batch.commit(retry=None, timeout=RPC_TIMEOUT_S)
            return change.result
        except _RACE_LOST:
            _backoff(attempt)
        except _TRANSIENT as exc:
            raise _transient(exc, operation) from exc
    log.warning("change lost every race", operation=operation, user_id=user_id, attempts=MAX_ATTEMPTS)
    raise Unavailable("too many concurrent changes to this user; retry later")


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
    try:
        snap = user_ref(user_id).get(retry=None, timeout=RPC_TIMEOUT_S)
    except _TRANSIENT as exc:
        raise _transient(exc, "get_user") from exc
    return snap.to_dict() if snap.exists else None


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
    try:
        return [snap.to_dict() for snap in query.limit(limit).stream(retry=None, timeout=RPC_TIMEOUT_S)]
    except _TRANSIENT as exc:
        raise _transient(exc, "list_transactions") from exc
