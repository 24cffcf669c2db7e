"""One user's change: read, decide, commit, atomically and at most once.

Rules enforced here:
- every change to a user is one atomic commit holding the user document, its ledger records
  and the idempotency marker of its source, so a change is either whole or absent;
- all reads happen before any write: one batched read (user document plus the other documents
  the decision asks for), a pure decision, then one commit;
- the commit is conditioned on everything the decision read (`pipeline.stage`: the user
  document and every other document, on its version or its absence), so a concurrent change
  makes the commit fail instead of overwriting; the change is then re-read and re-decided,
  with a short jittered backoff, for at most `RACE_BUDGET_S`;
- within one process, changes to the same user take turns (a striped lock), so threads of
  one instance do not burn round trips racing each other; across instances the precondition
  alone keeps changes serial;
- a Firestore fault that may heal is raised as `Unavailable`, never half-applied; a commit whose
  reply was lost is resolved first (`outcome`): answered as made if it landed, and as not made
  only once it is fenced off for good;
- a change may be decided from this instance's last version of the user document (`known`)
  instead of a read (`cached=True`): only when every other document the decision reads is one
  its change creates (assumed absent, which the create-only write checks) and the change
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

from ..common import log
from ..common.errors import Unavailable
from ..ledger import autotopup, codec, collections, holds
from ..ledger.change import Change, Snapshot
from . import known, outcome, wire
from .client import TRANSIENT, client, deadline, unavailable, utcnow
from .pipeline import Sent, learn_last_seq, new_batch, send, stage

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
    that commits to its user, in that change's commit; and the auto top-up attempt a change makes
    due (its balance left below the user's threshold) is created in that change's commit too, so
    no change crosses the threshold unchecked and the pending attempt named on the user document
    keeps a second one from starting.
    """
    settled, released = holds.settle_expired(snapshot)
    change = released.merge(decide(settled))
    return settled, autotopup.with_due_attempt(change, settled.user_data, settled.now)


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


def creates_every_read(paths: Iterable[str], change: Change) -> bool:
    """Whether the change creates every document it read, so each was assumed absent and the
    create-only write checks it (what a decision without a read may rely on)."""
    return set(paths) <= change.created_paths()


def _change_known_user(user_id: str, decide: Callable[[Snapshot], Change[R]], paths: list[str],
                       operation: str) -> tuple[bool, Optional[R]]:
    """One commit, no read: the change decided from the user's last known version, or a miss."""
    db = client()
    uref = db.document(collections.user(user_id))
    cache = known.known_users()
    seen = cache.get(uref.path)
    if seen is None or codec.last_seq(seen.data) is None:
        return _MISS
    try:
        snapshot, change = decide_settled(
            decide, snapshot_of(user_id, dict(seen.data), {path: None for path in paths}, utcnow()))
    except Exception:  # noqa: BLE001 - a refusal from a version that may be stale is not answered
        return _MISS
    if (change.account is None or change.overwrite or change.delete
            or not creates_every_read(paths, change)):
        return _MISS
    change_id = outcome.new_change_id()
    batch = new_batch(db, change_id, user_id, snapshot.now)
    version = known.Version(uref, seen.update_time)
    written = stage(batch, version, snapshot.user_data, change, snapshot.now, change_id,
                    {path: None for path in paths})
    try:
        sent, results = send(batch, uref.path, seen.update_time, change_id, operation)
    except BaseException:
        cache.drop(uref.path)
        raise
    if sent is Sent.REFUSED:
        # The document moved on (or a created document exists): read and decide as usual.
        cache.drop(uref.path, seen.update_time)
        cache.refused(uref.path)
        return _MISS
    if sent is Sent.MOVED:
        cache.drop(uref.path)
        return _MISS
    _remember(uref.path, seen.data, written, results)
    return True, change.result


def _remember(path: str, stored: Optional[dict[str, Any]], written: Optional[dict[str, Any]], results) -> None:
    """Keep the version a commit wrote (its second write, after the witness, is the user document's)."""
    if written is None or not results:
        known.known_users().drop(path)
        return
    known.known_users().put(path, known.after_update(stored, written), results[1].update_time)


def _change_user(user_id: str, decide: Callable[[Snapshot], Change[R]], paths: list[str], operation: str) -> R:
    db = client()
    uref = db.document(collections.user(user_id))
    refs = [uref] + [db.document(path) for path in paths]
    give_up_at = time.monotonic() + RACE_BUDGET_S
    for attempt in range(MAX_ATTEMPTS):
        if attempt and time.monotonic() > give_up_at:
            break
        try:
            snaps = {snap.reference.path: snap for snap in wire.get_all(db, refs, timeout=deadline())}
        except TRANSIENT as exc:
            raise unavailable(exc, operation) from exc
        user_snap = snaps[uref.path]
        stored = learn_last_seq(user_id, user_snap.to_dict() if user_snap.exists else None)
        known.known_users().put(uref.path, stored, user_snap.update_time if user_snap.exists else None)
        documents = {p: (snaps[p].to_dict() if snaps[p].exists else None) for p in paths}
        snapshot, change = decide_settled(decide, snapshot_of(user_id, stored, documents, utcnow()))
        if not change.writes_anything:
            return change.result
        if change.account is None:
            # Without the user document's precondition a lost reply could never be fenced off.
            raise ValueError("a change that commits must write the user document")
        change_id = outcome.new_change_id()
        batch = new_batch(db, change_id, user_id, snapshot.now)
        versions = {p: snaps[p].update_time for p in paths}
        written = stage(batch, user_snap, snapshot.user_data, change, snapshot.now, change_id, versions)
        sent, results = send(batch, uref.path, user_snap.update_time, change_id, operation)
        if sent is Sent.LANDED:
            _remember(uref.path, stored, written, results)
            return change.result
        _backoff(attempt)
    log.warning("change lost every race", operation=operation, user_id=user_id, attempts=attempt + 1)
    raise Unavailable("too many concurrent changes to this user; retry later")
