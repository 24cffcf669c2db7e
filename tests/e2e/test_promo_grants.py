"""The `promo_grant` function and promotions service on the real functions-framework and emulator."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.common import ids, settings
from shared.ledger import collections
from shared.promotions import rejected, schemas
from shared.promotions import service as promo_service
from shared.spending import service as spending
from shared.store import client as store_client
from shared.store import outcome, wire
from tests.support.emulators import PROJECT, Emulator, free_port
from tests.support.functions import function_app
from tests.support.ledger import (
    assert_ledger_invariant,
    dump,
    records_of,
    seed,
    user_doc,
)
from tests.support.promo import message_data, push_body


@pytest.fixture(scope="session")
def promo_app(firestore_emulator):
    return function_app("promo_grant")


@pytest.fixture
def promo(promo_app, db):
    client = promo_app.test_client()

    def deliver(data, message_id="m-1", **kwargs):
        return client.post("/", json=push_body(data, message_id, **kwargs))

    return deliver


def promo_records(db, user_id, grant_id):
    return [r for r in records_of(db, user_id) if r["type"] == "promo_grant" and r["source"] == grant_id]


def assert_granted_once(db, user_ids, grant_id, amount):
    for user_id in user_ids:
        records = promo_records(db, user_id, grant_id)
        assert [r["amount"] for r in records] == [amount], (user_id, records)
        assert records[0]["pool"] == "permanent"
        assert_ledger_invariant(db, user_id)


def dump_of(db, user_ids):
    """Every document of these users (by id or `user_id` field): what a delivery for them may write.
    (Other tests' late Pub/Sub redeliveries may still write other users while this test runs.)"""
    users = set(user_ids)
    return {path: data for path, data in dump(db).items()
            if path.split("/")[1] in users or data.get("user_id") in users}


def rejected_docs(db):
    return {snap.id: snap.to_dict() for snap in db.collection(collections.PROMO_REJECTED).stream()}


def test_a_message_grants_permanent_credits_to_every_user_with_both_pools(promo, db):
    seed("has-monthly", monthly=40)
    response = promo(message_data("spring", ["new-user", "has-monthly"], 25, description="Spring promo"))
    assert response.status_code == 200
    new = user_doc(db, "new-user")
    assert (new["credits_monthly"], new["credits_permanent"], new["total_earned"], new["total_spent"]) == (0, 25, 25, 0)
    assert new["user_id"] == "new-user" and new["last_updated"] is not None
    old = user_doc(db, "has-monthly")
    assert (old["credits_monthly"], old["credits_permanent"], old["total_earned"]) == (40, 25, 65)
    record = promo_records(db, "new-user", "spring")[0]
    assert record["description"] == "Spring promo"
    assert record["transaction_id"] == ids.grant_record_id("spring", "new-user")
    assert_granted_once(db, ["new-user", "has-monthly"], "spring", 25)


def test_a_single_user_id_field_is_accepted_and_the_description_defaults(promo, db):
    data = json.dumps({"grant_id": "solo", "user_id": "ann", "amount": 3}).encode()
    assert promo(data).status_code == 200
    assert promo_records(db, "ann", "solo")[0]["description"] == promo_service.DEFAULT_DESCRIPTION
    assert user_doc(db, "ann")["credits_permanent"] == 3


def test_a_repeated_user_id_in_a_message_is_granted_once(promo, db):
    assert promo(message_data("dupes", ["bo", "bo", "cy", "bo"], 7)).status_code == 200
    assert_granted_once(db, ["bo", "cy"], "dupes", 7)
    assert user_doc(db, "bo")["credits_permanent"] == 7


def test_the_same_message_delivered_twice_grants_once(promo, db):
    users = [f"twice-{i}" for i in range(300)]
    data = message_data("twice", users, 10)
    assert promo(data, "m-7").status_code == 200
    before = dump_of(db, users)
    assert promo(data, "m-7").status_code == 200
    assert dump_of(db, users) == before
    assert_granted_once(db, users[:5] + users[-5:], "twice", 10)
    assert user_doc(db, "twice-150")["credits_permanent"] == 10


def test_a_campaign_republished_with_a_new_message_id_grants_once(promo, db):
    users = [f"again-{i}" for i in range(20)]
    assert promo(message_data("again", users, 5), "m-1").status_code == 200
    assert promo(message_data("again", list(reversed(users)), 5), "m-2").status_code == 200
    assert_granted_once(db, users, "again", 5)
    assert sum(user_doc(db, u)["credits_permanent"] for u in users) == 100


def test_a_redelivery_after_a_partial_run_gives_everyone_exactly_one_grant(promo, db, capsys):
    users = [f"part-{i:03d}" for i in range(500)]
    # The partial run: the first 200 users of the message got the grant before a fault.
    promo_service.grant(schemas.PromoMessage(grant_id="partial", user_ids=users[:200], amount=9))
    capsys.readouterr()
    assert promo(message_data("partial", users, 9), "m-9").status_code == 200
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    # 249 users per 500-write batch (two writes each, and the commit's witness): the batch holding
    # already-granted users was redone per user, the others committed whole.
    fallbacks = [entry for entry in logs if entry["message"] == "batch fell back to per-user commits"]
    assert [entry["users"] for entry in fallbacks] == [249]
    summary = next(entry for entry in logs if entry["message"].startswith("promo grant"))
    assert (summary["granted"], summary["already_granted"]) == (300, 200)
    assert_granted_once(db, users[::7] + users[195:205] + users[-3:], "partial", 9)
    assert all(user_doc(db, u)["credits_permanent"] == 9 for u in users[190:260])


def test_a_legacy_document_is_migrated_in_the_same_commit_as_its_grant(promo, db):
    db.collection(collections.USERS).document("old-timer").set({"user_id": "old-timer", "balance": 70,
                                                          "total_earned": 100, "total_spent": 30})
    assert promo(message_data("legacy", ["old-timer", "newcomer"], 15)).status_code == 200
    doc = user_doc(db, "old-timer")
    assert "balance" not in doc
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"], doc["total_spent"]) == (0, 85, 115, 30)
    kinds = sorted((r["type"], r["amount"]) for r in records_of(db, "old-timer"))
    assert kinds == [("migration", 70), ("promo_grant", 15)]
    assert_ledger_invariant(db, "old-timer")


def test_a_grant_id_reused_with_another_amount_keeps_the_first_grant(promo, db):
    assert promo(message_data("reuse", ["dee", "eve"], 10), "m-1").status_code == 200
    assert promo(message_data("reuse", ["dee", "eve", "fay"], 99), "m-2").status_code == 200
    assert user_doc(db, "dee")["credits_permanent"] == 10
    assert user_doc(db, "fay")["credits_permanent"] == 99
    assert_granted_once(db, ["dee", "eve"], "reuse", 10)


def _too_many() -> bytes:
    return message_data("big", [f"u{i}" for i in range(501)], 1)


BAD_MESSAGES = {
    "not base64": ("%%%not-base64%%%", "not base64"),
    "not JSON": (b"grant everyone 100", "not JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8"),
    "not an object": (b'["g", ["u1"], 5]', "not a JSON object"),
    "missing grant_id": (json.dumps({"user_ids": ["u1"], "amount": 5}).encode(), "grant_id"),
    "missing users": (json.dumps({"grant_id": "g", "amount": 5}).encode(), "user_ids"),
    "empty users": (message_data("g", [], 5), "user_ids"),
    "amount as string": (message_data("g", ["u1"], "5"), "amount"),
    "amount as float": (json.dumps({"grant_id": "g", "user_ids": ["u1"], "amount": 5.0}).encode(), "amount"),
    "amount as boolean": (message_data("g", ["u1"], True), "amount"),
    "amount zero": (message_data("g", ["u1"], 0), "amount"),
    "amount too large": (message_data("g", ["u1"], 1_000_001), "amount"),
    "too many users": (_too_many(), "501 distinct user ids"),
    "a user id with a slash": (message_data("g", ["ok", "a/b"], 5), "user_ids.1"),
    "grant_id too long": (message_data("g" * 129, ["u1"], 5), "grant_id"),
    "description too long": (message_data("g", ["u1"], 5, description="d" * 501), "description"),
    "user_id and user_ids": (message_data("g", ["u1"], 5, user_id="u2"), "not both"),
}


@pytest.mark.parametrize("data, reason", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_a_bad_message_is_kept_with_its_reason_acknowledged_and_grants_nothing(promo, db, data, reason):
    response = promo(data, "4242", attributes={"grant_id": "g"})
    assert response.status_code == 200  # a 2xx acknowledges the push: no redelivery
    kept = rejected_docs(db)
    assert list(kept) == ["4242"]
    doc = kept["4242"]
    assert reason in doc["reason"]
    raw = data.encode() if isinstance(data, str) else data
    assert doc["raw_data"] == raw and doc["raw_size"] == len(raw) and doc["raw_truncated"] is False
    assert (doc["message_id"], doc["status"], doc["attributes"]) == ("4242", "rejected", {"grant_id": "g"})
    assert not list(db.collection(collections.USERS).stream())
    assert not list(db.collection(collections.TRANSACTIONS).stream())


def test_a_bad_message_delivered_again_is_kept_once(promo, db):
    assert promo(b"nonsense", "77").status_code == 200
    first = rejected_docs(db)
    assert promo(b"nonsense", "77").status_code == 200
    assert rejected_docs(db) == first


def test_an_event_that_is_not_a_pubsub_message_is_kept_and_acknowledged(promo_app, db):
    headers = {"ce-id": "evt-1", "ce-source": "//storage.googleapis.com/b", "ce-specversion": "1.0",
               "ce-type": "google.cloud.storage.object.v1.finalized", "Content-Type": "application/json"}
    response = promo_app.test_client().post("/", headers=headers, data=json.dumps({"name": "x"}))
    assert response.status_code == 200
    assert "not a Pub/Sub message" in rejected_docs(db)["evt-1"]["reason"]


def test_a_transient_fault_raises_and_the_redelivery_applies_once(promo, db, monkeypatch):
    seed("gus", permanent=4)
    before = dump_of(db, ["gus", "hal"]), rejected_docs(db)
    data = message_data("outage", ["gus", "hal"], 6)
    # Firestore out of reach: nothing listens where the store now looks for it. The store keeps
    # trying to learn a commit's outcome for RESOLVE_BUDGET_S; a shorter budget keeps this test short.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(outcome, "RESOLVE_BUDGET_S", 2.0)
    settings.reset()
    try:
        response = promo(data, "m-out")
        # The function raised a transient fault: a 503 in the error envelope, so Pub/Sub redelivers.
        assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
    finally:
        monkeypatch.undo()
        settings.reset()
    assert (dump_of(db, ["gus", "hal"]), rejected_docs(db)) == before  # nothing written, not even a rejection
    assert promo(data, "m-out").status_code == 200
    assert promo(data, "m-out").status_code == 200
    assert user_doc(db, "gus")["credits_permanent"] == 10
    assert user_doc(db, "hal")["credits_permanent"] == 6
    assert_granted_once(db, ["gus", "hal"], "outage", 6)
    assert not rejected_docs(db)


def test_two_deliveries_racing_each_other_grant_every_user_once(promo_app, db):
    users = [f"race-{i}" for i in range(120)]
    body = push_body(message_data("race", users, 4), "m-r")
    start = threading.Barrier(3)

    def deliver(_):
        client = promo_app.test_client()
        start.wait()
        return client.post("/", json=body).status_code

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(deliver, range(3))) == [200, 200, 200]
    assert_granted_once(db, users, "race", 4)


def test_spends_during_a_grant_are_never_overwritten(promo, db):
    users = [f"busy-{i}" for i in range(60)]
    for user_id in users[:10]:
        seed(user_id, permanent=50)
    stop = threading.Event()
    spent = {user_id: 0 for user_id in users[:10]}

    def spend_loop(user_id):
        n = 0
        while not stop.is_set() and n < 8:
            spending.spend(user_id, 3, "during the grant", idempotency_key=f"{user_id}-{n}")
            spent[user_id] += 3
            n += 1

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(spend_loop, u) for u in users[:10]]
        assert promo(message_data("busy", users, 20)).status_code == 200
        stop.set()
        for future in futures:
            future.result()
    for user_id in users:
        expected = 50 + 20 - spent[user_id] if user_id in spent else 20
        doc = user_doc(db, user_id)
        assert doc["credits_permanent"] == expected, user_id
        assert_ledger_invariant(db, user_id)
    assert_granted_once(db, users, "busy", 20)


def test_a_kept_message_that_is_valid_now_is_replayed_once(db):
    # A message an earlier, stricter deployment refused; the rules have since been fixed.
    valid = message_data("late", ["ida", "jon"], 8)
    rejected.reject("m-late", "an older rule refused it", valid)
    rejected.reject("m-junk", "message data is not JSON", b"junk")
    results = {r["message_id"]: r for r in rejected.replay_rejected()}
    assert results["m-late"]["outcome"] == "replayed" and results["m-late"]["granted"] == 2
    assert results["m-junk"]["outcome"] == "still_rejected" and "not JSON" in results["m-junk"]["reason"]
    kept = rejected_docs(db)
    assert kept["m-late"]["status"] == "replayed" and kept["m-late"]["replay_outcome"]["granted"] == 2
    assert kept["m-junk"]["status"] == "rejected" and "not JSON" in kept["m-junk"]["last_replay_reason"]
    assert_granted_once(db, ["ida", "jon"], "late", 8)

    assert [r["message_id"] for r in rejected.replay_rejected()] == ["m-junk"]
    assert rejected.replay_rejected("m-late") == [{"message_id": "m-late", "outcome": "already_replayed"}]
    assert rejected.replay_rejected("nope") == [{"message_id": "nope", "outcome": "not_found"}]
    assert user_doc(db, "ida")["credits_permanent"] == 8


def test_concurrent_replays_mark_a_message_replayed_once(db):
    rejected.reject("m-twin", "refused earlier", message_data("twin", [f"t{i}" for i in range(30)], 2))
    with ThreadPoolExecutor(3) as pool:
        outcomes = sorted(r[0]["outcome"] for r in pool.map(lambda _: rejected.replay_rejected("m-twin"), range(3)))
    assert outcomes.count("replayed") == 1 and outcomes.count("already_replayed") == 2
    assert_granted_once(db, [f"t{i}" for i in range(30)], "twin", 2)


def test_a_huge_bad_message_is_kept_cut_short_and_never_replayed(promo, db):
    data = b"x" * (rejected.MAX_KEPT_RAW_BYTES + 10)
    assert promo(base64.b64encode(data).decode(), "m-huge").status_code == 200
    doc = rejected_docs(db)["m-huge"]
    assert doc["raw_truncated"] is True and doc["raw_size"] == len(data)
    assert len(doc["raw_data"]) == rejected.MAX_KEPT_RAW_BYTES
    assert rejected.replay_rejected("m-huge")[0]["outcome"] == "still_rejected"


def test_a_bad_message_that_cannot_be_kept_yet_is_not_acknowledged(promo, db, monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    settings.reset()
    try:
        assert promo(b"not json", "m-later").status_code == 503  # redelivered until it can be kept
    finally:
        monkeypatch.undo()
        settings.reset()
    assert not rejected_docs(db)
    assert promo(b"not json", "m-later").status_code == 200
    assert rejected_docs(db)["m-later"]["reason"] == "message data is not JSON"


def test_a_message_of_legacy_users_splits_into_batches_of_at_most_500_writes(promo, db, capsys, monkeypatch):
    users = [f"legacy-{i:03d}" for i in range(300)]
    batch = db.batch()
    for user_id in users:  # three writes each: user document, migration record, grant record
        batch.set(db.collection(collections.USERS).document(user_id), {"user_id": user_id, "balance": 11})
    batch.commit()
    sizes = []
    real_commit = wire.Batch.commit

    def counting_commit(self, *args, **kwargs):
        # Documents written by each commit that lands (a first try without reads, refused because
        # these users exist, writes nothing).
        written = len(self)
        result = real_commit(self, *args, **kwargs)
        sizes.append(written)
        return result

    monkeypatch.setattr(wire.Batch, "commit", counting_commit)
    capsys.readouterr()
    assert promo(message_data("legacy-wave", users, 4)).status_code == 200
    assert "fell back" not in capsys.readouterr().out
    # Each commit: its witness, then whole users of three writes.
    assert sum(sizes) == 900 + len(sizes) and max(sizes) <= 500, sizes
    assert all((size - 1) % 3 == 0 for size in sizes), sizes
    for user_id in users[::29] + users[-2:]:
        doc = user_doc(db, user_id)
        assert (doc["credits_permanent"], "balance" in doc) == (15, False)
        assert sorted(r["type"] for r in records_of(db, user_id)) == ["migration", "promo_grant"]
        assert_ledger_invariant(db, user_id)
    assert_granted_once(db, users, "legacy-wave", 4)


def _export_and_stop(emulator: Emulator, directory) -> str:
    """Stop `emulator`, keeping its documents in an export a new emulator can start from."""
    body = json.dumps({"database": f"projects/{PROJECT}/databases/(default)", "export_directory": str(directory)})
    request = urllib.request.Request(f"http://{emulator.host}/emulator/v1/projects/{PROJECT}:export",
                                     data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    emulator.stop()
    return str(next(Path(directory).glob("*/*.overall_export_metadata")))


def test_firestore_going_down_mid_message_raises_and_the_redelivery_grants_everyone_once(
    promo, tmp_path, monkeypatch, capsys
):
    # A Firestore of this test's own, taken down right after the message's first batch commits.
    outage = Emulator("firestore").start()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", outage.host)
    monkeypatch.setattr(outcome, "RESOLVE_BUDGET_S", 2.0)  # Firestore stays down: no need to wait 30 s
    settings.reset()
    restarted = None
    try:
        users = [f"mid-{i:03d}" for i in range(500)]
        data = message_data("midway", users, 3)
        real_commit, lock, exported = wire.Batch.commit, threading.Lock(), []

        def commit_then_go_down(self, *args, **kwargs):
            with lock:  # the first commit to finish is the last one Firestore sees
                if exported:
                    return real_commit(self, *args, **kwargs)
                result = real_commit(self, *args, **kwargs)
                exported.append(_export_and_stop(outage, tmp_path))
                return result

        monkeypatch.setattr(wire.Batch, "commit", commit_then_go_down)
        capsys.readouterr()
        assert promo(data, "m-mid").status_code == 503  # raised: Pub/Sub will redeliver
        monkeypatch.setattr(wire.Batch, "commit", real_commit)
        assert '"message":"promo message will be redelivered"' in capsys.readouterr().out

        restarted = Emulator("firestore", port=outage.port, extra_args=(f"--import-data={exported[0]}",)).start()
        settings.reset()
        db = store_client.client()
        granted = [u for u in users if promo_records(db, u, "midway")]
        assert len(granted) == 249  # one whole batch committed before the outage, nothing else
        assert all(user_doc(db, u) is None for u in users if u not in granted)

        capsys.readouterr()
        assert promo(data, "m-mid").status_code == 200  # the redelivery
        summary = next(json.loads(line) for line in capsys.readouterr().out.splitlines()
                       if line.startswith('{"severity":"INFO","message":"promo grant'))
        assert (summary["granted"], summary["already_granted"]) == (251, 249)
        assert_granted_once(db, users[::11] + granted[:3] + granted[-3:], "midway", 3)
        assert all(user_doc(db, u)["credits_permanent"] == 3 for u in users)
    finally:
        for emulator in (outage, restarted):
            if emulator is not None:
                emulator.stop()
        monkeypatch.undo()
        settings.reset()
