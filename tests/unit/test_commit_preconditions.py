"""Every document a decision read is a precondition of its commit, whatever the feature asks.

`pipeline.stage` builds the commit's writes; these tests read the protobufs it builds (no
emulator): each read document is written over the version read, created if it was absent,
deleted only at its version, or, if the change leaves it alone, verified by a write that
changes nothing; a document no decision read is the only one written without a condition.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from shared.common import settings
from shared.ledger import collections
from shared.ledger.accounts import Account, Entry
from shared.ledger.change import Change
from shared.ledger.models import CreditPool, TransactionType
from shared.ledger.records import Position, records
from shared.store import client as store_client
from shared.store import known, pipeline

NOW = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=timezone.utc)
READ_AT = datetime(2026, 12, 1, 8, 30, 0, 654321, tzinfo=timezone.utc)
USER_AT = datetime(2026, 12, 2, 9, 0, 0, 111111, tzinfo=timezone.utc)


@pytest.fixture
def db(monkeypatch):
    client = firestore.Client(project="demo-fence", credentials=AnonymousCredentials())
    monkeypatch.setattr(store_client, "client", lambda: client)
    monkeypatch.setattr(pipeline, "client", lambda: client)
    yield client
    settings.reset()


def _staged(db, change: Change, reads: dict, user_at=USER_AT) -> dict[str, object]:
    batch = pipeline.new_batch(db, "c1", "u1", NOW)
    user = known.Version(db.document(collections.user("u1")), user_at)
    pipeline.stage(batch, user, {"user_id": "u1", "last_seq": 0}, change, NOW, "c1", reads)
    writes = {}
    for write in batch._writes:
        name = write.delete if write.WhichOneof("operation") == "delete" else write.update.name
        writes[name.split("/documents/", 1)[1]] = write
    return writes


def _condition(write) -> str:
    if not write.HasField("current_document"):
        return "none"
    kind = write.current_document.WhichOneof("condition_type")
    if kind == "exists":
        return f"exists={write.current_document.exists}"
    stamp = write.current_document.update_time
    return f"at {datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, timezone.utc):%d %H:%M:%S.%f}"


def _change(**fields) -> Change:
    account = Account("u1", permanent=10)
    written = records("u1", [Entry(TransactionType.ADJUSTMENT, CreditPool.PERMANENT, 10, "x")], "src", NOW,
                      at=Position())
    return Change(result=None, account=account, records=written, **fields)


def test_a_document_read_and_written_is_written_over_the_version_read(db):
    writes = _staged(db, _change(overwrite={"spend_refunds/s1": {"given_back": {"monthly": 5}}}),
                     {"spend_refunds/s1": READ_AT})
    write = writes["spend_refunds/s1"]
    assert _condition(write) == "at 01 08:30:00.654321"
    # Written whole: no field mask, so no field of the version read survives by accident.
    assert not write.HasField("update_mask") and write.update.fields["given_back"].map_value.fields


def test_a_document_read_as_absent_and_written_is_created(db):
    writes = _staged(db, _change(overwrite={"spend_refunds/s1": {"given_back": {}}}), {"spend_refunds/s1": None})
    assert _condition(writes["spend_refunds/s1"]) == "exists=False"


def test_a_document_read_but_not_written_is_verified_by_a_write_that_changes_nothing(db):
    writes = _staged(db, _change(), {"spend_idempotency/k1": READ_AT, "credit_holds/h1": None})
    present, absent = writes["spend_idempotency/k1"], writes["credit_holds/h1"]
    assert _condition(present) == "at 01 08:30:00.654321"
    assert present.HasField("update_mask") and not present.update_mask.field_paths and not present.update.fields
    assert _condition(absent) == "exists=False" and absent.WhichOneof("operation") == "delete"


def test_a_document_read_and_deleted_is_deleted_only_at_the_version_read(db):
    writes = _staged(db, _change(delete=["webhook_unapplied/e1", "webhook_unapplied/e2"]),
                     {"webhook_unapplied/e1": READ_AT, "webhook_unapplied/e2": None})
    assert _condition(writes["webhook_unapplied/e1"]) == "at 01 08:30:00.654321"
    assert _condition(writes["webhook_unapplied/e2"]) == "exists=False"


def test_records_and_markers_are_created_and_only_unread_bookkeeping_is_written_blind(db):
    change = _change(create={"spend_idempotency/k2": {"fingerprint": "f"}},
                     overwrite={"credit_holds/h9": {"status": "expired"}})
    writes = _staged(db, change, {"spend_idempotency/k2": None})
    record = next(path for path in writes if path.startswith(collections.TRANSACTIONS + "/"))
    assert _condition(writes[record]) == "exists=False"
    assert _condition(writes["spend_idempotency/k2"]) == "exists=False"
    assert _condition(writes["credit_holds/h9"]) == "none"


def test_the_user_document_is_conditioned_on_its_version_and_the_witness_is_created_first(db):
    writes = _staged(db, _change(), {})
    names = list(writes)
    assert names[0] == collections.commit_witness("c1") and _condition(writes[names[0]]) == "exists=False"
    assert _condition(writes["users_credits/u1"]) == "at 02 09:00:00.111111"
    created = _staged(db, _change(), {}, user_at=None)
    assert _condition(created["users_credits/u1"]) == "exists=False"


def test_a_change_that_writes_one_document_twice_is_refused(db):
    change = _change(create={"credit_holds/h1": {}}, overwrite={"credit_holds/h1": {}})
    with pytest.raises(ValueError):
        _staged(db, change, {})
