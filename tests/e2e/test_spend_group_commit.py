"""Spends for one user queued in one instance are committed together (`shared/store/group.py`).

Each test holds the user's lock while its spends queue up behind it, so the one that takes the
lock next finds all of them: the group is then exactly the spends the test queued.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.api_core import exceptions as gexc

from shared.common.errors import InsufficientCredits, Unavailable
from shared.ledger import collections
from shared.spending import service as spending
from shared.store import commit, group, known, wire
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc


@pytest.fixture
def commits(db, monkeypatch):
    """The number of credit commits sent, and a hook to change what the next one does."""
    real_commit = wire.Batch.commit
    state = {"count": 0, "next": None}

    def counted(self, *args, **kwargs):
        state["count"] += 1
        mode, state["next"] = state["next"], None
        if mode == "reply lost":
            real_commit(self, *args, **kwargs)
            raise gexc.DeadlineExceeded("the reply did not come in time")
        if mode == "held":
            raise gexc.DeadlineExceeded("the commit is held in the connection")
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(wire.Batch, "commit", counted)
    return state


def queued(user_id: str, spends: list[tuple[int, str]], before_release=lambda: None):
    """Run `spends` (amount, key) at once for `user_id`, all queued before any is served."""
    with ThreadPoolExecutor(len(spends)) as pool:
        with commit._stripe(user_id):
            futures = [pool.submit(spending.spend, user_id, amount, "queued", key) for amount, key in spends]
            deadline = time.monotonic() + 10
            while len(group._queues.get(user_id, [])) < len(spends):
                assert time.monotonic() < deadline, "the spends did not queue"
                time.sleep(0.005)
            before_release()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=30))
            except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
                outcomes.append(exc)
    return outcomes


def spends_of(db, user_id: str) -> list[int]:
    return sorted(-r["amount"] for r in records_of(db, user_id) if r["type"] == "spent")


def test_eight_spends_queued_for_one_user_are_made_in_one_commit(db, commits):
    seed("gus", permanent=100)
    spending.spend("gus", 1, "warm", "gus-warm")
    commits["count"] = 0
    outcomes = queued("gus", [(5, f"gus-{i}") for i in range(8)])
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert commits["count"] == 1
    assert sorted(o.body["balance"]["credits_permanent"] for o in outcomes) == [59 + 5 * i for i in range(8)]
    assert user_doc(db, "gus")["credits_permanent"] == 59
    assert spends_of(db, "gus") == [1] + [5] * 8
    assert_ledger_invariant(db, "gus")
    # One commit, yet each spend has its own place in the ledger, in the order they were decided
    # (each saw the balance the one before left), and its records come after theirs in time.
    answered = sorted((o.body["transactions"][0] for o in outcomes), key=lambda t: t["seq"])
    assert [t["seq"] for t in answered] == list(range(3, 11))
    assert [t["balance_after"]["credits_permanent"] for t in answered] == [94 - 5 * i for i in range(8)]
    assert len({t["created_at"] for t in answered}) == 8
    assert [t["created_at"] for t in answered] == sorted(t["created_at"] for t in answered)


def test_a_spend_the_pools_cannot_cover_is_refused_and_the_rest_of_its_group_is_made(db, commits):
    seed("hal", permanent=10)
    outcomes = queued("hal", [(6, "hal-1"), (6, "hal-2"), (3, "hal-3")])
    assert isinstance(outcomes[1], InsufficientCredits), outcomes
    assert [o.body["balance"]["credits_permanent"] for o in (outcomes[0], outcomes[2])] == [4, 1]
    assert user_doc(db, "hal")["credits_permanent"] == 1
    assert spends_of(db, "hal") == [3, 6]
    assert_ledger_invariant(db, "hal")


def test_the_same_key_twice_in_one_group_is_spent_once(db, commits):
    seed("ida", permanent=20)
    outcomes = queued("ida", [(4, "ida-same"), (4, "ida-same"), (2, "ida-other")])
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert sorted(o.replayed for o in outcomes[:2]) == [False, True]
    assert user_doc(db, "ida")["credits_permanent"] == 14
    assert spends_of(db, "ida") == [2, 4]
    assert_ledger_invariant(db, "ida")


def test_a_group_decided_from_a_version_another_instance_moved_is_decided_again(db, commits):
    seed("jay", permanent=50)
    spending.spend("jay", 5, "warm", "jay-warm")  # this instance now knows jay's version

    def another_instance_spends():
        # A write this instance does not see: its known version of jay is now stale.
        with known_users_of_another_instance():
            spending.spend("jay", 10, "elsewhere", "jay-elsewhere")

    outcomes = queued("jay", [(3, "jay-1"), (3, "jay-2")], before_release=another_instance_spends)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert user_doc(db, "jay")["credits_permanent"] == 29
    assert spends_of(db, "jay") == [3, 3, 5, 10]
    assert_ledger_invariant(db, "jay")


class known_users_of_another_instance:
    """Run a block as another instance: its own cache of versions, and not behind this one's lock."""

    def __enter__(self):
        self.saved = known.known_users
        other = known.KnownUsers()
        known.known_users = lambda: other
        self.saved_group_max, group.GROUP_MAX = group.GROUP_MAX, 1
        self.saved_stripe, commit._stripe = commit._stripe, lambda _user: threading.Lock()
        return self

    def __exit__(self, *exc):
        known.known_users = self.saved
        group.GROUP_MAX = self.saved_group_max
        commit._stripe = self.saved_stripe


def test_a_group_whose_reply_is_lost_is_answered_as_made_once(db, commits):
    seed("kim", permanent=30)
    commits["next"] = "reply lost"
    outcomes = queued("kim", [(2, "kim-1"), (3, "kim-2"), (4, "kim-3")])
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert user_doc(db, "kim")["credits_permanent"] == 21
    assert spends_of(db, "kim") == [2, 3, 4]
    assert_ledger_invariant(db, "kim")


def test_a_group_whose_commit_is_held_is_fenced_and_every_spend_in_it_answers_503(db, commits):
    seed("lou", permanent=30)
    commits["next"] = "held"
    outcomes = queued("lou", [(2, "lou-1"), (3, "lou-2")])
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    assert user_doc(db, "lou")["credits_permanent"] == 30
    assert spends_of(db, "lou") == []
    # The retries with the same keys are made once each.
    assert [spending.spend("lou", a, "again", k).body["balance"]["credits_permanent"]
            for a, k in ((2, "lou-1"), (3, "lou-2"))] == [28, 25]
    assert_ledger_invariant(db, "lou")


def test_many_spenders_on_one_user_never_overdraw_and_every_made_spend_is_in_the_ledger(db):
    seed("max", permanent=100)
    results: list = []

    def spender(_):
        for _ in range(6):
            try:
                results.append(spending.spend("max", 3, "race", uuid.uuid4().hex))
            except InsufficientCredits:
                results.append(None)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(spender, range(8)))
    made = [r for r in results if r is not None]
    assert len(made) == 33  # 100 // 3: every spend the pools could cover, and no more
    assert user_doc(db, "max")["credits_permanent"] == 1
    assert len(spends_of(db, "max")) == 33
    assert_ledger_invariant(db, "max")
    assert collections.user("max") in known.known_users()._entries


def test_queued_spends_after_a_hold_expired_give_it_back_once_before_spending(db, commits):
    from shared.spending import holds_service
    from shared.spending.holds import HoldRequest

    seed("ned", permanent=50)
    holds_service.hold(HoldRequest("ned", 20, "ned-job", "a long job", expires_in=1))
    time.sleep(1.2)
    outcomes = queued("ned", [(10, "ned-1"), (10, "ned-2"), (25, "ned-3")])
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert user_doc(db, "ned")["credits_permanent"] == 5
    assert db.document(collections.hold("ned-job")).get().to_dict()["status"] == "expired"
    assert sorted(r["amount"] for r in records_of(db, "ned") if r["type"] == "refund") == [20]
    assert user_doc(db, "ned")["open_holds"] == {}
    assert_ledger_invariant(db, "ned")
