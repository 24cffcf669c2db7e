"""The app's own client, live: the real Firebase JavaScript SDK (npm `firebase` 12, clients/web)
under Node, signed in as the user, against the Firestore emulator with terraform/firestore.rules
in force, while the real `spend` function (functions-framework) and the operator command change
the credits. CONTRACT section 7; the how-to is docs/how-to/show-balance-live.md.

The rules are put in force for a project of these tests' own (`<project>-web`) on the session's
emulator, so the rest of the suite is not governed by them. Server writes (the functions, the
command, the seeding below) use the emulator's owner credential, which rules do not govern.

Records carrying `seq` are seeded with the admin client where a test needs a history by `seq`;
the spend's own records are followed through the `created_at` history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy import TERRAFORM_DIR
from tests.support.emulators import PROJECT
from tests.support.servers import serve_function
from tests.support.web_client import SdkClient

ROOT = Path(__file__).resolve().parents[2]
RULES = TERRAFORM_DIR / "firestore.rules"
WEB_PROJECT = f"{PROJECT}-web"
# "Within seconds": what a listener may take to report a committed change.
LIVE_WITHIN = 5.0



@pytest.fixture(scope="module")
def web_firestore(firestore_emulator):
    firestore_emulator.load_rules(WEB_PROJECT, RULES)
    return firestore_emulator


@pytest.fixture
def admin(web_firestore):
    """A server client of the tests' project (owner credential: rules do not apply), emptied first."""
    from google.cloud import firestore

    web_firestore.reset(WEB_PROJECT)
    client = firestore.Client(project=WEB_PROJECT)
    yield client
    client.close()


@pytest.fixture(scope="module")
def spend_url(web_firestore):
    env = {"GOOGLE_CLOUD_PROJECT": WEB_PROJECT, "FIRESTORE_EMULATOR_HOST": web_firestore.host}
    with serve_function("spend", env=env) as url:
        yield url


@pytest.fixture
def sdk(web_firestore, admin):
    """`sdk(uid)`: the SDK signed in as `uid` (None: not signed in); closed after the test."""
    clients: list[SdkClient] = []

    def open_client(uid: str | None) -> SdkClient:
        client = SdkClient(web_firestore.host, WEB_PROJECT, uid)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def grant(web_firestore):
    """Grant permanent credits as support would (`credits adjust`), in the tests' project."""

    def run(user_id: str, amount: int) -> None:
        env = {**os.environ, "GOOGLE_CLOUD_PROJECT": WEB_PROJECT, "FIRESTORE_EMULATOR_HOST": web_firestore.host,
               "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "tools.credits", "adjust", user_id, "--pool", "permanent",
                        f"--amount={amount}", "--reason", "welcome credits", "--operator", "tests",
                        "--idempotency-key", f"grant-{user_id}-{amount}"],
                       env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)

    return run


def spend(url: str, user_id: str, amount: int, key: str) -> dict[str, Any]:
    body = json.dumps({"user_id": user_id, "amount": amount, "description": "Story generation",
                       "idempotency_key": key}).encode()
    request = urllib.request.Request(f"{url}/spend", data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def balance_view(client: SdkClient, listener: str, match, timeout: float = LIVE_WITHIN, what: str = "a view") -> dict:
    event = client.wait_for(listener, lambda e: match(e["view"]), timeout, what)
    assert event["event"] == "balance", f"the listener failed: {event}"
    return event


def no_errors(client: SdkClient) -> None:
    assert [e for e in client.seen if e["event"] == "error"] == []


T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def seed_records(admin, user_id: str, amounts: list[int]) -> None:
    """A user document and its records with `seq` and `balance_after`, in one batch."""
    batch = admin.batch()
    permanent = 0
    for seq, amount in enumerate(amounts, start=1):
        permanent += amount
        transaction_id = f"{user_id}-t{seq}"
        batch.set(admin.collection("credits_transactions").document(transaction_id), {
            "transaction_id": transaction_id, "user_id": user_id, "type": "promo_grant" if amount > 0 else "spent",
            "pool": "permanent", "amount": amount, "description": f"record {seq}", "source": f"src-{seq}",
            # One time for several records: seq, not the clock, orders a user's history.
            "created_at": T0 + timedelta(seconds=seq // 2), "seq": seq,
            "balance_after": {"credits_monthly": 0, "credits_permanent": permanent},
        })
    batch.set(admin.collection("users_credits").document(user_id), {
        "user_id": user_id, "credits_monthly": 0, "credits_permanent": permanent, "total_earned": sum(a for a in amounts if a > 0),
        "total_spent": -sum(a for a in amounts if a < 0), "last_updated": T0,
    })
    batch.commit()


def test_a_new_users_listener_receives_does_not_exist_stays_open_and_sees_the_first_grant(sdk, grant):
    newcomer = sdk("newcomer")
    newcomer.send("watch_balance", id="balance")

    first = balance_view(newcomer, "balance", lambda v: v["state"] != "loading", what="the first server answer")
    started = time.monotonic()
    grant("newcomer", 500)
    granted = balance_view(newcomer, "balance", lambda v: v["balance"] == 500, timeout=60, what="the first grant")

    assert first["view"] == {"state": "none", "balance": 0, "monthly": 0, "permanent": 0, "held": 0, "owed": 0,
                             "legacy": False}
    assert granted["view"]["state"] == "live" and granted["view"]["permanent"] == 500
    assert granted["received_at"] - started < 60
    no_errors(newcomer)


def test_the_listener_sees_a_spend_made_through_spend_within_seconds(sdk, grant, spend_url):
    grant("reader", 500)
    reader = sdk("reader")
    reader.send("watch_balance", id="balance")
    reader.send("watch_history", id="history", order="created_at", limit=5)
    balance_view(reader, "balance", lambda v: v["state"] == "live" and v["balance"] == 500)

    started = time.monotonic()
    answer = spend(spend_url, "reader", 30, "story-1")
    seen = balance_view(reader, "balance", lambda v: v["balance"] == 470, what="the spend")
    history = reader.wait_for("history", lambda e: e["rows"] and e["rows"][0]["type"] == "spent", LIVE_WITHIN,
                              "the spend's record")

    assert answer["balance"]["balance"] == 470
    assert seen["view"]["state"] == "live"
    assert seen["received_at"] - started < LIVE_WITHIN
    assert [(row["type"], row["amount"]) for row in history["rows"]] == [("spent", -30), ("adjustment", 500)]
    no_errors(reader)


def test_the_history_by_seq_is_the_users_own_records_newest_first_and_live(admin, sdk):
    seed_records(admin, "alice", [100, -10, -20, 50])
    seed_records(admin, "bob", [999])
    alice = sdk("alice")
    alice.send("watch_history", id="history", order="seq", limit=3)

    first = alice.wait_for("history", lambda e: not e["fromCache"], LIVE_WITHIN, "the history")
    admin.collection("credits_transactions").document("alice-t5").set({
        "transaction_id": "alice-t5", "user_id": "alice", "type": "spent", "pool": "permanent", "amount": -5,
        "description": "record 5", "source": "src-5", "created_at": T0, "seq": 5,
        "balance_after": {"credits_monthly": 0, "credits_permanent": 115},
    })
    later = alice.wait_for("history", lambda e: e["rows"][0]["seq"] == 5, LIVE_WITHIN, "the new record")
    by_time = alice.result("query", collection="credits_transactions", where=[["user_id", "==", "alice"]],
                           orderBy=["created_at", "desc"], limit=100)

    assert [(row["seq"], row["amount"], row["balance_after"]) for row in first["rows"]] == [(4, 50, 120), (3, -20, 70), (2, -10, 90)]
    assert [row["seq"] for row in later["rows"]] == [5, 4, 3]
    assert by_time == {**by_time, "outcome": "ok", "count": 5}
    no_errors(alice)


def test_a_legacy_document_shows_as_permanent_credits_and_its_listener_sees_the_migration(admin, sdk, spend_url):
    admin.collection("users_credits").document("veteran").set({"user_id": "veteran", "balance": 40, "total_earned": 40,
                                                               "total_spent": 0})
    veteran = sdk("veteran")
    veteran.send("watch_balance", id="balance")

    legacy = balance_view(veteran, "balance", lambda v: v["state"] == "live", what="the legacy balance")
    spend(spend_url, "veteran", 15, "veteran-1")
    migrated = balance_view(veteran, "balance", lambda v: not v["legacy"], what="the migrated document")

    assert legacy["view"] == {"state": "live", "balance": 40, "monthly": 0, "permanent": 40, "held": 0, "owed": 0,
                              "legacy": True}
    assert migrated["view"] == {**migrated["view"], "state": "live", "balance": 25, "permanent": 25, "legacy": False}
    no_errors(veteran)


def test_offline_the_listener_shows_the_last_known_balance_from_the_cache_then_catches_up(sdk, grant, spend_url):
    grant("traveller", 100)
    traveller = sdk("traveller")
    traveller.send("watch_balance", id="balance")
    balance_view(traveller, "balance", lambda v: v["state"] == "live" and v["balance"] == 100)

    traveller.send("offline", id="net")
    offline = balance_view(traveller, "balance", lambda v: v["state"] == "offline", what="the offline view")
    spend(spend_url, "traveller", 40, "traveller-1")
    traveller.send("online", id="net")
    back = balance_view(traveller, "balance", lambda v: v["state"] == "live", what="the view once online")

    assert offline["view"]["balance"] == 100
    # While offline nothing new arrived: every view between is the cached one.
    between = [e["view"] for e in traveller.views("balance") if offline["received_at"] <= e["received_at"] < back["received_at"]]
    assert all(view["balance"] == 100 for view in between)
    assert back["view"]["balance"] == 60
    no_errors(traveller)


OTHERS_READS = {
    "another user's balance": {"op": "get", "path": "users_credits/alice"},
    "another user's record": {"op": "get", "path": "credits_transactions/alice-t1"},
    "another user's history by seq": {"op": "query", "collection": "credits_transactions",
                                      "where": [["user_id", "==", "alice"]], "orderBy": ["seq", "desc"], "limit": 10},
    "another user's history by time": {"op": "query", "collection": "credits_transactions",
                                       "where": [["user_id", "==", "alice"]], "orderBy": ["created_at", "desc"], "limit": 10},
    "every record": {"op": "query", "collection": "credits_transactions", "limit": 10},
    "every balance": {"op": "query", "collection": "users_credits", "limit": 10},
    "a spend key": {"op": "get", "path": "spend_idempotency/story-1"},
    "a commit witness": {"op": "get", "path": "credits_commits/c-1"},
}

OWN_WRITES = {
    "raise own pool": {"kind": "set", "path": "users_credits/alice",
                       "data": {"user_id": "alice", "credits_monthly": 0, "credits_permanent": 1000000}},
    "update own pool": {"kind": "update", "path": "users_credits/alice", "data": {"credits_permanent": 1000000}},
    "delete own balance": {"kind": "delete", "path": "users_credits/alice"},
    "add a record": {"kind": "add", "path": "credits_transactions",
                     "data": {"user_id": "alice", "type": "promo_grant", "pool": "permanent", "amount": 500}},
    "edit own record": {"kind": "update", "path": "credits_transactions/alice-t1", "data": {"amount": 1000000}},
    "delete own record": {"kind": "delete", "path": "credits_transactions/alice-t1"},
    "another user's balance": {"kind": "set", "path": "users_credits/bob", "data": {"credits_permanent": 5}},
    "a spend key": {"kind": "set", "path": "spend_idempotency/k", "data": {"user_id": "alice"}},
    "anywhere else": {"kind": "set", "path": "anything/else", "data": {"x": 1}},
}


def test_every_read_of_someone_elses_data_and_every_client_write_is_refused(admin, sdk):
    seed_records(admin, "alice", [100, -10])
    admin.collection("spend_idempotency").document("story-1").set({"user_id": "alice"})
    admin.collection("credits_commits").document("c-1").set({"change_id": "c-1", "user_id": "alice"})
    stored_before = {snap.reference.path: snap.to_dict() for name in ("users_credits", "credits_transactions")
                     for snap in admin.collection(name).stream()}
    alice, alice_elsewhere, mallory, nobody = sdk("alice"), sdk("alice"), sdk("mallory"), sdk(None)
    alice.send("watch_balance", id="balance")
    balance_view(alice, "balance", lambda v: v["state"] == "live")
    # The SDK reports a local delete of a listened document as "does not exist" without
    # hasPendingWrites, so the watching client makes every other write, and the delete of its
    # balance is made from another device of the same user.
    writers = {name: alice_elsewhere if name == "delete own balance" else alice for name in OWN_WRITES}

    own = {name: alice.result(**command) for name, command in {
        "own balance": {"op": "get", "path": "users_credits/alice"},
        "own history by seq": OTHERS_READS["another user's history by seq"],
        "own history by time": OTHERS_READS["another user's history by time"],
    }.items()}
    reads = {(who, name): client.result(**command)["outcome"]
             for who, client in (("mallory", mallory), ("signed out", nobody))
             for name, command in OTHERS_READS.items()}
    writes = {(who, name): (writers[name] if who == "alice" else client).result("write", **command)["outcome"]
              for who, client in (("alice", alice), ("mallory", mallory), ("signed out", nobody))
              for name, command in OWN_WRITES.items()}
    settled = alice.settle("balance")

    assert {name: result["outcome"] for name, result in own.items()} == dict.fromkeys(own, "ok")
    assert own["own history by seq"]["count"] == 2
    assert reads == dict.fromkeys(reads, "permission-denied")
    assert writes == dict.fromkeys(writes, "permission-denied")
    # Nothing changed, and the owner's view never showed what their own refused writes held.
    assert {snap.reference.path: snap.to_dict() for name in ("users_credits", "credits_transactions")
            for snap in admin.collection(name).stream()} == stored_before
    views = [e["view"] for e in alice.views("balance")]
    assert {view["balance"] for view in views} == {90}
    assert "pending" in {view["state"] for view in views}
    assert settled["view"]["state"] == "live" and settled["view"]["balance"] == 90
    no_errors(alice)
