"""The store's direct protobuf encoding means exactly what the Firestore library's would.

`shared/store/wire.py` builds commits and decodes reads without the library's proto-plus
wrappers. Each test builds the same writes both ways and compares the messages, byte for byte,
and decodes the same values both ways; no emulator is needed for that.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import write as write_types

from shared.store import wire

NOW = datetime(2026, 12, 1, 23, 59, 58, 123456, tzinfo=timezone.utc)
STAMP = DatetimeWithNanoseconds(2026, 12, 1, 12, 0, 0, nanosecond=123456789, tzinfo=timezone.utc)

# Every kind of value the credit path writes, and the edges of each.
DOCUMENTS = [
    {"user_id": "user-1", "credits_monthly": 0, "credits_permanent": 2**53, "total_earned": -5,
     "total_spent": 0, "last_updated": NOW, "change_id": "c" * 32},
    {"credits_owed": 7, "credits_owed_by": {"dp_1": 5, "ch_2": 2}, "empty_map": {}, "empty_list": []},
    {"nested": {"a": {"b": [1, "two", None, True, 2.5, {"c": NOW}]}}, "flag": False, "none": None},
    {"unicode": "naïve ✓ \U0001f600", "bytes": b"\x00\xff", "stamp": STAMP, "float": -0.0,
     "tuple": (1, 2), "big": 2**63 - 1, "small": -(2**63)},
    {"response": {"status": 200, "body": {"transactions": [{"amount": -3, "pool": "permanent"}]}}},
    {"naive_time": datetime(2026, 1, 1, 12, 0, 0), "later": NOW + timedelta(microseconds=1)},
]
# Values the library encodes itself, through this module's fallback.
LIBRARY_ONLY = [
    {"increment": firestore.Increment(3)},
    {"server_time": firestore.SERVER_TIMESTAMP, "plain": 1},
    {"point": firestore.GeoPoint(1.5, -2.5)},
    {"too_big": 2**64},
    {"a_set": {1, 2, 3}},
]


@pytest.fixture
def db():
    return firestore.Client(project="demo-wire", credentials=AnonymousCredentials())


def _library_writes(db, calls):
    batch = db.batch()
    for method, args in calls:
        getattr(batch, method)(*args)
    return [write_types.Write.pb(pb) for pb in batch._write_pbs]


def _wire_writes(db, calls):
    batch = wire.Batch(db)
    for method, args in calls:
        getattr(batch, method)(*args)
    return batch._writes


def _same(db, calls):
    try:
        theirs = _library_writes(db, calls)
    except (TypeError, ValueError) as refused:
        # What the library refuses to encode, this module refuses too, with the same error.
        with pytest.raises(type(refused)):
            _wire_writes(db, calls)
        return
    ours = _wire_writes(db, calls)
    assert [w.SerializeToString(deterministic=True) for w in ours] == \
        [w.SerializeToString(deterministic=True) for w in theirs]


@pytest.mark.parametrize("data", DOCUMENTS + LIBRARY_ONLY)
def test_a_create_is_encoded_exactly_as_the_library_encodes_it(db, data):
    _same(db, [("create", (db.document("users_credits/u1"), data))])


@pytest.mark.parametrize("data", DOCUMENTS + LIBRARY_ONLY)
def test_a_set_is_encoded_exactly_as_the_library_encodes_it(db, data):
    _same(db, [("set", (db.document("credits_transactions/t1"), data))])


@pytest.mark.parametrize("data", DOCUMENTS + LIBRARY_ONLY)
def test_an_update_conditioned_on_a_version_is_encoded_exactly_as_the_library_encodes_it(db, data):
    option = db.write_option(last_update_time=STAMP)
    _same(db, [("update", (db.document("users_credits/u1"), data, option))])


def test_an_update_that_deletes_a_field_lists_it_in_the_mask_only(db):
    ref = db.document("users_credits/legacy")
    data = {"credits_permanent": 10, "balance": firestore.DELETE_FIELD, "last_updated": NOW}
    _same(db, [("update", (ref, data, db.write_option(last_update_time=STAMP)))])
    write = _wire_writes(db, [("update", (ref, data, None))])[0]
    assert "balance" in write.update_mask.field_paths and "balance" not in write.update.fields


def test_an_update_without_an_option_requires_the_document_to_exist(db):
    _same(db, [("update", (db.document("users_credits/u1"), {"a": 1}, None))])
    _same(db, [("update", (db.document("users_credits/u1"), {"a": 1}, db.write_option(exists=False)))])


def test_an_update_of_a_dotted_field_path_is_left_to_the_library(db):
    _same(db, [("update", (db.document("users_credits/u1"), {"credits_owed_by.dp_1": 3, "`odd name`": 1}, None))])


def test_deletes_and_a_mixed_batch_keep_their_order_and_meaning(db):
    a, b, c = db.document("holds/h1"), db.document("users_credits/u2"), db.document("spend_keys/k")
    _same(db, [
        ("create", (c, {"response": {"ok": True}})),
        ("update", (b, {"credits_monthly": 4}, db.write_option(last_update_time=STAMP))),
        ("delete", (a,)),
        ("delete", (a, db.write_option(exists=True))),
        ("set", (a, DOCUMENTS[2])),
    ])


def test_an_empty_update_is_refused_as_the_library_refuses_it(db):
    with pytest.raises(ValueError):
        wire.Batch(db).update(db.document("users_credits/u1"), {})


@pytest.mark.parametrize("data", DOCUMENTS + [{"point": firestore.GeoPoint(1.5, -2.5)}])
def test_a_read_document_decodes_to_the_values_the_library_decodes(db, data):
    fields = _helpers.encode_dict(data)
    document = document_types.Document(name=db.document("c/d")._document_path, fields=fields,
                                       update_time=STAMP.timestamp_pb())
    snapshot = wire.Snapshot(db.document("c/d"), document_types.Document.pb(document), db)
    theirs = _helpers.decode_dict(fields, db)
    ours = snapshot.to_dict()
    assert ours == theirs
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert snapshot.exists and snapshot.update_time == STAMP
    assert snapshot.update_time.nanosecond == STAMP.nanosecond
    assert snapshot.to_dict() is not ours, "each call gives a fresh dict the caller may change"


def test_an_absent_document_reads_as_absent(db):
    snapshot = wire.Snapshot(db.document("c/d"), None, db)
    assert not snapshot.exists and snapshot.update_time is None and snapshot.to_dict() is None
