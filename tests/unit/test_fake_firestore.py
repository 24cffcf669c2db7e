"""The in-memory Firestore keeps the rules its docstring states (those the store relies on)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.store import wire
from tests.support.fake_firestore import FakeFirestore


@pytest.fixture
def fake():
    return FakeFirestore()


def commit(fake, *writes):
    return fake.commit(request={"database": fake.client._database_string, "writes": list(writes)})


def update(fake, path, fields, mask=None, **precondition):
    """An `update` write of `fields` (with `mask`, if given, even an empty one) and a precondition."""
    write = wire._Write()
    write.update.CopyFrom(wire._document(fake.name(path), fields))
    if mask is not None:
        write.update_mask.SetInParent()
        write.update_mask.field_paths.extend(mask)
    for key, value in precondition.items():
        setattr(write.current_document, key, value)
    return write


def test_an_empty_update_mask_changes_nothing_and_keeps_the_update_time(fake):
    fake.put("c/d", {"a": 1})
    before = fake.update_time("c/d")
    response = commit(fake, update(fake, "c/d", {}, mask=[]))
    assert fake.doc("c/d") == {"a": 1} and fake.update_time("c/d") == before
    assert response.write_results[0].update_time == before


def test_a_write_that_leaves_the_document_as_it_was_keeps_its_update_time(fake):
    fake.put("c/d", {"a": 1})
    before = fake.update_time("c/d")
    fake.put("c/d", {"a": 1})
    assert fake.update_time("c/d") == before
    fake.put("c/d", {"a": 2})
    assert fake.update_time("c/d") > before


def test_a_mask_sets_the_fields_given_deletes_the_ones_missing_and_keeps_the_rest(fake):
    fake.put("c/d", {"a": 1, "b": 2, "c": 3})
    commit(fake, update(fake, "c/d", {"a": 10}, mask=["a", "b"]))
    assert fake.doc("c/d") == {"a": 10, "c": 3}


def test_update_times_increase_and_carry_microseconds_at_most(fake):
    times = []
    for n in range(5):
        fake.put("c/d", {"n": n})
        times.append(fake.update_time("c/d"))
    assert times == sorted(set(times))
    assert all(t.nanosecond % 1000 == 0 for t in times)


def test_preconditions_refuse_as_firestore_does_and_a_refused_commit_writes_nothing(fake):
    fake.put("c/d", {"a": 1})
    stamp = fake.update_time("c/d")
    with pytest.raises(gexc.AlreadyExists):
        commit(fake, update(fake, "c/new", {"x": 1}), update(fake, "c/d", {"a": 2}, exists=False))
    assert fake.doc("c/new") is None
    with pytest.raises(gexc.NotFound):
        commit(fake, update(fake, "c/missing", {"a": 2}, mask=["a"], exists=True))
    fake.put("c/d", {"a": 3})
    stale = update(fake, "c/d", {"a": 4}, mask=["a"])
    stale.current_document.update_time.FromDatetime(stamp)
    with pytest.raises(gexc.FailedPrecondition):
        commit(fake, stale)
    assert fake.doc("c/d") == {"a": 3}


def test_the_library_reads_and_writes_through_the_fake(fake):
    db = fake.client
    ref = db.document("c/d")
    ref.create({"n": 1, "m": {"k": 1}})
    ref.update({"m.k": firestore.Increment(2), "t": firestore.SERVER_TIMESTAMP})
    [snap] = db.get_all([ref])
    assert snap.to_dict()["m"] == {"k": 3} and snap.update_time == fake.update_time("c/d")
    ref.delete()
    assert fake.doc("c/d") is None


def test_a_torn_commit_is_stored_whole_but_read_in_part_until_its_callback_returns(fake):
    db = fake.client
    seen = {}

    def during():
        seen["read"] = {snap.reference.path: snap.to_dict() for snap in wire.get_all(db, [db.document("c/a"), db.document("c/b")])}
        seen["stored"] = fake.doc("c/b")

    fake.tear_next_commit(after_writes=1, during=during)
    commit(fake, update(fake, "c/a", {"v": 1}), update(fake, "c/b", {"v": 1}))
    assert seen["read"] == {"c/a": {"v": 1}, "c/b": None}
    assert seen["stored"] == {"v": 1}
    assert {snap.to_dict()["v"] for snap in wire.get_all(db, [db.document("c/a"), db.document("c/b")])} == {1}


def test_a_held_commit_lands_later_only_if_its_preconditions_still_hold(fake):
    fake.put("c/d", {"a": 1})
    write = update(fake, "c/d", {"a": 2}, mask=["a"])
    write.current_document.update_time.FromDatetime(fake.update_time("c/d"))
    fake.hold_next_commit()
    with pytest.raises(gexc.DeadlineExceeded):
        commit(fake, write)
    assert fake.doc("c/d") == {"a": 1}
    [landed] = fake.release_held()
    assert fake.doc("c/d") == {"a": 2} and not isinstance(landed, Exception)
    fake.hold_next_commit()
    with pytest.raises(gexc.DeadlineExceeded):
        commit(fake, write)
    [refused] = fake.release_held()
    assert isinstance(refused, gexc.FailedPrecondition)


def test_a_lost_reply_is_raised_after_the_commit_landed(fake):
    fake.lose_reply_of_next_commit()
    with pytest.raises(gexc.DeadlineExceeded):
        commit(fake, update(fake, "c/d", {"a": 1}))
    assert fake.doc("c/d") == {"a": 1}


def test_unavailable_calls_do_nothing(fake):
    fake.unavailable(times=2)
    with pytest.raises(gexc.ServiceUnavailable):
        commit(fake, update(fake, "c/d", {"a": 1}))
    with pytest.raises(gexc.ServiceUnavailable):
        wire.get_all(fake.client, [fake.client.document("c/d")])
    assert fake.doc("c/d") is None
    commit(fake, update(fake, "c/d", {"a": 1}))
    assert (fake.reads, fake.commits, fake.landed) == (1, 2, 1)
