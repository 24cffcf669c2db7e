"""The one commit pipeline every credit change goes through: stage, send, classify.

`commit.change_user` (one user), `group.change_user_grouped` (one user's queued changes) and
`batch.change_users` (many users) are policies over these steps: they differ in how they read
and what they do after a refusal, never in how a commit is built or judged.

Rules enforced here:
- a commit is conditioned on everything its decision read, by the kernel, whatever the
  feature: the user document on its update time (or its absence), and every other document
  the decision read (`reads`: path -> the update time read, None for absent) on the same:
  a document the change writes is written over the version read (created if it was absent,
  deleted only at that version), and one it does not write is verified in the commit (an
  update of no field at that version, or a delete that requires absence, neither of which
  changes anything); so a commit lands only if nothing its decision saw has moved since, even
  if the decision's read was torn across another commit's writes;
- a user field the change sets to `REMOVED` is deleted from the user document (and left out of
  one the commit creates);
- a write that depends on no read is the only kind without a precondition: records (created,
  never overwritten), markers (create-only), and bookkeeping whose content the user
  document's version already decides;
- every commit creates its own witness, `credits_commits/{change_id}`, with an id drawn for
  that attempt: no other commit can have written it, so finding it proves this commit landed;
- one classifier of what became of a commit (`send`): LANDED, REFUSED (a precondition or a
  create-only write failed: nothing written), MOVED (its reply was lost and another change
  won: nothing written, decide again); a fault before the commit, or a lost reply fenced off
  for good, raises `Unavailable`; an outcome that could not be learned raises `OutcomeUnknown`;
- every record continues its user's ledger: the commit checks that a change's records take
  the `seq`s right after the `last_seq` its decision read, one by one, each `balance_after`
  following the one before and the last one the pools it writes (`records.check_numbering`),
  and writes the new `last_seq` on the user document in the same commit, so the next record
  is numbered without a read; a decision's read of a document without `last_seq` learns it
  from the user's records first (`learn_last_seq`), once, since that commit writes it;
- one deadline (`client.deadline()`) and no hidden retry on every call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping, Optional

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ..ledger import codec, collections, moves, records
from ..ledger.change import REMOVED, Change
from . import outcome, scans, wire
from .client import RACE_LOST, TRANSIENT, client, deadline, unavailable

# How long a witness is kept: far longer than any commit's outcome takes to resolve
# (`outcome.RESOLVE_BUDGET_S`); Firestore's TTL policy deletes it after (terraform).
WITNESS_TTL = timedelta(days=7)


class Sent(str, Enum):
    LANDED = "landed"
    REFUSED = "refused"
    MOVED = "moved"


def new_batch(db, change_id: str, user_id: str, now: datetime) -> wire.Batch:
    """An empty commit holding only its witness (see the module's rules)."""
    batch = wire.Batch(db)
    batch.create(db.document(collections.commit_witness(change_id)),
                 {"change_id": change_id, "user_id": user_id, "created_at": now, "expire_at": now + WITNESS_TTL})
    return batch


def learn_last_seq(user_id: str, stored: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """`stored` as the decision sees it: with `last_seq` learned from the user's records when the
    stored document does not say it (written before it existed, or by an import or a restore).

    Costs one query, only then: the next record continues after the user's highest-numbered
    record or after as many records as the user has, whichever is more, so records written
    before `seq` existed keep the first numbers for `credits migrate` to give them. The commit
    that follows is conditioned on the document's version, and every record is written with
    its user's document, so a record written meanwhile makes that commit fail and be read again.
    """
    if stored is None or codec.last_seq(stored) is not None:
        return stored
    return {**stored, codec.LAST_SEQ: scans.ledger_length(user_id)}


def user_write(change: Change, now: datetime, stored: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The fields a change writes on the user document over `stored`: its account, its extra
    fields, and the `seq` of the user's last record once its records are seen to continue it."""
    last = codec.last_seq(stored)
    if last is None:
        raise records.UnknownPosition("a user document without last_seq must be learned before it is written")
    if change.last_seq is not None:
        if change.records:
            raise ValueError("a renumbering of existing records writes no record of its own")
        last = change.last_seq
    else:
        last = records.check_numbering(change.records, last, change.account)
    fields = {**codec.user_document(change.account, now, change.user_fields, stored=stored), codec.LAST_SEQ: last}
    # A subscriber's monthly movements are kept beside the facts, for late facts to be placed among.
    monthly_moves = moves.recorded(stored, codec.read_account(change.account.user_id, stored).monthly,
                                   change.account.monthly, change.user_fields) if change.account else None
    if monthly_moves is not None:
        fields[moves.MOVES] = monthly_moves
    return fields


def stage(batch: wire.Batch, user, user_data: Optional[dict[str, Any]], change: Change, now: datetime,
          change_id: str, reads: Mapping[str, Optional[Any]]) -> Optional[dict[str, Any]]:
    """Put every write of one user's change into `batch`, conditioned on what its decision read.

    `user` is the user document's snapshot or a `known.Version` (where it is, and the version
    the decision saw); `reads` are the other documents the decision read, each with the update
    time it saw (None: absent). Returns the fields written on the user document (None: none).
    """
    db = client()
    if change.records and change.account is None:
        raise ValueError("a change that writes records must write its user document")
    written = _stage_user(batch, user, user_data, change, now, change_id)
    staged: set[str] = set()

    def once(path: str) -> Any:
        if path in staged:
            raise ValueError(f"a change writes {path} twice")
        staged.add(path)
        return db.document(path)

    for record in change.records:
        path = collections.transaction(record.transaction_id)
        batch.create(once(path), codec.transaction_document(record))
    for path, data in change.create.items():
        batch.create(once(path), data)
    for path, data in change.overwrite.items():
        ref = once(path)
        if path not in reads:
            batch.set(ref, data)
        elif reads[path] is None:
            batch.create(ref, data)
        else:
            batch.replace(ref, data, reads[path])
    for path in change.delete:
        ref = once(path)
        if path not in reads:
            batch.delete(ref)
        else:
            batch.delete_at(ref, reads[path])
    for path, version in reads.items():
        if path not in staged:
            batch.verify(db.document(path), version)
    return written


def _stage_user(batch, user, user_data, change: Change, now: datetime, change_id: str) -> Optional[dict]:
    if change.account is None:
        return None
    # `change_id` lets a fence replace what the commit would have written (`outcome.resolve`).
    data = {**user_write(change, now, user_data), outcome.CHANGE_ID: change_id}
    if not user.exists:
        data = {name: value for name, value in data.items() if value is not REMOVED}
        batch.create(user.reference, data)
        return data
    data = {name: firestore.DELETE_FIELD if value is REMOVED else value for name, value in data.items()}
    if user_data and codec.LEGACY_BALANCE in user_data:
        # The legacy field would contradict the pools once they move; it is migrated away.
        data[codec.LEGACY_BALANCE] = firestore.DELETE_FIELD
    batch.update(user.reference, data, option=client().write_option(last_update_time=user.update_time))
    return data


def send(batch: wire.Batch, user_path: str, expected: Optional[Any], change_id: str,
         operation: str) -> tuple[Sent, Optional[wire.Results]]:
    """Commit `batch` and say what became of it (the write results when the reply came).

    `user_path` and `expected` name the user document the commit is conditioned on and the
    version it names (None: absent): a lost reply is resolved there (`outcome.resolve`).
    """
    try:
        return Sent.LANDED, batch.commit(retry=None, timeout=deadline())
    except RACE_LOST + (gexc.NotFound,):
        return Sent.REFUSED, None
    except outcome.AMBIGUOUS as exc:
        # The commit may have landed, or may land later: learn which before anyone is told.
        resolved = outcome.resolve(user_path, expected, change_id, operation)
        if resolved is outcome.Outcome.LANDED:
            return Sent.LANDED, None
        if resolved is outcome.Outcome.MOVED:
            return Sent.MOVED, None
        if resolved is outcome.Outcome.FENCED:
            raise unavailable(exc, operation) from exc
        raise outcome.OutcomeUnknown(
            "Firestore did not answer, so whether the change was made is not known; retry with the same idempotency key"
        ) from exc
    except TRANSIENT as exc:
        raise unavailable(exc, operation) from exc
