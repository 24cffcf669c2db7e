"""The commit pipeline of the store (`shared.store`), branch by branch, on the in-memory Firestore.

Every test runs the real store code; only Firestore is the fake (`tests.support.fake_firestore`),
which places each fault (a writer between a read and a commit, a lost reply, a held commit, an
outage) exactly where the branch under test needs it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.api_core import exceptions as gexc

from shared.common import ids
from shared.common.errors import InsufficientCredits, Unavailable
from shared.ledger import collections
from shared.promotions import service as promo_service
from shared.promotions.schemas import PromoMessage
from shared.spending import service as spending
from shared.store import commit, group
from shared.store.batch import change_users
from shared.store.outcome import OutcomeUnknown
from tests.support.fake_ledger import (
    another_instance_grants,
    another_instance_spends,
    assert_pools_match_records,
    balance,
    records,
    seed,
    spend_decision,
)


def spend(user_id, amount, key=None, cached=False):
    decide, reads = spend_decision(user_id, amount, key)
    return commit.change_user(user_id, decide, reads=reads, operation="spend", cached=cached)


def counting(decide, seen):
    """`decide`, noting the permanent credits each decision saw."""
    def run(snap):
        seen.append(snap.account.permanent)
        return decide(snap)

    return run


class Calls:
    """Reads and commits the fake received since it was made."""

    def __init__(self, fake) -> None:
        self.fake = fake
        self.reads0, self.commits0, self.landed0 = fake.reads, fake.commits, fake.landed

    @property
    def reads(self) -> int:
        return self.fake.reads - self.reads0

    @property
    def commits(self) -> int:
        return self.fake.commits - self.commits0

    @property
    def landed(self) -> int:
        return self.fake.landed - self.landed0


# -- one user: read, decide, commit -------------------------------------------------------------


def test_a_change_commits_its_records_marker_and_user_document_in_one_commit(fake_db):
    seed("ann", 10)
    calls = Calls(fake_db)
    result = spend("ann", 4, key="k1")
    assert result.body["balance"]["balance"] == 6
    assert (calls.reads, calls.commits) == (1, 1)
    [record] = records(fake_db, "ann", "spent")
    assert record["amount"] == -4 and record["source"] == "k1"
    paths = [collections.user("ann"), collections.spend_key("k1"), collections.transaction(record["transaction_id"])]
    assert all(fake_db.doc(path) is not None for path in paths)
    assert len({fake_db.update_time(path) for path in paths}) == 1  # written by one commit
    assert_pools_match_records(fake_db, "ann")


def test_a_change_that_writes_nothing_commits_nothing(fake_db):
    seed("ann", 10)
    spend("ann", 4, key="k1")
    calls = Calls(fake_db)
    assert spend("ann", 4, key="k1").replayed
    assert (calls.reads, calls.commits) == (1, 0)
    assert balance(fake_db, "ann") == 6


def test_a_lost_race_is_decided_again_from_a_fresh_read(fake_db, quick_retries):
    seed("ann", 10)
    decide, reads = spend_decision("ann", 3, key="mine")
    seen = []
    fake_db.before_next_commit(lambda: another_instance_spends("ann", 6, key="theirs"))
    calls = Calls(fake_db)
    result = commit.change_user("ann", counting(decide, seen), reads=reads)
    assert seen == [10, 4]  # decided again on what the other writer left
    assert result.body["balance"]["balance"] == 1
    assert (calls.commits, calls.landed) == (3, 2)  # ours refused, theirs, ours again
    assert [r["amount"] for r in records(fake_db, "ann", "spent", "mine")] == [-3]
    assert_pools_match_records(fake_db, "ann")


def test_a_lost_race_decided_again_may_refuse_and_then_nothing_of_it_is_written(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.before_next_commit(lambda: another_instance_spends("ann", 6, key="theirs"))
    with pytest.raises(InsufficientCredits):
        spend("ann", 6, key="mine")
    assert records(fake_db, "ann", "spent", "mine") == []
    assert fake_db.doc(collections.spend_key("mine")) is None
    assert balance(fake_db, "ann") == 4


def test_when_the_race_budget_runs_out_the_answer_is_unavailable_and_nothing_is_written(fake_db, quick_retries, monkeypatch):
    # A clock that moves one second each time the budget is looked at: 3 s allow 4 attempts.
    ticks = iter(range(1000))
    monkeypatch.setattr(commit, "RACE_BUDGET_S", 3.0)
    monkeypatch.setattr(commit, "time", SimpleNamespace(monotonic=lambda: float(next(ticks)), sleep=lambda s: None))
    seed("ann", 10)
    losses = []

    def interfere():
        losses.append(1)
        fake_db.client.document(collections.user("ann")).update({"touched": len(losses)})
        fake_db.before_next_commit(interfere)  # and again before the next commit, for good

    fake_db.before_next_commit(interfere)
    with pytest.raises(Unavailable) as raised:
        spend("ann", 5, key="mine")
    fake_db.before_next_commit(lambda: None)  # disarm
    assert not isinstance(raised.value, OutcomeUnknown)
    assert len(losses) == 4
    assert records(fake_db, "ann", "spent", "mine") == []
    assert fake_db.doc(collections.spend_key("mine")) is None
    assert balance(fake_db, "ann") == 10


def test_a_read_that_finds_firestore_unavailable_answers_unavailable_and_writes_nothing(fake_db):
    seed("ann", 10)
    fake_db.unavailable(times=1, commits=False)
    calls = Calls(fake_db)
    with pytest.raises(Unavailable):
        spend("ann", 4, key="k1")
    assert (calls.reads, calls.commits) == (1, 0)
    assert balance(fake_db, "ann") == 10


def test_a_commit_refused_as_unavailable_is_fenced_and_answered_unavailable(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.unavailable(times=1, reads=False)
    with pytest.raises(Unavailable) as raised:
        spend("ann", 4, key="k1")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert records(fake_db, "ann", "spent") == []
    assert balance(fake_db, "ann") == 10


# -- a commit whose reply was lost --------------------------------------------------------------


def test_a_lost_reply_whose_commit_landed_is_answered_as_made_and_written_once(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.lose_reply_of_next_commit()
    result = spend("ann", 4, key="k1")
    assert not result.replayed and result.body["balance"]["balance"] == 6
    assert [r["amount"] for r in records(fake_db, "ann", "spent", "k1")] == [-4]
    assert balance(fake_db, "ann") == 6
    assert spend("ann", 4, key="k1").replayed  # the caller's retry replays it


@pytest.mark.parametrize("error", [gexc.Cancelled, gexc.ServiceUnavailable, gexc.InternalServerError])
def test_a_commit_whose_reply_is_cancelled_or_refused_after_it_landed_is_judged_by_its_witness(
        fake_db, quick_retries, error):
    seed("ann", 10)
    fake_db.lose_reply_of_next_commit(error)
    result = spend("ann", 4, key="k1")
    assert result.body["balance"]["balance"] == 6
    assert [r["amount"] for r in records(fake_db, "ann", "spent", "k1")] == [-4]


def test_a_held_commit_is_fenced_answered_unavailable_and_never_lands_later(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.hold_next_commit()
    with pytest.raises(Unavailable) as raised:
        spend("ann", 4, key="k1")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert records(fake_db, "ann", "spent") == [] and fake_db.doc(collections.spend_key("k1")) is None
    [late] = fake_db.release_held()
    assert isinstance(late, gexc.FailedPrecondition)  # the fence moved the version it was conditioned on
    assert records(fake_db, "ann", "spent") == [] and balance(fake_db, "ann") == 10
    assert spend("ann", 4, key="k1").body["balance"]["balance"] == 6  # the caller's retry spends once
    assert len(records(fake_db, "ann", "spent")) == 1


def test_a_held_commit_that_would_create_the_user_is_fenced_by_creating_the_user_first(fake_db, quick_retries):
    fake_db.hold_next_commit()
    with pytest.raises(Unavailable):
        seed("new", 5)
    assert fake_db.doc(collections.user("new")) is not None and balance(fake_db, "new") == 0
    [late] = fake_db.release_held()
    assert isinstance(late, gexc.AlreadyExists)
    assert records(fake_db, "new") == [] and balance(fake_db, "new") == 0


def test_a_commit_whose_reply_is_lost_while_another_writer_moved_the_user_is_decided_again(fake_db, quick_retries):
    seed("ann", 10)
    decide, reads = spend_decision("ann", 3, key="mine")
    seen = []
    fake_db.before_next_commit(lambda: another_instance_spends("ann", 6, key="theirs"))
    fake_db.hold_next_commit()
    result = commit.change_user("ann", counting(decide, seen), reads=reads)
    assert seen == [10, 4]
    assert result.body["balance"]["balance"] == 1
    [late] = fake_db.release_held()
    assert isinstance(late, gexc.FailedPrecondition)
    assert [r["amount"] for r in records(fake_db, "ann", "spent", "mine")] == [-3]
    assert balance(fake_db, "ann") == 1
    assert_pools_match_records(fake_db, "ann")


def test_when_firestore_stays_down_while_a_lost_reply_is_resolved_the_outcome_is_unknown(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.before_next_commit(lambda: fake_db.unavailable(times=None))
    fake_db.hold_next_commit()
    with pytest.raises(OutcomeUnknown):
        spend("ann", 4, key="k1")
    fake_db.recover()
    # Nothing was fenced, so the held commit can still land: "not made" would have been untrue.
    [late] = fake_db.release_held()
    assert not isinstance(late, Exception)
    assert balance(fake_db, "ann") == 6 and len(records(fake_db, "ann", "spent", "k1")) == 1


# -- the known version: a commit without a read -------------------------------------------------


def test_a_change_decided_from_the_known_version_commits_with_no_read(fake_db):
    seed("ann", 10)  # read and written by this instance: its version is known
    calls = Calls(fake_db)
    assert spend("ann", 4, key="k1", cached=True).body["balance"]["balance"] == 6
    assert spend("ann", 1, cached=True).body["balance"]["balance"] == 5  # the version that commit wrote
    assert (calls.reads, calls.commits) == (0, 2)
    assert_pools_match_records(fake_db, "ann")


def test_a_stale_known_version_is_refused_and_the_change_is_read_and_decided_again(fake_db):
    seed("ann", 10)
    another_instance_spends("ann", 6)
    calls = Calls(fake_db)
    assert spend("ann", 3, key="k1", cached=True).body["balance"]["balance"] == 1
    assert (calls.reads, calls.commits, calls.landed) == (1, 2, 1)
    assert [r["amount"] for r in records(fake_db, "ann", "spent", "k1")] == [-3]
    assert_pools_match_records(fake_db, "ann")


def test_a_refusal_decided_from_a_known_version_is_decided_again_from_a_read(fake_db):
    seed("ann", 2)
    another_instance_grants("ann", 8)
    calls = Calls(fake_db)
    assert spend("ann", 5, key="k1", cached=True).body["balance"]["balance"] == 5
    assert (calls.reads, calls.commits) == (1, 1)


def test_a_known_version_whose_commit_reply_was_lost_after_landing_is_answered_as_made(fake_db, quick_retries):
    seed("ann", 10)
    fake_db.lose_reply_of_next_commit()
    assert spend("ann", 4, key="k1", cached=True).body["balance"]["balance"] == 6
    assert len(records(fake_db, "ann", "spent", "k1")) == 1 and balance(fake_db, "ann") == 6


def test_a_user_with_no_known_version_is_read(fake_db):
    calls = Calls(fake_db)
    with pytest.raises(InsufficientCredits):
        spend("nobody", 1, cached=True)
    assert (calls.reads, calls.commits) == (1, 0)


# -- group commit -------------------------------------------------------------------------------


def queue(user_id, *decisions):
    """Put changes in the user's queue, as callers waiting on the user's lock would have."""
    asks = [group._Ask(decide, reads) for decide, reads in decisions]
    with group._queues_lock:
        group._queues.setdefault(user_id, []).extend(asks)
    return asks


def test_spends_queued_for_one_user_are_committed_together_in_one_commit(fake_db):
    seed("ann", 10)
    waiting = queue("ann", *(spend_decision("ann", 1, key=f"q{n}") for n in range(3)))
    calls = Calls(fake_db)
    last = spending.spend("ann", 2, idempotency_key="q3")
    assert (calls.reads, calls.commits) == (0, 1)
    assert all(ask.done.is_set() and ask.error is None for ask in waiting)
    assert [ask.result.body["balance"]["balance"] for ask in waiting] == [9, 8, 7]
    assert last.body["balance"]["balance"] == 5
    assert all(fake_db.doc(collections.spend_key(f"q{n}")) for n in range(4))
    assert len(records(fake_db, "ann", "spent")) == 4
    assert_pools_match_records(fake_db, "ann")


def test_a_group_read_first_when_no_version_is_known(fake_db):
    another_instance_grants("ann", 10)
    waiting = queue("ann", spend_decision("ann", 1, key="q0"))
    calls = Calls(fake_db)
    spending.spend("ann", 2, idempotency_key="q1")
    assert (calls.reads, calls.commits) == (1, 1)
    assert waiting[0].error is None and balance(fake_db, "ann") == 7


def test_a_group_whose_commit_is_refused_is_done_change_by_change(fake_db):
    seed("ann", 10)
    another_instance_spends("ann", 4)  # this instance's known version is now stale
    waiting = queue("ann", spend_decision("ann", 1, key="q0"), spend_decision("ann", 1, key="q1"))
    last = spending.spend("ann", 1, idempotency_key="q2")
    assert all(ask.error is None for ask in waiting)
    assert last.body["balance"]["balance"] == 3
    assert len(records(fake_db, "ann", "spent")) == 4
    assert_pools_match_records(fake_db, "ann")


def test_a_group_whose_commit_is_held_is_fenced_and_every_change_in_it_hears_unavailable(fake_db, quick_retries):
    seed("ann", 10)
    waiting = queue("ann", spend_decision("ann", 1, key="q0"))
    fake_db.hold_next_commit()
    with pytest.raises(Unavailable):
        spending.spend("ann", 2, idempotency_key="q1")
    assert isinstance(waiting[0].error, Unavailable)
    [late] = fake_db.release_held()
    assert isinstance(late, gexc.FailedPrecondition)
    assert records(fake_db, "ann", "spent") == [] and balance(fake_db, "ann") == 10


def test_a_group_whose_reply_was_lost_after_landing_answers_every_change_as_made(fake_db, quick_retries):
    seed("ann", 10)
    waiting = queue("ann", spend_decision("ann", 1, key="q0"))
    fake_db.lose_reply_of_next_commit()
    assert spending.spend("ann", 2, idempotency_key="q1").body["balance"]["balance"] == 7
    assert waiting[0].error is None
    assert len(records(fake_db, "ann", "spent")) == 2 and balance(fake_db, "ann") == 7


# -- many users in batched commits --------------------------------------------------------------


def grant_items(grant_id, user_ids, amount=5):
    message = PromoMessage(grant_id=grant_id, user_ids=user_ids, amount=amount)
    return [promo_service._user_change(message, user_id) for user_id in user_ids]


def grant_records(fake, user_id, grant_id):
    return records(fake, user_id, "promo_grant", grant_id)


def test_users_changed_together_share_one_read_and_one_commit(fake_db):
    for user_id in ("a", "b", "c"):
        seed(user_id, 1)
    calls = Calls(fake_db)
    results = change_users(grant_items("g", ["a", "b", "c"]))
    assert results == [promo_service.GRANTED] * 3
    assert (calls.reads, calls.commits) == (1, 1)
    for user_id in ("a", "b", "c"):
        assert balance(fake_db, user_id) == 6 and len(grant_records(fake_db, user_id, "g")) == 1


def test_a_batch_meeting_a_change_already_made_is_redone_user_by_user(fake_db):
    change_users(grant_items("g", ["b"]))
    results = change_users(grant_items("g", ["a", "b", "c"]))
    assert results == [promo_service.GRANTED, promo_service.ALREADY_GRANTED, promo_service.GRANTED]
    for user_id in ("a", "b", "c"):
        assert len(grant_records(fake_db, user_id, "g")) == 1 and balance(fake_db, user_id) == 5


def test_batches_hold_whole_users_within_the_write_limit(fake_db):
    calls = Calls(fake_db)
    # Two users of two writes each and the commit's witness fit in 5 writes.
    change_users(grant_items("g", ["a", "b", "c"]), max_writes=5)
    assert calls.commits == 2
    assert all(size <= 5 for size in fake_db.sizes)
    assert all(balance(fake_db, user_id) == 5 for user_id in ("a", "b", "c"))


def test_new_users_are_created_with_no_read(fake_db):
    calls = Calls(fake_db)
    results = change_users(grant_items("g", ["a", "b", "c"]), assume_absent=True)
    assert results == [promo_service.GRANTED] * 3
    assert (calls.reads, calls.commits) == (0, 1)
    assert all(balance(fake_db, user_id) == 5 for user_id in ("a", "b", "c"))


def test_assuming_absence_meets_an_existing_user_and_falls_back_to_reading(fake_db):
    seed("b", 3)
    met = []
    results = change_users(grant_items("g", ["a", "b", "c"]), assume_absent=True, on_existing=lambda: met.append(1))
    assert met == [1]
    assert results == [promo_service.GRANTED] * 3
    assert [balance(fake_db, user_id) for user_id in ("a", "b", "c")] == [5, 8, 5]
    for user_id in ("a", "b", "c"):
        assert len(grant_records(fake_db, user_id, "g")) == 1
        assert_pools_match_records(fake_db, user_id)


def test_a_held_batch_is_fenced_on_its_first_user_and_answered_unavailable(fake_db, quick_retries):
    fake_db.hold_next_commit()
    with pytest.raises(Unavailable) as raised:
        change_users(grant_items("g", ["a", "b", "c"]))
    assert not isinstance(raised.value, OutcomeUnknown)
    [late] = fake_db.release_held()
    assert isinstance(late, gexc.AlreadyExists)  # the fence created the first user
    assert all(grant_records(fake_db, user_id, "g") == [] for user_id in ("a", "b", "c"))
    assert change_users(grant_items("g", ["a", "b", "c"])) == [promo_service.GRANTED] * 3


def test_a_batch_whose_reply_was_lost_after_landing_is_answered_as_made(fake_db, quick_retries):
    fake_db.lose_reply_of_next_commit()
    assert change_users(grant_items("g", ["a", "b", "c"])) == [promo_service.GRANTED] * 3
    assert all(len(grant_records(fake_db, user_id, "g")) == 1 for user_id in ("a", "b", "c"))


def test_a_batch_commit_unavailable_is_answered_unavailable_and_a_redelivery_completes_it(fake_db, quick_retries):
    fake_db.unavailable(times=1, reads=False)
    with pytest.raises(Unavailable):
        change_users(grant_items("g", ["a", "b"]))
    assert change_users(grant_items("g", ["a", "b"])) == [promo_service.GRANTED] * 2
    assert all(len(grant_records(fake_db, user_id, "g")) == 1 for user_id in ("a", "b"))


def test_grant_record_ids_are_derived_from_the_grant_and_user(fake_db):
    change_users(grant_items("g", ["a"]))
    [record] = grant_records(fake_db, "a", "g")
    assert record["transaction_id"] == ids.grant_record_id("g", "a")
