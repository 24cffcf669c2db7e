"""One user's change: read, decide, commit, atomically and at most once.

Rules enforced here:
- every change to a user is one atomic commit holding the user document, its ledger records
  and the idempotency marker of its source, so a change is either whole or absent;
- all reads happen before any write: one batched read (user document plus the other documents
  the decision asks for), a pure decision, then one commit;
- the commit is conditioned on the user document's update time (or on its absence), and
  markers are create-only, so a concurrent change makes the commit fail instead of
  overwriting; the change is then re-read and re-decided, with a short jittered backoff, for
  at most `RACE_BUDGET_S`;
- within one process, changes to the same user take turns (a striped lock), so threads of
  one instance do not burn round trips racing each other; across instances the precondition
  alone keeps changes serial;
- a Firestore fault that may heal is raised as `Unavailable`, never half-applied; a commit whose
  reply was lost is resolved first (`outcome`): answered as made if it landed, and as not made
  only once it is fenced off for good;
- a change may be decided from this instance's last version of the user document (`known`)
  instead of a read (`cached=True`): only when every other document the decision reads is one
  its change creates (so the create-only write is the check of its absence) and the change
  overwrites and deletes nothing else; the commit is conditioned on that version's update time,
  so a stale version makes it fail, and the change is then read and decided as usual; a cached
  decision that refuses or writes nothing is never answered: the read path decides it again.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, TypeVar

from google.cloud import firestore

from ..common import log
from ..common.errors import Unavailable
from ..ledger import codec, holds
from google.api_core import exceptions as gexc

from . import collections, known, outcome, wire
from .change import Change, Snapshot
from .client import RACE_LOST, RPC_TIMEOUT_S, TRANSIENT, client, unavailable, utcnow

R = TypeVar("R")

# Lost races are retried for up to RACE_BUDGET_S (and MAX_ATTEMPTS): under contention from other
# instances a change can lose many races in a row, and a longer budget costs only that request's
# latency, while giving up answers 503.
MAX_ATTEMPTS = 100
RACE_BUDGET_S = 3.0
BACKOFF_BASE_S = 0.004
BACKOFF_CAP_S = 0.064

# Striped rather than one lock per user: bounded memory, and two users rarely share a stripe.
_USER_STRIPES = [threading.Lock() for _ in range(256)]


def _stripe(user_id: str) -> threading.Lock:
    return _USER_STRIPES[hash(user_id) % len(_USER_STRIPES)]


def _backoff(attempt: int) -> None:
    # Full jitter keeps concurrent losers from colliding again on the next attempt.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt))))


def snapshot_of(user_id: str, user_data: Optional[dict[str, Any]], documents: dict[str, Any],
                now: datetime) -> Snapshot:
    """The decision's view of a user document's data (None: absent) and the documents read with it."""
    return Snapshot(account=codec.read_account(user_id, user_data), user_data=user_data, documents=documents, now=now)


def decide_settled(decide: Callable[[Snapshot], Change[R]], snapshot: Snapshot) -> tuple[Snapshot, Change[R]]:
    """Run `decide` on the snapshot with expired holds given back, and put their releases in its change.

    Every change to a user goes through here, so an expired hold is released by the first change
    that commits to its user, in that change's commit.
    """
    settled, released = holds.settle_expired(snapshot)
    return settled, released.merge(decide(settled))


def change_user(
    user_id: str,
    decide: Callable[[Snapshot], Change[R]],
    reads: Iterable[str] = (),
    operation: str = "change",
    cached: bool = False,
) -> R:
    """Read the user and the documents at `reads`, let `decide` choose, and commit its change atomically.

    `decide` is pure and may run several times: a lost race re-reads and re-decides. With
    `cached`, a user this instance has seen is first decided from the version it last saw
    (see the module's rules), which saves the read when that version is still current.
    """
    paths = list(reads)
    with _stripe(user_id):
        if cached:
            done, result = _change_known_user(user_id, decide, paths, operation)
            if done:
                return result
        return _change_user(user_id, decide, paths, operation)


_MISS = (False, None)


def _creates_every_read(paths: list[str], change: Change) -> bool:
    created = set(change.create)
    if change.create_records:
        created.update(collections.transaction(record.transaction_id) for record in change.records)
    return set(paths) <= created


def _change_known_user(user_id: str, decide: Callable[[Snapshot], Change[R]], paths: list[str],
                       operation: str) -> tuple[bool, Optional[R]]:
    """One commit, no read: the change decided from the user's last known version, or a miss."""
    db = client()
    uref = db.document(collections.user(user_id))
    cache = known.known_users()
    seen = cache.get(uref.path)
    if seen is None:
        return _MISS
    try:
        snapshot, change = decide_settled(
            decide, snapshot_of(user_id, dict(seen.data), {path: None for path in paths}, utcnow()))
    except Exception:  # noqa: BLE001 - a refusal from a version that may be stale is not answered
        return _MISS
    if (change.account is None or change.overwrite or change.delete
            or not _creates_every_read(paths, change)):
        return _MISS
    batch = wire.Batch(db)
    change_id = outcome.new_change_id()
    version = known.Version(uref, seen.update_time)
    written = stage(batch, version, snapshot.user_data, change, snapshot.now, change_id)
    try:
        results = batch.commit(retry=None, timeout=RPC_TIMEOUT_S)
    except RACE_LOST + (gexc.NotFound,):
        # The document moved on (or a created document exists): read and decide as usual.
        cache.drop(uref.path, seen.update_time)
        cache.refused(uref.path)
        return _MISS
    except outcome.AMBIGUOUS as exc:
        cache.drop(uref.path)
        if outcome.landed_or_raise(exc, uref.path, seen.update_time, change_id, change, operation):
            return True, change.result
        return _MISS
    except TRANSIENT as exc:
        cache.drop(uref.path)
        raise unavailable(exc, operation) from exc
    _remember(uref.path, seen.data, written, results)
    return True, change.result


def _remember(path: str, stored: Optional[dict[str, Any]], written: Optional[dict[str, Any]], results) -> None:
    """Keep the version a commit wrote (its first write is the user document's)."""
    if written is None or not results:
        return
    known.known_users().put(path, known.after_update(stored, written), results[0].update_time)


def _change_user(user_id: str, decide: Callable[[Snapshot], Change[R]], paths: list[str], operation: str) -> R:
    db = client()
    uref = db.document(collections.user(user_id))
    refs = [uref] + [db.document(path) for path in paths]
    deadline = time.monotonic() + RACE_BUDGET_S
    for attempt in range(MAX_ATTEMPTS):
        if attempt and time.monotonic() > deadline:
            break
        try:
            snaps = {snap.reference.path: snap for snap in wire.get_all(db, refs, timeout=RPC_TIMEOUT_S)}
        except TRANSIENT as exc:
            raise unavailable(exc, operation) from exc
        user_snap = snaps[uref.path]
        stored = user_snap.to_dict() if user_snap.exists else None
        known.known_users().put(uref.path, stored, user_snap.update_time if user_snap.exists else None)
        documents = {p: (snaps[p].to_dict() if snaps[p].exists else None) for p in paths}
        snapshot, change = decide_settled(decide, snapshot_of(user_id, stored, documents, utcnow()))
        if not change.writes_anything:
            return change.result
        if change.account is None:
            # Without the user document's precondition a lost reply could never be fenced off.
            raise ValueError("a change that commits must write the user document")
        batch = wire.Batch(db)
        change_id = outcome.new_change_id()
        versions = {p: (snaps[p].update_time if snaps[p].exists else None) for p in paths}
        written = stage(batch, user_snap, snapshot.user_data, change, snapshot.now, change_id, versions)
        try:
            results = batch.commit(retry=None, timeout=RPC_TIMEOUT_S)
            _remember(uref.path, stored, written, results)
            return change.result
        except RACE_LOST:
            _backoff(attempt)
        except outcome.AMBIGUOUS as exc:
            # The commit may have landed, or may land later: learn which before answering.
            expected = user_snap.update_time if user_snap.exists else None
            if outcome.landed_or_raise(exc, uref.path, expected, change_id, change, operation):
                return change.result
            _backoff(attempt)
        except TRANSIENT as exc:
            raise unavailable(exc, operation) from exc
    log.warning("change lost every race", operation=operation, user_id=user_id, attempts=attempt + 1)
    raise Unavailable("too many concurrent changes to this user; retry later")


def stage(batch, user_snap, user_data, change: Change, now: datetime, change_id: str,
          versions: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """Put every write of one user's change into `batch`, so it commits whole or not at all.

    `user_snap` is the user document's snapshot or a `known.Version` (where, and which version
    the commit is conditioned on); `versions` are the update times of the documents read with
    the user (None: absent). Returns the fields written on the user document (None: none).
    """
    db = client()
    written = _stage_user(batch, user_snap, user_data, change, now, change_id)
    for record in change.records:
        ref = db.document(collections.transaction(record.transaction_id))
        data = codec.transaction_document(record)
        batch.create(ref, data) if change.create_records else batch.set(ref, data)
    for path, data in change.create.items():
        batch.create(db.document(path), data)
    for path, data in change.overwrite.items():
        if path in change.guarded:
            version = (versions or {}).get(path)
            if version is None:
                batch.create(db.document(path), data)
            else:
                batch.update(db.document(path), data, option=db.write_option(last_update_time=version))
        else:
            batch.set(db.document(path), data)
    for path in change.delete:
        batch.delete(db.document(path))
    return written


def _stage_user(batch, user_snap, user_data, change: Change, now: datetime, change_id: str) -> Optional[dict]:
    if change.account is None:
        return None
    # `change_id` lets a commit whose reply was lost be recognised (`outcome.resolve`).
    data = {**codec.user_document(change.account, now, change.user_fields, stored=user_data),
            outcome.CHANGE_ID: change_id}
    if not user_snap.exists:
        batch.create(user_snap.reference, data)
        return data
    if user_data and codec.LEGACY_BALANCE in user_data:
        # The legacy field would contradict the pools once they move; it is migrated away.
        data[codec.LEGACY_BALANCE] = firestore.DELETE_FIELD
    batch.update(user_snap.reference, data, option=client().write_option(last_update_time=user_snap.update_time))
    return data
