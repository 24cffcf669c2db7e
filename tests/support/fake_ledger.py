"""Helpers for tests of the store on the in-memory Firestore (`fake_firestore`): what a user
holds, their records, and changes made as another instance would make them."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

from shared.ledger import accounts, codec, collections
from shared.ledger import records as ledger_records
from shared.ledger.change import Change, Snapshot
from shared.ledger.models import CreditPool, TransactionType
from shared.spending.rules import SpendOrder, SpendRequest, decide_spend
from shared.store import commit, known
from tests.support.ledger import assert_ledger_of

T = TypeVar("T")


def numbered(data: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """A stored user document as the store hands it to a decision: saying its last `seq` (0,
    a user with no records yet, unless it says another)."""
    return None if data is None else {codec.LAST_SEQ: 0, **data}


def pools(fake, user_id: str) -> tuple[int, int]:
    """(monthly, permanent) as stored; (0, 0) for a user with no document."""
    doc = fake.doc(collections.user(user_id)) or {}
    return doc.get("credits_monthly", 0), doc.get("credits_permanent", 0)


def balance(fake, user_id: str) -> int:
    return sum(pools(fake, user_id))


def records(fake, user_id: str, kind: Optional[str] = None, source: Optional[str] = None) -> list[dict[str, Any]]:
    """The user's stored records, of one type and source when given."""
    return [
        record for record in fake.docs(collections.TRANSACTIONS).values()
        if record["user_id"] == user_id
        and (kind is None or record["type"] == kind)
        and (source is None or record["source"] == source)
    ]


def assert_pools_match_records(fake, user_id: str) -> None:
    """Each pool equals the sum of the user's records in that pool, and the records are numbered
    1..n with their running sums (`ledger.assert_ledger_of`)."""
    sums = {"monthly": 0, "permanent": 0}
    for record in records(fake, user_id):
        sums[record["pool"]] += record["amount"]
    assert pools(fake, user_id) == (sums["monthly"], sums["permanent"]), (fake.doc(collections.user(user_id)), sums)
    assert_ledger_of(fake.doc(collections.user(user_id)), records(fake, user_id))


def spend_decision(user_id: str, amount: int, key: Optional[str] = None) -> tuple[Callable[[Snapshot], Change], list[str]]:
    """A spend's decision (permanent credits first) and the documents it reads."""
    request = SpendRequest(user_id, amount, "test spend", key)
    reads = [request.command.path] if key else []
    return (lambda snap: decide_spend(snap, request, SpendOrder.PERMANENT_FIRST)), reads


def as_another_instance(change: Callable[[], T]) -> T:
    """Run `change` as another instance would: its own versions cache, none of this one's locks.

    Call store functions that take no lock (`commit._change_user`), so it can run while this
    instance holds the user's lock, e.g. between one of its reads and its commit.
    """
    theirs = known.KnownUsers()
    ours = known.known_users
    known.known_users = lambda: theirs
    try:
        return change()
    finally:
        known.known_users = ours


def another_instance_spends(user_id: str, amount: int, key: Optional[str] = None):
    decide, reads = spend_decision(user_id, amount, key)
    return as_another_instance(lambda: commit._change_user(user_id, decide, reads, "spend"))


def another_instance_grants(user_id: str, permanent: int) -> None:
    as_another_instance(lambda: commit._change_user(user_id, grant_decision(user_id, permanent), [], "seed"))


def seed(user_id: str, permanent: int) -> None:
    """Give a user permanent credits, with their record, through the store (this instance)."""
    commit.change_user(user_id, grant_decision(user_id, permanent), operation="seed")


def grant_decision(user_id: str, permanent: int) -> Callable[[Snapshot], Change[None]]:
    entries = [accounts.grant(TransactionType.PROMO_GRANT, permanent, "seed", CreditPool.PERMANENT)]

    def decide(snap: Snapshot) -> Change[None]:
        account, migration = accounts.migrate(snap.account)
        return Change(result=None, account=accounts.apply(account, entries),
                      records=ledger_records.records(user_id, migration + entries, "seed", snap.now,
                                                     at=snap.position))

    return decide
