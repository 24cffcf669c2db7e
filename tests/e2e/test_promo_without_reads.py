"""Promo grants that skip reading their users: only users with no document are written unread.

`change_users(assume_absent=True)` creates each user document create-only with its record; any
user with a document (legacy, owing, any other) fails its batch, which is then read and decided.
"""

from __future__ import annotations

import pytest

from shared.common import ids
from shared.ledger import codec, collections
from shared.promotions import schemas
from shared.promotions import service as promo_service
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc
from tests.support.round_trips import counted


@pytest.fixture
def round_trips(db):
    """Counts the Firestore RPCs the store's client makes, by name."""
    with counted(db) as counts:
        yield counts


@pytest.fixture
def guess_new(monkeypatch):
    """The service expects new users (as after a message to new users)."""
    monkeypatch.setattr(promo_service, "_guess", promo_service._NewUsersGuess())


def grant(grant_id, users, amount):
    return promo_service.grant(schemas.PromoMessage(grant_id=grant_id, user_ids=users, amount=amount))


def test_a_grant_to_new_users_reads_nothing_and_writes_documents_with_every_required_field(db, round_trips,
                                                                                          guess_new):
    users = [f"fresh-{i:03d}" for i in range(300)]
    assert grant("welcome", users, 12).granted == 300
    assert dict(round_trips) == {"commit": 2}  # 600 writes: two batches, no read
    doc = user_doc(db, "fresh-000")
    assert {"user_id", "credits_monthly", "credits_permanent", "total_earned", "total_spent", "last_updated"} <= set(doc)
    assert (doc["user_id"], doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"]) == ("fresh-000", 0, 12, 12)
    for user in users[::50]:
        assert_ledger_invariant(db, user)


def test_a_legacy_document_in_a_grant_to_new_users_keeps_its_balance(db, guess_new):
    db.document(collections.user("old")).set({"user_id": "old", "balance": 70, "total_earned": 70})
    assert grant("mixed", ["new-1", "old", "new-2"], 15).granted == 3
    doc = user_doc(db, "old")
    assert "balance" not in doc and doc["credits_permanent"] == 85
    assert sorted((r["type"], r["amount"]) for r in records_of(db, "old")) == [("migration", 70), ("promo_grant", 15)]
    assert user_doc(db, "new-2")["credits_permanent"] == 15
    for user in ("new-1", "old", "new-2"):
        assert_ledger_invariant(db, user)


def test_a_user_who_owes_pays_the_debt_from_a_grant_that_tried_to_skip_the_read(db, guess_new):
    seed("owes", permanent=0)
    db.document(collections.user("owes")).update({codec.CREDITS_OWED: 10, codec.CREDITS_OWED_BY: {"ch_1": 10}})
    assert grant("debt", ["someone-new", "owes"], 25).granted == 2
    doc = user_doc(db, "owes")
    assert (doc["credits_permanent"], doc[codec.CREDITS_OWED]) == (15, 0)
    assert_ledger_invariant(db, "owes")


def test_a_redelivered_grant_to_new_users_grants_nobody_twice(db, guess_new):
    users = [f"again-{i}" for i in range(20)]
    assert grant("twice", users, 5).granted == 20
    outcome = grant("twice", users, 5)
    assert (outcome.granted, outcome.already_granted) == (0, 20)
    for user in users:
        records = [r for r in records_of(db, user) if r["source"] == "twice"]
        assert [r["amount"] for r in records] == [5]
        assert r_id(user) == records[0]["transaction_id"]


def test_after_meeting_existing_users_the_next_message_reads_first(db, round_trips, guess_new):
    users = [f"known-{i}" for i in range(10)]
    for user in users:
        seed(user, permanent=1)
    grant("first", users, 3)  # tries unread, meets existing users, reads
    round_trips.clear()
    grant("second", users, 3)
    assert round_trips["batch_get_documents"] == 1 and round_trips["commit"] == 1
    assert all(user_doc(db, user)["credits_permanent"] == 7 for user in users)


def r_id(user):
    return ids.grant_record_id("twice", user)
