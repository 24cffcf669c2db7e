"""Many users' changes in few commits, each user with every guarantee of `change_user`.

Rules enforced here:
- each user gets one pure decision, the user document conditioned on its update time or
  created if absent, markers and derived records create-only, and all of one user's writes in
  one commit, while many users share each commit (at most 500 writes);
- only the user documents are read in bulk: every other document a decision names is assumed
  absent and must be created by its change, so one that exists after all (a repeat, a partial
  earlier run, a concurrent writer) fails the whole batch atomically; that batch is then redone
  user by user through `change_user`, which reads the documents and decides again; so is a
  user whose document does not say its last `seq` yet, which the read path learns
  (`pipeline.learn_last_seq`);
- a fault that may heal raises `Unavailable`; batches committed before it stay committed, which
  is safe because every repeat of a committed user fails on its create-only marker; a batch
  whose reply was lost is resolved (landed, or fenced off for good) before anything is said;
- with `assume_absent`, nothing is read at all: every user document is assumed absent and is
  created, with its records, create-only; a user whose document exists after all (a legacy
  document, a user with debt or open holds, any existing user) fails that batch atomically,
  and that batch and the ones after it are then read and decided as above, so an existing
  document is never written without having been read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Optional, TypeVar

from ..common import log
from ..common.errors import CreditsError
from ..ledger import codec, collections
from ..ledger.change import Change, Snapshot
from . import outcome, wire
from .client import client, deadline, faults, utcnow
from .commit import change_user, creates_every_read, decide_settled, snapshot_of
from .known import Version
from .pipeline import Sent, new_batch, send, stage

R = TypeVar("R")

MAX_BATCH_WRITES = 500
FALLBACK_THREADS = 8
PIPELINE_THREADS = 3
# One batch's worth of users when each takes two writes: measured faster than smaller reads.
READ_SLICE_USERS = 250


@dataclass(frozen=True)
class UserChange(Generic[R]):
    """One user's part in a batched change: its decision and the documents that decision reads."""

    user_id: str
    decide: Callable[[Snapshot], Change[R]]
    reads: tuple[str, ...] = ()


@dataclass
class _Staged(Generic[R]):
    index: int
    change: Change[R]
    user_snap: Any


@dataclass
class _Commit(Generic[R]):
    """One batch on its way: its users and the pending `send`."""

    group: list[_Staged[R]]
    future: Any


class _Open:
    """The batch being filled: its witness first, then whole users."""

    def __init__(self, db, now) -> None:
        self.change_id = outcome.new_change_id()
        self.db, self.now = db, now
        self.batch: Optional[wire.Batch] = None
        self.group: list[_Staged] = []
        self.size = 1  # the witness

    def add(self, index: int, item: UserChange, user_snap, user_data, change: Change, now) -> None:
        if self.batch is None:
            self.batch = new_batch(self.db, self.change_id, item.user_id, self.now)
        stage(self.batch, user_snap, user_data, change, now, self.change_id, {path: None for path in item.reads})
        self.group.append(_Staged(index, change, user_snap))
        self.size += change.writes

    def send(self, pool, operation: str) -> _Commit:
        """Commit the batch in `pool`; its first user is where a lost reply is resolved."""
        first = self.group[0].user_snap
        expected = first.update_time if first.exists else None
        future = pool.submit(_send, self.batch, first.reference.path, expected, self.change_id, operation)
        return _Commit(self.group, future)


def _send(batch, user_path, expected, change_id, operation):
    try:
        return send(batch, user_path, expected, change_id, operation)[0]
    except CreditsError as exc:
        return exc


def change_users(
    items: list[UserChange[R]], operation: str = "change_users", max_writes: int = MAX_BATCH_WRITES,
    assume_absent: bool = False, on_existing: Optional[Callable[[], None]] = None,
) -> list[R]:
    """Apply each item's decision like `change_user` does, packing users into batched commits.

    Returns the results in the order of `items`. Users are read (batched reads of
    `READ_SLICE_USERS`) and decided slice by slice, and committed in batches of at most
    `max_writes` writes, each holding whole users. With `assume_absent` they are first decided
    as new users without a read (see the module's rules); `on_existing` is called when that
    met an existing user.
    """
    user_ids = [item.user_id for item in items]
    if len(set(user_ids)) != len(user_ids):
        # Two writes to one user in a commit would both pass the same precondition.
        raise ValueError("change_users needs distinct user ids")
    if assume_absent:
        return _change_new_users(items, operation, max_writes, on_existing)
    return _change_read_users(items, operation, max_writes)


def _change_new_users(items: list[UserChange[R]], operation: str, max_writes: int,
                      on_existing: Optional[Callable[[], None]]) -> list[R]:
    """Create each user with its change, no read; whatever meets an existing document is read and redone."""
    db = client()
    results: dict[int, R] = {}
    rest: list[int] = []
    now = utcnow()
    # One commit in flight while the next batch is built; the first refusal (an existing user)
    # stops the blind path before more batches are built for nothing.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Optional[_Commit[R]] = None

        def settle(commit: Optional[_Commit[R]]) -> bool:
            if commit is None:
                return True
            landed = _landed(commit)
            if landed is True:
                results.update((entry.index, entry.change.result) for entry in commit.group)
                return True
            if isinstance(landed, CreditsError):
                raise landed
            rest.extend(entry.index for entry in commit.group)
            return False

        batch = _Open(db, now)
        refused = False
        for index, item in enumerate(items):
            if refused:
                rest.append(index)
                continue
            snapshot, change = decide_settled(
                item.decide, snapshot_of(item.user_id, None, {path: None for path in item.reads}, now))
            writes = change.writes
            if change.account is None or not creates_every_read(item.reads, change) or writes + 1 > max_writes:
                rest.append(index)
                continue
            if batch.group and batch.size + writes > max_writes:
                if not settle(pending):
                    refused = True
                    pending = None
                    rest.extend(entry.index for entry in batch.group)
                    rest.append(index)
                    batch = _Open(db, now)
                    continue
                pending = batch.send(pool, operation)
                batch = _Open(db, now)
            version = Version(db.document(collections.user(item.user_id)), None)
            batch.add(index, item, version, None, change, snapshot.now)
        if not refused:
            if not settle(pending):
                refused = True
                rest.extend(entry.index for entry in batch.group)
            elif batch.group:
                refused = not settle(batch.send(pool, operation))
    if refused and on_existing is not None:
        on_existing()
    if rest:
        rest = sorted(set(rest))
        again = _change_read_users([items[index] for index in rest], operation, max_writes)
        results.update(zip(rest, again))
    return [results[index] for index in range(len(items))]


def _change_read_users(items: list[UserChange[R]], operation: str, max_writes: int) -> list[R]:
    db = client()
    results: dict[int, R] = {}
    one_by_one: list[int] = []
    commits: list[_Commit[R]] = []
    indexed = list(enumerate(items))
    slices = [indexed[k : k + READ_SLICE_USERS] for k in range(0, len(indexed), READ_SLICE_USERS)]
    # Reading the next slice and committing a full batch wait on Firestore; they run beside the
    # CPU-bound deciding and staging of the current slice. Batches hold different users, so
    # their commits are independent.
    with ThreadPoolExecutor(max_workers=PIPELINE_THREADS) as pool:
        batch = _Open(db, utcnow())
        reading = pool.submit(_read_users, db, slices[0], operation) if slices else None
        for number, part in enumerate(slices):
            snaps = reading.result()
            if number + 1 < len(slices):
                reading = pool.submit(_read_users, db, slices[number + 1], operation)
            now = utcnow()
            for index, item in part:
                user_snap = snaps[index]
                stored = user_snap.to_dict() if user_snap.exists else None
                if codec.last_seq(stored) is None:
                    # A document without `last_seq` learns it from its records on the read path.
                    one_by_one.append(index)
                    continue
                snapshot, change = decide_settled(
                    item.decide, snapshot_of(item.user_id, stored, {path: None for path in item.reads}, now))
                writes = change.writes
                if not change.writes_anything:
                    results[index] = change.result
                    continue
                if not creates_every_read(item.reads, change) or writes + 1 > max_writes:
                    # An absent document it would not create is read and decided alone.
                    one_by_one.append(index)
                    continue
                if batch.group and batch.size + writes > max_writes:
                    commits.append(batch.send(pool, operation))
                    batch = _Open(db, now)
                batch.add(index, item, user_snap, snapshot.user_data, change, snapshot.now)
        if batch.group:
            commits.append(batch.send(pool, operation))

    failed: Optional[CreditsError] = None
    for commit in commits:
        landed = _landed(commit)
        if isinstance(landed, CreditsError):
            failed = landed
        elif landed:
            results.update((entry.index, entry.change.result) for entry in commit.group)
        else:
            log.info("batch fell back to per-user commits", operation=operation, users=len(commit.group))
            one_by_one.extend(entry.index for entry in commit.group)
    if failed is not None:
        raise failed
    if one_by_one:
        results.update(_one_by_one(items, sorted(one_by_one), operation))
    return [results[index] for index in range(len(items))]


def _landed(commit: _Commit):
    """True if the batch committed, False if it must be redone user by user, or the error to raise.

    A batch is atomic, so its first user tells for all: a lost reply is resolved on that user
    (`pipeline.send`), and a fence there keeps the whole stalled batch from landing later.
    """
    sent = commit.future.result()
    if isinstance(sent, CreditsError):
        return sent
    return sent is Sent.LANDED


def _read_users(db, part: list[tuple[int, UserChange]], operation: str) -> dict[int, Any]:
    """One batched read of a slice's user documents, by item index."""
    refs = {index: db.document(collections.user(item.user_id)) for index, item in part}
    with faults(operation):
        snaps = {snap.reference.path: snap for snap in wire.get_all(db, refs.values(), timeout=deadline())}
    return {index: snaps[ref.path] for index, ref in refs.items()}


def _one_by_one(items: list[UserChange[R]], indexes: list[int], operation: str) -> dict[int, R]:
    # Users are independent, so their single commits may run side by side; the first fault
    # that may heal is raised once the others have finished.
    def run(index: int) -> R:
        item = items[index]
        return change_user(item.user_id, item.decide, reads=item.reads, operation=operation)

    with ThreadPoolExecutor(max_workers=min(FALLBACK_THREADS, len(indexes))) as pool:
        futures = {index: pool.submit(run, index) for index in indexes}
    return {index: future.result() for index, future in futures.items()}
