"""`GET`/`PUT /users/{user_id}/settings`: a user's low-balance threshold and auto top-up setting,
through the real function on the emulator (every answer checked against the OpenAPI document by
`spend_client`)."""

from __future__ import annotations

import json

import pytest

from shared.events import rules as event_rules
from tests.support.ledger import assert_ledger_invariant, attempts, dump, records_of, seed, user_doc

NO_SETTINGS = {"low_balance_threshold": None, "auto_topup": None}


def put(client, user_id, body):
    return client.put(f"/users/{user_id}/settings", data=json.dumps(body), content_type="application/json")


def test_a_user_with_no_record_has_no_settings_and_reading_them_writes_nothing(spend_client, db):
    response = spend_client.get("/users/nobody/settings")

    assert response.status_code == 200
    assert response.get_json() == {"user_id": "nobody", **NO_SETTINGS}
    assert dump(db) == {}


def test_a_threshold_put_is_what_get_answers_after_and_is_on_the_user_document(spend_client, db):
    seed("tia", permanent=70)

    response = put(spend_client, "tia", {"low_balance_threshold": 50})

    assert response.status_code == 200
    assert response.get_json() == {"user_id": "tia", "low_balance_threshold": 50, "auto_topup": None}
    assert spend_client.get("/users/tia/settings").get_json() == response.get_json()
    doc = user_doc(db, "tia")
    assert doc["low_balance_threshold"] == 50
    # Settings are not credits: the pools, totals and records are as they were.
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_earned"]) == (0, 70, 70)
    assert len(records_of(db, "tia")) == 1
    assert_ledger_invariant(db, "tia")


def test_balance_low_follows_the_threshold_a_user_put(spend_client, db):
    seed("bea", permanent=100)
    before = user_doc(db, "bea")
    put(spend_client, "bea", {"low_balance_threshold": 90})
    with_threshold = user_doc(db, "bea")
    assert spend_client.post("/spend", data=json.dumps({"user_id": "bea", "amount": 20}),
                             content_type="application/json").status_code == 200
    after = user_doc(db, "bea")

    # The settings change alone publishes nothing; the spend that crosses it publishes balance.low.
    assert event_rules.balance_messages("bea", with_threshold, before, after["last_updated"], 0) == []
    low = event_rules.balance_messages("bea", after, with_threshold, after["last_updated"], 0)
    assert [m.event_type for m in low] == ["balance.updated", "balance.low"]
    assert low[1].data["threshold"] == 90 and low[1].data["balance"] == 80


def test_null_clears_the_threshold_and_removes_the_field(spend_client, db):
    seed("cal", permanent=10)
    put(spend_client, "cal", {"low_balance_threshold": 5})

    response = put(spend_client, "cal", {"low_balance_threshold": None})

    assert response.status_code == 200 and response.get_json() == {"user_id": "cal", **NO_SETTINGS}
    assert "low_balance_threshold" not in user_doc(db, "cal")


def test_a_put_that_changes_nothing_writes_nothing(spend_client, db):
    seed("dan", permanent=10)
    put(spend_client, "dan", {"low_balance_threshold": 5})
    before = dump(db)

    assert put(spend_client, "dan", {"low_balance_threshold": 5}).get_json()["low_balance_threshold"] == 5
    assert put(spend_client, "nobody", {"low_balance_threshold": None}).get_json() == {"user_id": "nobody",
                                                                                      **NO_SETTINGS}
    assert dump(db) == before


def test_a_user_with_no_record_gets_one_holding_only_the_setting(spend_client, db):
    response = put(spend_client, "new", {"low_balance_threshold": 1_000_000_000})

    assert response.status_code == 200 and response.get_json()["low_balance_threshold"] == 1_000_000_000
    doc = user_doc(db, "new")
    assert doc["low_balance_threshold"] == 1_000_000_000
    assert (doc["credits_monthly"], doc["credits_permanent"]) == (0, 0)
    assert spend_client.get("/balance/new").get_json()["balance"] == 0
    assert records_of(db, "new") == []


def test_a_legacy_user_is_migrated_with_its_record_by_its_first_settings_change(spend_client, db):
    db.collection("users_credits").document("old").set({"user_id": "old", "balance": 40})

    assert put(spend_client, "old", {"low_balance_threshold": 10}).status_code == 200

    doc = user_doc(db, "old")
    assert "balance" not in doc and doc["credits_permanent"] == 40 and doc["low_balance_threshold"] == 10
    assert [(r["type"], r["amount"]) for r in records_of(db, "old")] == [("migration", 40)]
    assert_ledger_invariant(db, "old")


@pytest.mark.parametrize("body, field", [
    ({}, "body"),
    ({"low_balance_threshold": 0}, "low_balance_threshold"),
    ({"low_balance_threshold": 1_000_000_001}, "low_balance_threshold"),
    ({"low_balance_threshold": 5.0}, "low_balance_threshold"),
    ({"low_balance_threshold": "5"}, "low_balance_threshold"),
    ({"low_balance_threshold": True}, "low_balance_threshold"),
    ({"low_balance_threshold": 5, "colour": "blue"}, "colour"),
    ({"auto_topup": {"enabled": True, "threshold": 10}}, "auto_topup.price_id"),
    ({"auto_topup": {"enabled": "yes", "threshold": 10, "price_id": "price_pack_500"}}, "auto_topup.enabled"),
    ({"auto_topup": {"enabled": True, "threshold": 10, "price_id": "price_pack_500", "quantity": 0}},
     "auto_topup.quantity"),
    ({"auto_topup": {"enabled": True, "threshold": 10, "price_id": "price_pack_500", "status": "active"}},
     "auto_topup.status"),
])
def test_an_empty_unknown_or_invalid_settings_body_is_400_and_writes_nothing(spend_client, db, body, field):
    seed("eli", permanent=10)
    before = dump(db)

    response = put(spend_client, "eli", body)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and [f["field"] for f in error["fields"]] == [field]
    assert dump(db) == before


@pytest.mark.parametrize("raw", [b"", b"[1]", b"null", b"{", b'"x"'])
def test_a_settings_body_that_is_not_a_json_object_is_400(spend_client, db, raw):
    response = spend_client.put("/users/eli/settings", data=raw, content_type="application/json")

    assert response.status_code == 400 and response.get_json()["error"]["fields"][0]["field"] == "body"
    assert dump(db) == {}


def test_settings_take_get_and_put_only_and_a_bad_user_id_is_400(spend_client, db):
    response = spend_client.post("/users/u1/settings", json={"low_balance_threshold": 5})
    assert response.status_code == 405 and response.headers["Allow"] == "GET, PUT"
    assert spend_client.get("/users/__x__/settings").status_code == 400
    assert spend_client.get("/users/u1/other").status_code == 404


def test_a_settings_body_over_64_kib_is_413(spend_client, db):
    body = json.dumps({"low_balance_threshold": 5, "pad": "x" * 70_000})

    response = spend_client.put("/users/big/settings", data=body, content_type="application/json")

    assert response.status_code == 413 and response.get_json()["error"]["code"] == "payload_too_large"


TOPUP = {"enabled": True, "threshold": 100, "price_id": "price_pack_500"}


def test_an_auto_topup_put_is_what_get_answers_with_its_state_and_its_defaults(spend_client, db, stripe_settings):
    seed("ann", permanent=500)

    response = put(spend_client, "ann", {"auto_topup": {**TOPUP, "quantity": 2, "customer": "cus_ann"}})

    assert response.status_code == 200
    assert response.get_json()["auto_topup"] == {
        "enabled": True, "threshold": 100, "price_id": "price_pack_500", "quantity": 2, "monthly_limit": 5,
        "customer": "cus_ann", "payment_method": None, "status": "active", "reason": None, "failures": 0,
        "this_month": 0, "pending_attempt": None}
    assert spend_client.get("/users/ann/settings").get_json() == response.get_json()
    assert user_doc(db, "ann")["auto_topup"]["credits"] == 1000
    # Above the threshold: no attempt.
    assert attempts(db) == {}


def test_a_price_that_is_not_a_catalog_addon_is_400_unknown_price_and_writes_nothing(spend_client, db,
                                                                                    stripe_settings):
    seed("ben", permanent=5)
    before = dump(db)

    for price in ("price_pro_monthly", "price_nope"):
        response = put(spend_client, "ben", {"auto_topup": {**TOPUP, "price_id": price}})
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "unknown_price"
    assert dump(db) == before


def test_a_put_below_the_threshold_creates_the_attempt_in_its_own_commit(spend_client, db, stripe_settings):
    seed("cyd", permanent=20)

    response = put(spend_client, "cyd", {"auto_topup": TOPUP})

    (attempt_id, attempt), = attempts(db).items()
    assert response.get_json()["auto_topup"]["pending_attempt"] == attempt_id
    assert response.get_json()["auto_topup"]["this_month"] == 1
    assert {k: attempt[k] for k in ("user_id", "price_id", "quantity", "credits", "status")} == {
        "user_id": "cyd", "price_id": "price_pack_500", "quantity": 1, "credits": 500, "status": "pending"}
    # Putting it again while the attempt is pending starts no second one; null removes the setting,
    # but its pending attempt and the month's count stay, so putting it again starts no second one either.
    put(spend_client, "cyd", {"auto_topup": TOPUP})
    assert len(attempts(db)) == 1
    assert put(spend_client, "cyd", {"auto_topup": None}).get_json()["auto_topup"] is None
    stub = user_doc(db, "cyd")["auto_topup"]
    kept = (stub["removed"], stub["enabled"], stub["pending_attempt"], stub["this_month"])
    assert kept == (True, False, attempt_id, 1)
    assert put(spend_client, "cyd", {"auto_topup": None}).get_json()["auto_topup"] is None
    again = put(spend_client, "cyd", {"auto_topup": TOPUP}).get_json()["auto_topup"]
    assert (again["pending_attempt"], again["this_month"]) == (attempt_id, 1) and len(attempts(db)) == 1
