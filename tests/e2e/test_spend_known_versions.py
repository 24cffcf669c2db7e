"""Spends decided from the version of the user this instance last saw, with two instances.

Each instance keeps its own cache of user versions (`shared/store/known.py`); here two caches
stand for two instances writing the same user. Whatever a cache holds, a spend is answered
as a read would have answered it: never an overdraft, never a wrong replay or refusal.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter

import pytest
from google.api_core import exceptions as gexc

from shared.common.errors import IdempotencyConflict, InsufficientCredits, Unavailable
from shared.ledger import collections
from shared.spending import service as spending
from shared.store import commit, known, wire
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc
from tests.support.round_trips import counted


class Instances:
    """Two caches of user versions; `use(name)` makes one of them the running instance's."""

    def __init__(self, monkeypatch) -> None:
        self.caches = {"a": known.KnownUsers(), "b": known.KnownUsers()}
        self.current = "a"
        monkeypatch.setattr(known, "known_users", lambda: self.caches[self.current])

    def use(self, name: str) -> "Instances":
        self.current = name
        return self


@pytest.fixture
def instances(db, monkeypatch):
    return Instances(monkeypatch)


@pytest.fixture
def round_trips(db):
    """Counts the Firestore RPCs the store's client makes, by name."""
    with counted(db) as counts:
        yield counts


def test_a_spend_for_a_user_this_instance_served_last_costs_one_commit_and_no_read(instances, db, round_trips):
    seed("una", permanent=100)
    spending.spend("una", 10, "first", "una-1")
    round_trips.clear()
    result = spending.spend("una", 10, "second", "una-2")
    assert dict(round_trips) == {"commit": 1}
    assert result.body["balance"]["credits_permanent"] == 80
    assert user_doc(db, "una")["credits_permanent"] == 80
    assert_ledger_invariant(db, "una")


def test_the_cached_version_is_exactly_what_a_read_shows(instances, db):
    db.document(collections.user("lee")).set({"balance": 40, "total_earned": 40, "nickname": "kept"})
    spending.spend("lee", 5)  # migrates the legacy balance: the commit deletes a field
    spending.spend("lee", 5)
    snap = db.document(collections.user("lee")).get()
    seen = known.known_users().get(snap.reference.path)
    assert seen.update_time == snap.update_time
    assert seen.data == snap.to_dict()
    assert "balance" not in seen.data and seen.data["nickname"] == "kept"


def test_a_stale_cache_costs_one_refused_commit_and_one_read_and_loses_nothing(instances, db, round_trips):
    seed("vic", permanent=100)
    spending.spend("vic", 10)  # instance a knows vic at 90
    instances.use("b")
    spending.spend("vic", 30)  # instance b moves vic to 60
    instances.use("a")
    round_trips.clear()
    result = spending.spend("vic", 10)
    assert dict(round_trips) == {"commit": 2, "batch_get_documents": 1}
    assert result.body["balance"]["credits_permanent"] == 50
    assert user_doc(db, "vic")["credits_permanent"] == 50
    assert_ledger_invariant(db, "vic")


def test_a_stale_cache_cannot_overdraw(instances, db):
    seed("wim", permanent=100)
    spending.spend("wim", 10)  # instance a knows wim at 90
    instances.use("b")
    spending.spend("wim", 85)  # 5 left
    instances.use("a")
    with pytest.raises(InsufficientCredits):
        spending.spend("wim", 50)  # 90 in a's cache, 5 in Firestore
    assert user_doc(db, "wim")["credits_permanent"] == 5
    assert_ledger_invariant(db, "wim")


def test_a_refusal_from_a_stale_cache_is_never_answered(instances, db):
    seed("xia", permanent=10)
    spending.spend("xia", 5)  # instance a knows xia at 5
    instances.use("b")
    seed("xia", permanent=100)  # instance b grants 100 more
    instances.use("a")
    result = spending.spend("xia", 50)  # a's cache says 5: the read says 105
    assert result.body["balance"]["credits_permanent"] == 55
    assert_ledger_invariant(db, "xia")


def test_a_key_used_by_another_instance_replays_its_answer_and_spends_nothing(instances, db):
    seed("yan", permanent=100)
    spending.spend("yan", 1)  # instance a knows yan
    instances.use("b")
    first = spending.spend("yan", 10, "lunch", "yan-key")
    instances.use("a")
    again = spending.spend("yan", 10, "lunch", "yan-key")
    assert again.replayed and again.body == first.body
    assert user_doc(db, "yan")["credits_permanent"] == 89
    assert_ledger_invariant(db, "yan")


def test_a_key_already_used_by_this_instance_is_refused_by_its_marker_and_replayed(instances, db, round_trips):
    seed("zed", permanent=100)
    first = spending.spend("zed", 10, "lunch", "zed-key")
    round_trips.clear()
    again = spending.spend("zed", 10, "lunch", "zed-key")
    # The cached decision's commit fails on the marker; the read then finds the key's answer.
    assert again.replayed and again.body == first.body
    assert round_trips["commit"] == 1 and round_trips["batch_get_documents"] == 1
    with pytest.raises(IdempotencyConflict):
        spending.spend("zed", 11, "lunch", "zed-key")
    assert user_doc(db, "zed")["credits_permanent"] == 90
    assert len([r for r in records_of(db, "zed") if r["type"] == "spent"]) == 1


def test_two_instances_spending_for_one_user_at_once_lose_no_update_and_never_overdraw(db, monkeypatch):
    seed("ori", permanent=500)
    caches = {name: known.KnownUsers() for name in ("a", "b")}
    local = threading.local()
    monkeypatch.setattr(known, "known_users", lambda: caches[local.name])
    # Separate instances share no lock: only the preconditions keep the spenders apart.
    monkeypatch.setattr(commit, "_stripe", lambda _user: contextlib.nullcontext())
    done = Counter()
    refused = Counter()

    def spender(name: str, n: int) -> None:
        local.name = name
        for i in range(n):
            key = f"ori-{name}-{threading.get_ident()}-{i}"
            while True:
                try:
                    if not spending.spend("ori", 7, "bench", key).replayed:
                        done[name] += 1
                    break
                except InsufficientCredits:
                    refused[name] += 1
                    break
                except Unavailable:
                    continue  # the caller retries with the same key

    threads = [threading.Thread(target=spender, args=(name, 40)) for name in ("a", "b") for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = sum(done.values())
    assert spent == 500 // 7  # 160 asked, 71 fit
    assert user_doc(db, "ori")["credits_permanent"] == 500 - 7 * spent
    assert_ledger_invariant(db, "ori")


def test_a_cached_spend_whose_reply_is_lost_is_resolved_against_the_cached_version(instances, db, monkeypatch):
    seed("pia", permanent=100)
    spending.spend("pia", 10)
    real_commit = wire.Batch.commit
    state = {"mode": "landed"}

    def lossy_commit(self, *args, **kwargs):
        mode, state["mode"] = state["mode"], None
        if mode == "landed":
            real_commit(self, *args, **kwargs)
            raise gexc.DeadlineExceeded("the reply did not come in time")
        if mode == "held":
            raise gexc.DeadlineExceeded("the reply did not come in time")
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(wire.Batch, "commit", lossy_commit)
    assert spending.spend("pia", 10).body["balance"]["credits_permanent"] == 80  # landed: answered as made
    state["mode"] = "held"
    with pytest.raises(Unavailable):
        spending.spend("pia", 10)  # not landed: fenced off, nothing written
    assert user_doc(db, "pia")["credits_permanent"] == 80
    assert spending.spend("pia", 10).body["balance"]["credits_permanent"] == 70
    assert_ledger_invariant(db, "pia")


def test_the_cache_of_versions_is_bounded_and_never_goes_back_in_time():
    cache = known.KnownUsers(max_users=2)
    cache.put("u/a", {"v": 2}, 2)
    cache.put("u/a", {"v": 1}, 1)
    assert cache.get("u/a").data == {"v": 2}
    cache.put("u/b", {"v": 1}, 1)
    cache.put("u/c", {"v": 1}, 1)
    assert len(cache) == 2 and cache.get("u/a") is None
    cache.put("u/b", None, None)
    assert cache.get("u/b") is None
