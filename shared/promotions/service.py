"""The service behind `promo_grant`: permanent credits for whole campaigns, once per grant and user.

Rules enforced here:
- each user receives `amount` permanent credits (`promo_grant`) at most once per `grant_id`:
  the grant's record id is derived from `grant_id` and user, and created (never overwritten)
  in the same commit as the user's pools, so any repeat fails instead of granting twice;
- a user with no document gets one with both pools; a legacy document is migrated in the
  same commit as its grant;
- a grant id seen again with a different amount keeps the first grant, and is reported;
- a grant first pays what the user owes (`accounts.grant_and_collect`), in the same commit;
- a grant may skip reading its users (`change_users(assume_absent=True)`): each user document is
  then created, create-only, with its record, so it is only ever written for a user with no
  document; a user with a document (legacy, owing, holding credits, or any other) fails that
  batch, which is then read and decided, so nothing is written to a document without reading it.
  Whether to try that first is only a guess from the last messages, never a matter of safety.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..common import ids, log
from ..common.ids import new_transaction_id
from ..ledger import accounts, collections, records
from ..ledger.change import Change, Snapshot
from ..ledger.models import CreditPool, TransactionType
from ..store.batch import UserChange, change_users
from .schemas import PromoMessage

DEFAULT_DESCRIPTION = "Promotional credits"
GRANTED, ALREADY_GRANTED, CONFLICTING = "granted", "already_granted", "conflicting"


@dataclass(frozen=True)
class GrantOutcome:
    """What one message did: how many users it granted and how many had the grant already."""

    grant_id: str
    message_id: Optional[str]
    users: int
    granted: int
    already_granted: int
    conflicting: int

    @property
    def outcome(self) -> str:
        return "applied" if self.granted else "duplicate"


def decide_grant(snap: Snapshot, message: PromoMessage, user_id: str) -> Change[str]:
    """One user's part of a grant: the record (created once), or what the earlier one says."""
    record_path = collections.transaction(ids.grant_record_id(message.grant_id, user_id))
    seen = snap.documents[record_path]
    if seen is not None:
        # The grant reached this user before; a different amount under the same grant id
        # is reported, never added on top.
        return Change(result=ALREADY_GRANTED if seen.get("amount") == message.amount else CONFLICTING)
    account, migration = accounts.migrate(snap.account)
    entry = accounts.grant(TransactionType.PROMO_GRANT, message.amount, message.description or DEFAULT_DESCRIPTION,
                           CreditPool.PERMANENT)
    after, entries = accounts.grant_and_collect(account, [entry])
    record_ids = (
        [new_transaction_id() for _ in migration]
        + [collections.document_id(record_path)]
        + [new_transaction_id() for _ in entries[1:]]
    )
    written = records.records(user_id, migration + entries, message.grant_id, snap.now, ids=record_ids,
                              at=snap.position)
    return Change(result=GRANTED, account=after, records=written)


def _user_change(message: PromoMessage, user_id: str) -> UserChange[str]:
    record_path = collections.transaction(ids.grant_record_id(message.grant_id, user_id))
    return UserChange(user_id, lambda snap: decide_grant(snap, message, user_id), (record_path,))


class _NewUsersGuess:
    """Whether the next message is likely to go to users with no document yet.

    A message to new users is cheapest without reads; one to existing users wastes one refused
    batch trying. After a refusal the next messages read, and every `PROBE_EVERY`-th one tries
    again, so a campaign to new users after one to existing users finds the cheap path.
    """

    PROBE_EVERY = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new = True
        self._since = 0

    def next(self) -> bool:
        with self._lock:
            self._since += 1
            return self._new or self._since % self.PROBE_EVERY == 0

    def met_existing(self) -> None:
        with self._lock:
            self._new, self._since = False, 0

    def met_new(self) -> None:
        with self._lock:
            self._new = True


_guess = _NewUsersGuess()


def grant(message: PromoMessage, message_id: Optional[str] = None) -> GrantOutcome:
    """Grant the message's amount to each of its users who does not have this grant yet.

    Raises Unavailable on a fault that may heal; whatever committed before it stays, and a
    redelivery completes the rest without granting anyone twice.
    """
    items = [_user_change(message, user_id) for user_id in message.user_ids]
    met: list[bool] = []
    blind = _guess.next()
    results = change_users(items, operation="promo_grant", assume_absent=blind,
                           on_existing=lambda: met.append(True))
    if met:
        _guess.met_existing()
    elif blind:
        _guess.met_new()
    outcome = GrantOutcome(
        grant_id=message.grant_id,
        message_id=message_id,
        users=len(results),
        granted=results.count(GRANTED),
        already_granted=results.count(ALREADY_GRANTED),
        conflicting=results.count(CONFLICTING),
    )
    if outcome.conflicting:
        conflicting = [user for user, result in zip(message.user_ids, results) if result == CONFLICTING]
        log.warning(
            "grant id reused with a different amount; those users keep their first grant",
            source=message.grant_id,
            message_id=message_id,
            outcome="conflicting",
            amount=message.amount,
            user_ids=conflicting[:20],
            conflicting=outcome.conflicting,
        )
    log.info("promo grant " + outcome.outcome, source=message.grant_id, **_fields(outcome))
    return outcome


def _fields(outcome: GrantOutcome) -> dict[str, Any]:
    return {k: v for k, v in asdict(outcome).items() if k != "grant_id"} | {"outcome": outcome.outcome}
