"""Odd input, as an attacker or a broken client sends it: every answer is a clear 4xx (or a kept,
acknowledged message), nothing is written for it, and nothing is ever a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket

import pytest

from shared.spending import page_tokens
from tools.local import stripe_events as sf
from tests.support.ledger import dump, seed
from tests.support.servers import serve_function
from tests.support.stripe_story import Customer

PRO = "price_pro_monthly"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# --- deep JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    deep(976),
    '{"user_id": "u", "amount": 1, "extra": ' + deep(976) + "}",
    '{"user_id": "u", "amount": 1, "extra": ' + deep(70) + "}",
])
def test_a_deeply_nested_spend_body_is_400_and_writes_nothing(spend_client, db, body):
    seed("u", permanent=5)
    before = dump(db)
    assert_error(spend_client.post("/spend", data=body, content_type="application/json"), 400, "invalid_request")
    assert dump(db) == before


def test_a_signed_event_nested_deeply_inside_its_object_is_400_invalid_payload(webhook, db):
    event = Customer("deep").renewal(1, PRO)
    payload = json.dumps(event).replace('"object": "invoice"', '"object": "invoice", "x": ' + deep(976), 1)
    response = webhook.post(payload, sf.sign(payload, "whsec_test_primary_0123456789"))
    assert_error(response, 400, "invalid_payload")
    assert dump(db) == {}


# --- signed edge events ----------------------------------------------------------------------


def _renewal_with(mutate) -> dict:
    event = Customer("edgy").renewal(1, PRO)
    mutate(event["data"]["object"])
    return event


def _line(obj) -> dict:
    return obj["lines"]["data"][0]


EDGE_EVENTS = {
    "invoice id with a slash": lambda: _renewal_with(lambda o: o.update(id="in_a/b")),
    "subscription id with a slash": lambda: _renewal_with(
        lambda o: o["parent"]["subscription_details"].update(subscription="sub_a/b")),
    "customer id with a slash": lambda: _renewal_with(lambda o: o.update(customer="cus_a/b")),
    "customer id __x__": lambda: _renewal_with(lambda o: o.update(customer="__x__")),
    "customer id with a lone surrogate": lambda: _renewal_with(lambda o: o.update(customer="cus_\ud800")),
    "quantity 2**62": lambda: _renewal_with(lambda o: _line(o).update(quantity=2**62)),
    "period start 10**12": lambda: _renewal_with(lambda o: _line(o)["period"].update(start=10**12)),
    "period start -10**12": lambda: _renewal_with(lambda o: _line(o)["period"].update(start=-10**12)),
    "period start 2**63": lambda: _renewal_with(lambda o: _line(o)["period"].update(start=2**63)),
    "period end 10**15": lambda: _renewal_with(lambda o: _line(o)["period"].update(end=10**15)),
    "user id with a NUL": lambda: _renewal_with(
        lambda o: o["parent"]["subscription_details"].update(metadata={"user_id": "a\u0000b"})),
    "event id __x__": lambda: {**Customer("edgy").renewal(1, PRO), "id": "__x__"},
    "session id with a slash": lambda: Customer("edgy").pack_checkout("cs_a/b", paid=True),
    "cancellation ended_at 10**20": lambda: _with_ended_at(10**20),
}


def _with_ended_at(value: int) -> dict:
    event = Customer("edgy").cancellation(sf.period(2)["start"])
    event["data"]["object"].update(ended_at=value, canceled_at=value)
    return event


@pytest.mark.parametrize("make", EDGE_EVENTS.values(), ids=EDGE_EVENTS.keys())
def test_a_genuine_looking_event_that_cannot_be_applied_is_answered_not_crashed(webhook, db, make):
    response = webhook.send(make())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] in ("applied", "unapplied", "ignored", "duplicate")


def test_a_customer_id_of_reserved_name_is_linked_and_used_like_any_other(webhook, db):
    kim = Customer("kim", tag="x")
    checkout = kim.subscription_checkout()
    checkout["data"]["object"]["customer"] = "__x__"
    assert webhook.outcome(checkout) == "ignored"
    renewal = Customer("kim", metadata=False, tag="x").renewal(1, PRO)
    renewal["data"]["object"]["customer"] = "__x__"
    assert webhook.outcome(renewal) == "applied"


def test_a_padded_user_id_in_metadata_is_that_user_not_the_trimmed_one(webhook, db):
    assert webhook.outcome(Customer(" padded ", tag="padded").renewal(1, PRO)) == "applied"
    assert db.collection("users_credits").document(" padded ").get().exists
    assert not db.collection("users_credits").document("padded").get().exists


# --- promo data ----------------------------------------------------------------------------


def test_deeply_nested_promo_data_is_kept_as_rejected_and_acknowledged(promo_client, db):
    data = ('{"grant_id": "g", "user_ids": ["u"], "amount": 1, "x": ' + deep(976) + "}").encode()
    response = promo_client.post("/", json=_push(data, "m-deep"))
    assert response.status_code == 200
    kept = db.collection("promo_rejected").document("m-deep").get().to_dict()
    assert "nested deeper" in kept["reason"]
    assert not db.collection("users_credits").document("u").get().exists


def test_every_refusal_of_the_promo_function_is_in_the_error_envelope(promo_client):
    assert_error(promo_client.get("/"), 405, "method_not_allowed")
    assert_error(promo_client.post("/", json={"not": "a cloud event"}), 400, "invalid_request")
    assert_error(promo_client.post("/", data=b"x", content_type="text/plain"), 415, "unsupported_media_type")


def _push(data: bytes, message_id: str) -> dict:
    return {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id, "attributes": {}},
            "subscription": "projects/demo-credits/subscriptions/promo"}


@pytest.fixture
def promo_client(db):
    from tests.support.functions import function_app

    return function_app("promo_grant").test_client()


# --- page tokens ---------------------------------------------------------------------------


def _forged(user_id: str, created_at: str, transaction_id: str, key: bytes) -> str:
    payload = json.dumps([user_id, created_at, transaction_id], separators=(",", ":")).encode()
    tag = hmac.new(key, payload, hashlib.sha256).hexdigest()[:24]
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + tag


@pytest.mark.parametrize("created_at, transaction_id", [
    ("2026-01-01T00:00:00+00:00", "txn_a"),
    ("9999-12-31T23:59:59-12:00", "txn_a"),
    ("2026-01-01T00:00:00+00:00", "\ud800"),
])
def test_a_page_token_signed_with_the_old_constant_key_is_400(spend_client, db, created_at, transaction_id):
    token = _forged("u", created_at, transaction_id, b"two-pool-credits/transactions-page/v1")
    assert_error(spend_client.get(f"/transactions/u?page_token={token}"), 400, "invalid_request")


def test_a_token_with_a_valid_tag_but_an_impossible_time_is_400_not_500(spend_client, db, monkeypatch):
    # Even if the key leaked, decoded fields are validated before use.
    monkeypatch.setattr(page_tokens, "_tag", lambda payload: "0" * 32)
    payload = json.dumps(["u", "9999-12-31T23:59:59-12:00", "txn_a"]).encode()
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + "0" * 32
    error = assert_error(spend_client.get(f"/transactions/u?page_token={token}"), 400, "invalid_request")
    assert error["fields"] == [{"field": "page_token", "problem": "not a token this API issued for this user"}]


# --- bodies, paths, headers ----------------------------------------------------------------


def test_a_malformed_chunked_body_is_400_in_the_envelope(db):
    with serve_function("spend") as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /spend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", reply[:300]
    assert b'"invalid_request"' in body


@pytest.mark.parametrize("path, status, code", [
    ("/balance/%0A", 404, "not_found"),
    ("/balance/%FF", 400, "invalid_request"),
    ("/balance/%FE", 400, "invalid_request"),
    ("/balance/a%00b", 400, "invalid_request"),
    ("/balance/__x__", 400, "invalid_request"),
    ("/nowhere", 404, "not_found"),
])
def test_every_odd_path_answers_in_the_envelope(spend_client, path, status, code):
    error = assert_error(spend_client.get(path), status, code)
    if status == 400:
        assert all(set(f) == {"field", "problem"} for f in error["fields"])


def test_a_wrong_method_names_the_allowed_one(spend_client):
    response = spend_client.get("/spend")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


def test_a_utf8_idempotency_key_in_the_header_and_the_body_is_one_key(spend_client, db):
    seed("u", permanent=10)
    key = "clé-ünïcode-☃"
    body = {"user_id": "u", "amount": 3, "idempotency_key": key}
    first = spend_client.post("/spend", json=body, headers={"Idempotency-Key": key.encode().decode("latin-1")})
    assert first.status_code == 200, first.get_data(as_text=True)
    again = spend_client.post("/spend", json=body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert db.collection("users_credits").document("u").get().to_dict()["credits_permanent"] == 7


def test_a_header_key_that_is_not_utf8_is_400(spend_client, db):
    response = spend_client.post("/spend", json={"user_id": "u", "amount": 1}, headers={"Idempotency-Key": "\xff\xfe"})
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("user_id", ["a\u0000b", "tab\there", "\ud800", "a/b", ".."])
def test_an_id_with_a_control_character_a_surrogate_or_a_slash_is_400(spend_client, db, user_id):
    body = json.dumps({"user_id": user_id, "amount": 1})
    assert_error(spend_client.post("/spend", data=body, content_type="application/json"), 400, "invalid_request")
    assert dump(db) == {}
