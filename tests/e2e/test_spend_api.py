"""The `spend` function through the real functions-framework, on the real Firestore emulator."""

import json

import pytest

from shared.ledger import collections
from tests.support.ledger import (
    assert_ledger_invariant,
    dump,
    records_of,
    seed,
    user_doc,
)


def spend(client, headers=None, **body):
    return client.post("/spend", data=json.dumps(body), content_type="application/json", headers=headers or {})


def pools(body):
    return body["balance"]["credits_monthly"], body["balance"]["credits_permanent"]


def test_a_spend_the_permanent_pool_covers_takes_only_permanent_credits(spend_client, db):
    seed("alice", monthly=100, permanent=50)
    response = spend(spend_client, user_id="alice", amount=30, description="Story generation")
    assert response.status_code == 200
    body = response.get_json()
    assert [(t["pool"], t["amount"], t["description"]) for t in body["transactions"]] == [
        ("permanent", -30, "Story generation (from permanent pool)")
    ]
    assert pools(body) == (100, 20) and body["balance"]["balance"] == 120
    assert body["balance"]["total_spent"] == 30
    assert_ledger_invariant(db, "alice")


def test_a_spend_larger_than_the_permanent_pool_is_split_with_one_record_per_pool(spend_client, db):
    seed("bob", monthly=100, permanent=50)
    body = spend(spend_client, user_id="bob", amount=120, idempotency_key="k-bob").get_json()
    assert [(t["pool"], t["amount"], t["source"]) for t in body["transactions"]] == [
        ("permanent", -50, "k-bob"), ("monthly", -70, "k-bob")
    ]
    assert pools(body) == (30, 0)
    assert_ledger_invariant(db, "bob")


def test_a_spend_of_the_exact_balance_leaves_both_pools_empty(spend_client, db):
    seed("carol", monthly=10, permanent=5)
    body = spend(spend_client, user_id="carol", amount=15).get_json()
    assert pools(body) == (0, 0) and body["balance"]["balance"] == 0
    assert [t["source"] for t in body["transactions"]] == [None, None]
    assert_ledger_invariant(db, "carol")


def test_a_spend_one_credit_short_is_402_and_writes_nothing(spend_client, db):
    seed("dave", monthly=10, permanent=5)
    before = dump(db)
    response = spend(spend_client, user_id="dave", amount=16, idempotency_key="k-dave")
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert (error["code"], error["balance"], error["requested"]) == ("insufficient_credits", 15, 16)
    assert dump(db) == before
    # The refused key is not remembered: once credits arrive, the same key spends.
    seed("dave", permanent=1)
    assert spend(spend_client, user_id="dave", amount=16, idempotency_key="k-dave").status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"amount": 5}, "user_id"),
        ({"user_id": "eve"}, "amount"),
        ({"user_id": "eve", "amount": 0}, "amount"),
        ({"user_id": "eve", "amount": 1_000_000_001}, "amount"),
        ({"user_id": "eve", "amount": True}, "amount"),
        ({"user_id": "eve", "amount": 5.0}, "amount"),
        ({"user_id": "eve", "amount": "5"}, "amount"),
        ({"user_id": "", "amount": 5}, "user_id"),
        ({"user_id": "a/b", "amount": 5}, "user_id"),
        ({"user_id": "x" * 129, "amount": 5}, "user_id"),
        ({"user_id": 7, "amount": 5}, "user_id"),
        ({"user_id": "..", "amount": 5}, "user_id"),
        ({"user_id": "eve", "amount": 5, "description": "d" * 501}, "description"),
        ({"user_id": "eve", "amount": 5, "idempotency_key": ""}, "idempotency_key"),
        ({"user_id": "eve", "amount": 5, "idempotency_key": "k" * 256}, "idempotency_key"),
    ],
)
def test_an_invalid_field_is_400_naming_it_and_writes_nothing(spend_client, db, body, field):
    seed("eve", permanent=50)
    before = dump(db)
    response = spend(spend_client, **body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [f["field"] for f in error["fields"]]
    assert dump(db) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400_and_writes_nothing(spend_client, db, raw):
    seed("eve", permanent=50)
    before = dump(db)
    response = spend_client.post("/spend", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert dump(db) == before


def test_a_body_over_64_kib_is_413_and_writes_nothing(spend_client, db):
    seed("eve", permanent=50)
    before = dump(db)
    body = json.dumps({"user_id": "eve", "amount": 1, "description": "x" * (64 * 1024)})
    response = spend_client.post("/spend", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert dump(db) == before


def test_unknown_routes_are_404_and_wrong_methods_405_with_error_bodies(spend_client, db):
    for method, path, status in [
        ("get", "/nothing-here", 404),
        ("post", "/balance/eve/extra", 404),
        ("get", "/spend", 405),
        ("post", "/balance/eve", 405),
        ("delete", "/transactions/eve", 405),
    ]:
        response = getattr(spend_client, method)(path)
        assert response.status_code == status, (method, path)
        assert response.get_json()["error"]["code"] in ("not_found", "method_not_allowed")
    assert dump(db) == {}


def test_the_same_key_twice_returns_the_first_response_replayed_and_spends_once(spend_client, db):
    seed("frank", monthly=100)
    first = spend(spend_client, user_id="frank", amount=40, idempotency_key="order-1")
    second = spend(spend_client, user_id="frank", amount=40, idempotency_key="order-1")
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()
    assert user_doc(db, "frank")["credits_monthly"] == 60
    assert len([r for r in records_of(db, "frank") if r["type"] == "spent"]) == 1


def test_the_idempotency_key_header_works_like_the_field(spend_client, db):
    seed("frank", monthly=100)
    first = spend(spend_client, headers={"Idempotency-Key": "hdr-1"}, user_id="frank", amount=10)
    again = spend(spend_client, user_id="frank", amount=10, idempotency_key="hdr-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    clash = spend(spend_client, headers={"Idempotency-Key": "hdr-2"}, user_id="frank", amount=10, idempotency_key="x")
    assert clash.status_code == 400
    assert user_doc(db, "frank")["credits_monthly"] == 90


def test_a_key_reused_with_another_amount_or_user_is_409_and_writes_nothing(spend_client, db):
    seed("gina", monthly=100)
    seed("hank", monthly=100)
    assert spend(spend_client, user_id="gina", amount=10, idempotency_key="shared-key").status_code == 200
    before = dump(db)
    for body in ({"user_id": "gina", "amount": 11}, {"user_id": "hank", "amount": 10},
                 {"user_id": "gina", "amount": 10, "description": "other"}):
        response = spend(spend_client, idempotency_key="shared-key", **body)
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "idempotency_conflict"
    assert dump(db) == before


def test_a_legacy_document_reads_as_permanent_credits_without_being_written(spend_client, db):
    db.collection(collections.USERS).document("ivy").set({"user_id": "ivy", "balance": 80, "total_earned": 120,
                                                   "total_spent": 40})
    before = dump(db)
    body = spend_client.get("/balance/ivy").get_json()
    assert body == {"user_id": "ivy", "credits_monthly": 0, "credits_permanent": 80, "balance": 80,
                    "total_earned": 120, "total_spent": 40, "last_updated": None, "credits_owed": 0,
                    "credits_held": 0}
    assert dump(db) == before


def test_a_legacy_users_first_spend_writes_the_migration_record_and_the_spend(spend_client, db):
    db.collection(collections.USERS).document("ivy").set({"user_id": "ivy", "balance": 80, "total_earned": 120,
                                                   "total_spent": 40})
    body = spend(spend_client, user_id="ivy", amount=30, idempotency_key="ivy-1").get_json()
    assert [(t["type"], t["pool"], t["amount"]) for t in body["transactions"]] == [("spent", "permanent", -30)]
    doc = user_doc(db, "ivy")
    assert "balance" not in doc
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"], doc["total_spent"]) == (0, 50, 120, 70)
    history = spend_client.get("/transactions/ivy").get_json()["transactions"]
    assert [(t["type"], t["amount"]) for t in history] == [("spent", -30), ("migration", 80)]
    assert_ledger_invariant(db, "ivy")


def test_a_user_with_no_record_reads_as_zeros_and_nothing_is_written(spend_client, db):
    response = spend_client.get("/balance/nobody")
    assert response.status_code == 200
    assert response.get_json() == {"user_id": "nobody", "credits_monthly": 0, "credits_permanent": 0,
                                   "balance": 0, "total_earned": 0, "total_spent": 0, "last_updated": None,
                                   "credits_owed": 0, "credits_held": 0}
    assert dump(db) == {}


def test_balance_shows_last_updated_as_iso_utc_with_z(spend_client, db):
    seed("jack", monthly=5)
    stamp = spend_client.get("/balance/jack").get_json()["last_updated"]
    assert stamp.endswith("Z") and "T" in stamp


def test_history_pages_newest_first_through_every_record_exactly_once(spend_client, db):
    seed("kim", monthly=100, permanent=7)
    for n in range(9):
        assert spend(spend_client, user_id="kim", amount=3 + n, idempotency_key=f"kim-{n}").status_code == 200
    expected = sorted(records_of(db, "kim"), key=lambda r: r["seq"], reverse=True)
    seen, token, pages = [], None, 0
    while True:
        query = "?limit=4" + (f"&page_token={token}" if token else "")
        body = spend_client.get(f"/transactions/kim{query}").get_json()
        assert len(body["transactions"]) <= 4
        seen += body["transactions"]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages > 1
    assert [t["transaction_id"] for t in seen] == [r["transaction_id"] for r in expected]
    assert len({t["transaction_id"] for t in seen}) == len(seen) == len(expected)
    stamps = [t["created_at"] for t in seen]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("query", ["?limit=0", "?limit=101", "?limit=abc", "?page_token=forged",
                                   "?page_token=eyJ4IjoxfQ.0000"])
def test_a_bad_limit_or_a_page_token_this_api_did_not_issue_is_400(spend_client, db, query):
    seed("lee", monthly=5)
    response = spend_client.get(f"/transactions/lee{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_a_page_token_issued_for_another_user_is_refused(spend_client, db):
    seed("mia", monthly=5, permanent=5)
    token = spend_client.get("/transactions/mia?limit=1").get_json()["next_page_token"]
    assert token
    assert spend_client.get(f"/transactions/mia?limit=1&page_token={token}").status_code == 200
    assert spend_client.get(f"/transactions/ned?limit=1&page_token={token}").status_code == 400
