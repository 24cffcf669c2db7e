"""The `stripe_webhook` edge: signatures, payload faults, routes, and what fails the start."""

from __future__ import annotations

import json
import time

import pytest

from shared.common import settings
from shared.common.errors import CatalogError, ConfigurationError
from tests.support.functions import function_app
from tools.local import stripe_events as sf
from tests.support.ledger import dump, journal
from tests.support.stripe_webhook import SECRET

OTHER_SECRET = "whsec_test_rolled_9876543210"


def renewal_event(user_id: str = "sig-user") -> dict:
    line = sf.invoice_line("current", "price_pro_monthly", sf.period(1), "sub_sig")
    return sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], "sub_sig", "cus_sig", user_id))


def assert_refused(response, code: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_a_validly_signed_renewal_is_applied(webhook, db):
    response = webhook.send(renewal_event())
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "applied"}
    assert db.collection("users_credits").document("sig-user").get().to_dict()["credits_monthly"] == 1000


def test_a_tampered_body_is_400_invalid_signature_and_writes_nothing(webhook, db):
    payload = json.dumps(renewal_event())
    header = sf.sign(payload, SECRET)
    tampered = payload.replace('"sig-user"', '"mallory"')
    assert tampered != payload
    assert_refused(webhook.post(tampered, header), "invalid_signature")
    assert dump(db) == {}


def test_a_stale_timestamp_is_400_invalid_signature_and_writes_nothing(webhook, db):
    payload = json.dumps(renewal_event())
    assert_refused(webhook.post(payload, sf.sign(payload, SECRET, int(time.time()) - 301)), "invalid_signature")
    assert dump(db) == {}


def test_a_timestamp_just_inside_the_tolerance_is_accepted(webhook, db):
    payload = json.dumps(renewal_event())
    assert webhook.post(payload, sf.sign(payload, SECRET, int(time.time()) - 280)).status_code == 200


def test_a_missing_signature_header_is_400_and_writes_nothing(webhook, db):
    assert_refused(webhook.post(json.dumps(renewal_event()), None), "invalid_signature")
    assert dump(db) == {}


def test_a_header_with_only_a_v0_signature_is_400_and_writes_nothing(webhook, db):
    payload = json.dumps(renewal_event())
    now = int(time.time())
    header = f"t={now},v0={sf.signature(payload, SECRET, now)}"
    assert_refused(webhook.post(payload, header), "invalid_signature")
    assert dump(db) == {}


@pytest.mark.parametrize("header", ["garbage", "t=notanumber,v1=abc", "v1=abc", ""])
def test_a_malformed_header_is_400_and_writes_nothing(webhook, db, header):
    assert_refused(webhook.post(json.dumps(renewal_event()), header), "invalid_signature")
    assert dump(db) == {}


def test_two_v1_signatures_of_which_one_is_good_are_accepted(webhook, db):
    payload = json.dumps(renewal_event())
    now = int(time.time())
    header = f"t={now},v1={'0' * 64},v1={sf.signature(payload, SECRET, now)}"
    assert webhook.post(payload, header).get_json() == {"received": True, "outcome": "applied"}


def test_a_signature_by_a_secret_not_configured_is_400_and_writes_nothing(webhook, db):
    response = webhook.send(renewal_event(), secret=OTHER_SECRET)
    assert_refused(response, "invalid_signature")
    assert dump(db) == {}


def test_the_second_of_two_configured_secrets_verifies_while_a_secret_is_rolled(webhook, db, stripe_config):
    stripe_config(STRIPE_WEBHOOK_SECRET=f" {SECRET} ,  {OTHER_SECRET} ")
    assert webhook.send(renewal_event("rolled-a"), secret=OTHER_SECRET).status_code == 200
    assert webhook.send(renewal_event("rolled-b"), secret=SECRET).status_code == 200
    assert webhook.send(renewal_event("rolled-c"), secret="whsec_neither").status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"id": "evt_1", "object": "charge", "type": "invoice.paid", "data": {"object": {}}}),
        json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid"}),
        json.dumps({"id": "evt/1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}),
        json.dumps({"object": "event", "type": "invoice.paid", "data": {"object": {}}}),
    ],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_400_invalid_payload_and_writes_nothing(webhook, db, payload):
    assert_refused(webhook.post(payload, sf.sign(payload, SECRET)), "invalid_payload")
    assert dump(db) == {}


def test_an_unsigned_body_that_is_not_an_event_is_refused_for_its_signature_first(webhook, db):
    assert_refused(webhook.post("not json", None), "invalid_signature")


def test_event_types_that_change_no_credits_are_ignored_and_only_journaled(webhook, db):
    charge = sf.event("charge.succeeded", sf.fixture("2026-07-29.dahlia/charge.json"))
    assert webhook.outcome(charge) == "ignored"
    plan = sf.event("plan.created", sf.fixture("2026-07-29.dahlia/event.json")["data"]["object"])
    assert webhook.outcome(plan) == "ignored"
    assert dump(db, journal=False) == {}
    entries = journal(db)
    assert {(e["event_type"], e["outcome"]) for e in entries.values()} == {
        ("charge.succeeded", "ignored"), ("plan.created", "ignored")}


def test_wrong_method_unknown_route_and_oversized_body_get_error_bodies(webhook):
    response = webhook.client.get("/")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
    response = webhook.client.post("/elsewhere", data=b"{}")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    big = "x" * (512 * 1024 + 1)
    response = webhook.post(big, sf.sign(big, SECRET))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "payload_too_large"


def test_a_catalog_entry_without_credits_fails_the_start_naming_the_entry(stripe_config, tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps({"plans": {"price_ok": {"monthly_credits": 5}, "price_broken": {"monthly_credits": "5"}}}))
    stripe_config(CREDITS_CATALOG=str(bad))
    with pytest.raises(CatalogError, match=r"plans\.price_broken\.monthly_credits"):
        function_app("stripe_webhook")


def test_a_missing_catalog_file_or_webhook_secret_fails_the_start(stripe_config, tmp_path):
    stripe_config(CREDITS_CATALOG=str(tmp_path / "absent.json"))
    with pytest.raises(CatalogError, match="no such file"):
        function_app("stripe_webhook")
    stripe_config(CREDITS_CATALOG=str(sf.ROOT / "config" / "catalog.example.json"), STRIPE_WEBHOOK_SECRET=" , ")
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        function_app("stripe_webhook")
    settings.reset()


@pytest.mark.parametrize("signature", ["é", "abc\u2603def", "\U0001f600" * 64])
def test_a_signature_with_a_character_no_signature_can_hold_is_400_and_writes_nothing(webhook, db, signature):
    payload = json.dumps(renewal_event())
    response = webhook.post(payload, f"t={int(time.time())},v1={signature}")
    assert_refused(response, "invalid_signature")
    assert "character" in response.get_json()["error"]["message"]
    assert dump(db) == {}


UNSTORABLE_IDS = ["__sub__", "s" * 1501, "\u00e9" * 751]


@pytest.mark.parametrize("bad_id", UNSTORABLE_IDS, ids=["reserved", "over-1500-ascii", "over-1500-bytes"])
def test_a_signed_event_whose_subscription_id_cannot_be_a_map_key_is_kept_unapplied(webhook, db, bad_id):
    line = sf.invoice_line("current", "price_pro_monthly", sf.period(1), bad_id)
    event = sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], bad_id, "cus_sig", "sig-user"))
    assert webhook.outcome(event) == "unapplied"
    kept = db.document(f"webhook_unapplied/{event['id']}").get().to_dict()
    assert "id that is" in kept["reason"] and kept["raw"]
    assert db.document("users_credits/sig-user").get().to_dict() is None


@pytest.mark.parametrize("bad_id", UNSTORABLE_IDS[:2], ids=["reserved", "over-1500-ascii"])
def test_a_signed_refund_or_dispute_whose_id_cannot_be_a_map_key_is_kept_unapplied(webhook, db, bad_id):
    refund = sf.event("charge.refunded", sf.charge(bad_id, "pi_sig", 1000, 1000, "cus_sig"))
    dispute = sf.event("charge.dispute.created", sf.dispute(bad_id, "ch_sig", "pi_sig", 1000, "needs_response"))
    for event in (refund, dispute):
        assert webhook.outcome(event) == "unapplied"
        assert "id that is" in db.document(f"webhook_unapplied/{event['id']}").get().to_dict()["reason"]
