"""Finding out what became of a commit whose reply never came, before anyone is told.

A commit that fails with a deadline, `unavailable` or `internal` may still have landed, or may
land later (its request can sit in a stalled connection). Answering 503 then would be a lie
that invites a second spend. So, before answering, the store resolves the outcome:

Rules enforced here:
- every commit creates a witness document of its own, `credits_commits/{change_id}`, and writes
  that `change_id` on its user document, with an id drawn for that attempt: finding either
  means this very commit landed (LANDED), and the caller answers with the change's result; a
  document that another commit could have created (a record with an id derived from its
  source, a marker of an earlier delivery) is never taken as proof;
- if the user document is exactly as the commit's precondition expects (same update time, or
  still absent), the commit has not landed yet: a fence (a write of a new `change_id` under
  that same precondition) is committed first, so the stalled commit can never land later
  (FENCED); only then is the caller told nothing was written;
- if the user document moved without our witness, another writer's change landed and ours,
  conditioned on the old version, can never land (MOVED): the caller decides again;
- the fence and the stalled commit are conditioned on the same version, so exactly one of them
  can land, whatever order they reach Firestore in: the resolution is right on any connection;
- it keeps trying within `RESOLVE_BUDGET_S`; if Firestore stays unreachable that long the
  outcome is UNKNOWN, which the caller reports as such, never as "nothing written".
"""

from __future__ import annotations

import random
import time
import uuid
from enum import Enum
from typing import Any, Optional

from google.api_core import exceptions as gexc

from ..common import log
from ..common.errors import Unavailable
from ..ledger import codec, collections
from ..ledger.accounts import Account
from .client import RACE_LOST, TRANSIENT, client, deadline, utcnow

CHANGE_ID = "change_id"
RESOLVE_BUDGET_S = 30.0

# Faults after which a commit may or may not have been applied. `Cancelled` included: the
# emulator (and a connection torn down mid-call) answers CANCELLED for a commit it may have applied.
AMBIGUOUS = (
    gexc.Cancelled,
    gexc.DeadlineExceeded,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.Unknown,
    gexc.GatewayTimeout,
    gexc.BadGateway,
    gexc.RetryError,
)


class Outcome(str, Enum):
    LANDED = "landed"
    FENCED = "fenced"
    MOVED = "moved"
    UNKNOWN = "unknown"


class OutcomeUnknown(Unavailable):
    """A commit's outcome could not be learned: Firestore stayed unreachable; retry with the same key."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome="unknown")


def new_change_id() -> str:
    return uuid.uuid4().hex


def resolve(user_path: str, expected: Optional[Any], change_id: str, operation: str) -> Outcome:
    """What became of the commit that wrote `change_id` on the user document at `user_path`,
    conditioned on its update time being `expected` (None: on its absence).

    `expected` is what the commit's precondition named, whether it came from a read or from
    this instance's cache of versions (`known`): the fence is conditioned on the same.
    """
    db = client()
    refs = [db.document(user_path), db.document(collections.commit_witness(change_id))]
    give_up_at = time.monotonic() + RESOLVE_BUDGET_S
    attempt = 0
    while time.monotonic() < give_up_at:
        attempt += 1
        try:
            outcome = _resolve_once(db, refs, expected, change_id)
        except RACE_LOST:
            continue  # the document moved while we fenced: look again
        except TRANSIENT:
            time.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * random.uniform(0.5, 1.0))
            continue
        log.warning("commit outcome resolved", operation=operation, user_id=collections.document_id(user_path),
                    outcome=outcome.value, attempts=attempt)
        return outcome
    log.error("commit outcome unknown", operation=operation, user_id=collections.document_id(user_path),
              outcome=Outcome.UNKNOWN.value, attempts=attempt)
    return Outcome.UNKNOWN


def _resolve_once(db, refs, expected: Optional[Any], change_id: str) -> Outcome:
    snaps = {snap.reference.path: snap for snap in db.get_all(refs, retry=None, timeout=deadline())}
    current = snaps[refs[0].path]
    data = current.to_dict() if current.exists else None
    if (data or {}).get(CHANGE_ID) == change_id or snaps[refs[1].path].exists:
        return Outcome.LANDED
    fence = {CHANGE_ID: new_change_id()}
    if expected is None:
        if current.exists:
            return Outcome.MOVED
        # The commit would have created the document: creating it first (with no credits, and so
        # no records: every record is written with its user's document) fences it.
        user_id = collections.document_id(refs[0].path)
        refs[0].create({**codec.user_document(Account(user_id), utcnow()), codec.LAST_SEQ: 0, **fence}, retry=None,
                       timeout=deadline())
        return Outcome.FENCED
    if not current.exists or current.update_time != expected:
        return Outcome.MOVED
    refs[0].update(fence, option=db.write_option(last_update_time=expected), retry=None,
                   timeout=deadline())
    return Outcome.FENCED
