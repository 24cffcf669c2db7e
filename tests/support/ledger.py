"""Test helpers over the real emulator: seed credits the way the system writes them, dump the
whole database, and check the ledger invariant."""

from __future__ import annotations

from typing import Any, Optional

from google.cloud.firestore_v1.base_query import FieldFilter

from shared.ledger import accounts, change, collections, records
from shared.ledger.models import CreditPool, TransactionType
from shared.store import commit


def seed(user_id: str, monthly: int = 0, permanent: int = 0) -> None:
    """Give a user credits through the store, each grant with its record, as a real grant would."""
    entries = []
    if monthly:
        entries.append(accounts.grant(TransactionType.SUBSCRIPTION_GRANT, monthly, "seed", CreditPool.MONTHLY))
    if permanent:
        entries.append(accounts.grant(TransactionType.PROMO_GRANT, permanent, "seed", CreditPool.PERMANENT))

    def decide(snap: change.Snapshot) -> change.Change[None]:
        account, migration = accounts.migrate(snap.account)
        return change.Change(
            result=None,
            account=accounts.apply(account, entries),
            records=records.records(user_id, migration + entries, "seed", snap.now, at=snap.position),
        )

    commit.change_user(user_id, decide, operation="seed")


def dump(db, journal: bool = True) -> dict[str, dict[str, Any]]:
    """Every document in the database, by path (top-level collections are all this system uses).

    `journal=False` leaves out the Stripe events' journal, which every delivery updates."""
    return {
        snap.reference.path: snap.to_dict()
        for collection in db.collections()
        if journal or collection.id != collections.WEBHOOK_EVENTS
        for snap in collection.stream()
    }


def journal(db) -> dict[str, dict[str, Any]]:
    """The Stripe events' journal, by event id."""
    return {snap.id: snap.to_dict() for snap in db.collection(collections.WEBHOOK_EVENTS).stream()}


def attempts(db, user_id: Optional[str] = None) -> dict[str, dict[str, Any]]:
    """Auto top-up attempts (`credits_topups`), by attempt id; of one user if named."""
    query = db.collection(collections.TOPUPS)
    if user_id is not None:
        query = query.where(filter=FieldFilter("user_id", "==", user_id))
    return {snap.id: snap.to_dict() for snap in query.stream()}


def records_of(db, user_id: str) -> list[dict[str, Any]]:
    return [
        snap.to_dict()
        for snap in db.collection(collections.TRANSACTIONS).where(filter=FieldFilter("user_id", "==", user_id)).stream()
    ]


def user_doc(db, user_id: str) -> Optional[dict[str, Any]]:
    snap = db.collection(collections.USERS).document(user_id).get()
    return snap.to_dict() if snap.exists else None


def assert_ledger_invariant(db, user_id: str) -> None:
    """The ledger invariant of CONTRACT section 2 for one user, as stored (`assert_ledger_of`)."""
    assert_ledger_of(user_doc(db, user_id), records_of(db, user_id))


def assert_ledger_of(doc: Optional[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    """Each pool equals the sum of the user's records in that pool, no record is zero; the
    records are numbered 1..n (`seq`, no gap, no repeat), and walking them in `seq` order each
    `balance_after` is the running sums so far, the last one the document's pools, whose
    `last_seq` is n."""
    doc = doc or {}
    sums = {"monthly": 0, "permanent": 0}
    for record in records:
        assert record["amount"] != 0, record
        assert isinstance(record["amount"], int), record
        sums[record["pool"]] += record["amount"]
    assert doc.get("credits_monthly", 0) == sums["monthly"], (doc, sums)
    assert doc.get("credits_permanent", 0) == sums["permanent"], (doc, sums)
    assert doc.get("credits_monthly", 0) >= 0 and doc.get("credits_permanent", 0) >= 0, doc
    assert all(isinstance(record.get("seq"), int) for record in records), "a record without seq"
    ordered = sorted(records, key=lambda record: record["seq"])
    assert [record["seq"] for record in ordered] == list(range(1, len(records) + 1)), \
        [record["seq"] for record in ordered]
    running = {"monthly": 0, "permanent": 0}
    for record in ordered:
        running[record["pool"]] += record["amount"]
        assert record.get("balance_after") == {"credits_monthly": running["monthly"],
                                               "credits_permanent": running["permanent"]}, (record, running)
    if doc:
        assert doc.get("last_seq", 0) == len(records), (doc.get("last_seq"), len(records))
