"""Group commit: the changes waiting for one user in one instance, decided in turn, committed once.

When requests for one user arrive faster than a commit takes, they queue on the user's lock
(`commit._stripe`) and each would pay a whole commit in turn. Instead, whoever takes the lock
takes every change queued for that user with it and commits them together.

Rules enforced here:
- the changes are decided one after the other, each on the account and document the ones
  before it leave (its records numbered after theirs, and created after them in time),
  exactly as if they had committed one by one in that order; they commit in
  one atomic commit with every change's records and markers, conditioned on the version the
  first one was decided from (read, or this instance's known version), so they are all made or
  none is;
- a change is grouped only if everything it reads is a document it creates (its marker), it
  overwrites and deletes nothing, and no change before it in the group creates the same
  document (the same idempotency key twice): anything else is done alone afterwards, through
  `change_user`, as is every change of a group whose commit is refused;
- a refusal (402, 409) or a replay decided inside a group is answered only if it was decided
  from a read and the changes before it in the group committed; otherwise it is decided again
  alone; from a known version it is never answered (as in `change_user`);
- a group whose reply was lost is resolved like one change (`outcome`): all landed, all fenced
  off, or all decided again;
- `GROUP_MAX` bounds a group (and every commit stays within Firestore's 500 writes); 1 turns
  grouping off.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterable, Optional, TypeVar

from ..common.errors import CreditsError
from ..ledger import codec, collections
from ..ledger.change import Change, Snapshot
from . import commit, known, outcome, wire
from .batch import MAX_BATCH_WRITES
from .client import TRANSIENT, client, deadline, unavailable, utcnow
from .commit import decide_settled, snapshot_of
from .pipeline import Sent, new_batch, send, stage, user_write

R = TypeVar("R")

GROUP_MAX = 16


@dataclass
class _Ask:
    """One caller's change waiting in a user's queue, and what became of it."""

    decide: Callable[[Snapshot], Change]
    paths: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Optional[BaseException] = None

    def answer(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        self.result, self.error = result, error
        self.done.set()


_queues: dict[str, list[_Ask]] = {}
_queues_lock = threading.Lock()


def change_user_grouped(user_id: str, decide: Callable[[Snapshot], Change[R]], reads: Iterable[str] = (),
                        operation: str = "change") -> R:
    """`change_user(..., cached=True)`, committed together with the other changes queued for the user."""
    ask = _Ask(decide, list(reads))
    with _queues_lock:
        _queues.setdefault(user_id, []).append(ask)
    with commit._stripe(user_id):
        if not ask.done.is_set():
            with _queues_lock:
                asks = _queues.pop(user_id, [])
            _serve(user_id, asks, operation)
    ask.done.wait()
    if ask.error is not None:
        raise ask.error
    return ask.result


def _serve(user_id: str, asks: list[_Ask], operation: str) -> None:
    alone = asks
    if len(asks) > 1 and GROUP_MAX > 1:
        try:
            alone = _commit_group(user_id, asks[:GROUP_MAX], operation) + asks[GROUP_MAX:]
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear something
            for ask in asks:
                if not ask.done.is_set():
                    ask.answer(error=exc)
            return
    for ask in alone:
        _alone(user_id, ask, operation)


def _alone(user_id: str, ask: _Ask, operation: str) -> None:
    try:
        done, result = commit._change_known_user(user_id, ask.decide, ask.paths, operation)
        if not done:
            result = commit._change_user(user_id, ask.decide, ask.paths, operation)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
        ask.answer(error=exc)
    else:
        ask.answer(result=result)


@dataclass
class _Decided:
    ask: _Ask
    change: Optional[Change] = None
    error: Optional[CreditsError] = None


def _commit_group(user_id: str, asks: list[_Ask], operation: str) -> list[_Ask]:
    """Decide and commit `asks` together; returns those to be done alone (see the module's rules)."""
    db = client()
    uref = db.document(collections.user(user_id))
    cache = known.known_users()
    seen = cache.get(uref.path)
    snaps: dict[str, Any] = {}
    if seen is not None:
        base, version, trusted = dict(seen.data), known.Version(uref, seen.update_time), False
    else:
        paths = list(dict.fromkeys(path for ask in asks for path in ask.paths))
        try:
            snaps = {snap.reference.path: snap for snap in
                     wire.get_all(db, [uref] + [db.document(path) for path in paths], timeout=deadline())}
        except TRANSIENT as exc:
            error = unavailable(exc, operation)
            for ask in asks:
                ask.answer(error=error)
            return []
        version = snaps[uref.path]
        base = version.to_dict() if version.exists else None
        known.known_users().put(uref.path, base, version.update_time)
        trusted = True
    if base is not None and (codec.LEGACY_BALANCE in base or codec.last_seq(base) is None):
        # A legacy document is migrated by its first change alone, and one without `last_seq`
        # learns it on the read path (`pipeline.learn_last_seq`); then they are grouped as usual.
        return asks

    now = utcnow()
    at = now
    data = base
    decided: list[_Decided] = []
    alone: list[_Ask] = []
    created: set[str] = set()
    read: dict[str, Any] = {}
    # The witness and the user document.
    writes = 2
    merged: Optional[Change] = None
    for index, ask in enumerate(asks):
        documents = {path: (snaps[path].to_dict() if path in snaps and snaps[path].exists else None)
                     for path in ask.paths}
        if created & set(ask.paths):
            alone.append(ask)  # the same key as a change before it: decided alone, after the group
            continue
        try:
            snapshot, change = decide_settled(ask.decide, snapshot_of(user_id, data, documents, at))
        except CreditsError as exc:
            if trusted:
                decided.append(_Decided(ask, error=exc))
            else:
                alone.append(ask)
            continue
        except Exception:  # noqa: BLE001 - decided alone, where the fault reaches its caller as it is
            alone.append(ask)
            continue
        if not change.writes_anything:
            decided.append(_Decided(ask, change)) if trusted else alone.append(ask)
            continue
        creates = change.created_paths()
        after = known.after_update(data, user_write(change, now, data)) if change.account is not None else None
        if (after is None or change.overwrite or change.delete
                or not commit.creates_every_read(ask.paths, change) or creates & created
                or writes + change.writes - 1 > MAX_BATCH_WRITES):
            alone.append(ask)
            continue
        decided.append(_Decided(ask, change))
        if change.records:
            # The next change's records come after these in time too, as they do in `seq`.
            at = max(record.created_at for record in change.records) + timedelta(microseconds=1)
        created |= creates
        writes += change.writes - 1
        data = after
        read.update((path, snaps[path].update_time if path in snaps else None) for path in ask.paths)
        merged = change if merged is None else merged.merge(change)

    if merged is None:
        # Nothing to commit: what was decided from a read stands as the read path would answer it.
        for entry in decided:
            entry.ask.answer(result=entry.change.result if entry.change else None, error=entry.error)
        return alone

    change_id = outcome.new_change_id()
    batch = new_batch(db, change_id, user_id, now)
    written = stage(batch, version, base, merged, now, change_id, read)
    try:
        sent, results = send(batch, uref.path, version.update_time if version.exists else None, change_id,
                             operation)
    except CreditsError as error:
        # A fault before the commit, or a lost reply fenced off (or unknown): none of the group's
        # changes was made.
        cache.drop(uref.path)
        return _nothing_made(decided, alone, error)
    if sent is Sent.REFUSED:
        if seen is not None:
            cache.drop(uref.path, seen.update_time)
            cache.refused(uref.path)
        return [entry.ask for entry in decided] + alone
    if sent is Sent.MOVED:
        cache.drop(uref.path)
        return [entry.ask for entry in decided] + alone
    commit._remember(uref.path, base, written, results)
    for entry in decided:
        entry.ask.answer(result=entry.change.result if entry.change else None, error=entry.error)
    return alone


def _nothing_made(decided: list[_Decided], alone: list[_Ask], error: CreditsError) -> list[_Ask]:
    """The group's commit did not land: each change in it hears `error`; what it decided without
    writing (a refusal, a replay) rested on that commit, so it is decided again alone."""
    for entry in decided:
        if entry.change is not None and entry.change.writes_anything:
            entry.ask.answer(error=error)
        else:
            alone.append(entry.ask)
    return alone
