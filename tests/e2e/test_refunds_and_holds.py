"""A user's day with refunds, holds and previews, through the real function and the real emulator."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests

from shared.ledger import collections
from tests.support.clock import Clock
from tests.support.ledger import (
    assert_ledger_invariant,
    dump,
    records_of,
    seed,
    user_doc,
)
from tests.support.servers import serve_function
from tests.support.stripe_story import Customer

STARTER = "price_starter_monthly"


def post(client, path, headers=None, **body):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers or {})


def pools(body):
    return body["balance"]["credits_monthly"], body["balance"]["credits_permanent"]


def moves(body):
    return [(t["type"], t["pool"], t["amount"]) for t in body["transactions"]]


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def test_a_preview_shows_the_spend_and_writes_nothing_not_even_its_key(spend_client, db):
    seed("pia", monthly=100, permanent=20)
    before = dump(db)
    response = post(spend_client, "/spend", user_id="pia", amount=50, dry_run=True, idempotency_key="p-1")
    assert response.status_code == 200
    body = response.get_json()
    assert body["dry_run"] is True and body["amount"] == 50 and body["user_id"] == "pia"
    assert body["transactions"] == [
        {"pool": "permanent", "amount": -20, "description": "Credits spent (from permanent pool)"},
        {"pool": "monthly", "amount": -30, "description": "Credits spent (from monthly pool)"},
    ]
    assert pools(body) == (70, 0)
    assert post(spend_client, "/spend", user_id="pia", amount=500, dry_run=True).status_code == 402
    assert post(spend_client, "/spend", user_id="pia", amount=5, dry_run="yes").status_code == 400
    assert dump(db) == before
    # The key was not remembered: a real spend with it and another amount goes through.
    assert post(spend_client, "/spend", user_id="pia", amount=10, idempotency_key="p-1").status_code == 200


def test_a_story_that_fails_is_refunded_the_pool_drawn_last_first(spend_client, db):
    seed("sam", monthly=100, permanent=20)
    post(spend_client, "/spend", user_id="sam", amount=50, description="Story", idempotency_key="story-1")
    partial = post(spend_client, "/refunds", {"Idempotency-Key": "r-1"}, user_id="sam", spend_key="story-1",
                   amount=10, description="Story failed")
    assert partial.status_code == 200
    body = partial.get_json()
    assert moves(body) == [("refund", "monthly", 10)]
    assert body["transactions"][0]["description"] == "Story failed (to monthly pool)"
    assert body["transactions"][0]["source"] == "story-1"
    assert (body["amount"], body["refunded_total"], body["refundable"]) == (10, 10, 40)
    again = post(spend_client, "/refunds", {"Idempotency-Key": "r-1"}, user_id="sam", spend_key="story-1",
                 amount=10, description="Story failed")
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == body
    conflict = post(spend_client, "/refunds", user_id="sam", spend_key="story-1", amount=11, idempotency_key="r-1")
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "idempotency_conflict"
    rest = post(spend_client, "/refunds", user_id="sam", spend_key="story-1").get_json()
    assert moves(rest) == [("refund", "monthly", 20), ("refund", "permanent", 20)]
    assert (rest["refunded_total"], rest["refundable"]) == (50, 0)
    assert pools(rest) == (100, 20) and rest["balance"]["total_spent"] == 0
    over = post(spend_client, "/refunds", user_id="sam", spend_key="story-1", amount=1)
    assert over.status_code == 409
    assert over.get_json()["error"]["code"] == "refund_exceeds_spend" and over.get_json()["error"]["refundable"] == 0
    assert post(spend_client, "/refunds", user_id="sam", spend_key="nope").get_json()["error"]["code"] == "spend_not_found"
    assert post(spend_client, "/refunds", user_id="other", spend_key="story-1").status_code == 404
    before = dump(db)
    for bad in ({"user_id": "sam", "spend_key": "story-1", "amount": 0}, {"user_id": "sam", "spend_key": "story-1",
                "amount": 1.5}, {"user_id": "sam"}, {"user_id": "sam", "spend_key": "story-1", "amount": True}):
        assert post(spend_client, "/refunds", **bad).status_code == 400
    assert dump(db) == before
    assert_ledger_invariant(db, "sam")


def test_a_long_generation_is_held_then_captured_at_less_than_reserved(spend_client, db):
    seed("gus", monthly=100, permanent=50)
    held = post(spend_client, "/holds", user_id="gus", amount=120, hold_id="gen-1", description="Video", expires_in=600)
    assert held.status_code == 200
    body = held.get_json()
    assert body["status"] == "held" and moves(body) == [("spent", "permanent", -50), ("spent", "monthly", -70)]
    assert pools(body) == (30, 0) and body["expires_at"].endswith("Z")
    assert {t["source"] for t in body["transactions"]} == {"gen-1"}
    assert post(spend_client, "/holds", user_id="gus", amount=120, hold_id="gen-1", description="Video",
                expires_in=600).headers.get("Idempotent-Replayed") == "true"
    assert post(spend_client, "/holds", user_id="gus", amount=1, hold_id="gen-1").status_code == 409
    assert post(spend_client, "/holds/gen-1/capture", amount=121).get_json()["error"]["code"] == "capture_exceeds_hold"
    captured = post(spend_client, "/holds/gen-1/capture", amount=80)
    cbody = captured.get_json()
    assert captured.status_code == 200 and (cbody["status"], cbody["captured"], cbody["amount"]) == ("captured", 80, 120)
    assert moves(cbody) == [("refund", "monthly", 40)] and pools(cbody) == (70, 0)
    assert post(spend_client, "/holds/gen-1/capture", amount=80).headers.get("Idempotent-Replayed") == "true"
    late = post(spend_client, "/holds/gen-1/release")
    assert late.status_code == 409 and late.get_json()["error"] == {
        **late.get_json()["error"], "code": "hold_not_open", "status": "captured"}
    view = spend_client.get("/holds/gen-1").get_json()
    assert (view["status"], view["captured"], view["amount"], view["user_id"]) == ("captured", 80, 120, "gus")
    # What the capture kept can be refunded later, by the hold's id.
    refund = post(spend_client, "/refunds", user_id="gus", spend_key="gen-1").get_json()
    assert (refund["amount"], refund["refunded_total"], refund["refundable"]) == (80, 80, 0)
    assert moves(refund) == [("refund", "monthly", 30), ("refund", "permanent", 50)]
    assert pools(refund) == (100, 50) and refund["balance"]["total_spent"] == 0
    assert spend_client.get("/holds/nope").get_json()["error"]["code"] == "hold_not_found"
    assert post(spend_client, "/holds/nope/release").status_code == 404
    assert post(spend_client, "/holds", user_id="gus", amount=1, hold_id="h", expires_in=0).status_code == 400
    assert post(spend_client, "/holds", user_id="gus", amount=1, hold_id="h", expires_in=86_401).status_code == 400
    assert post(spend_client, "/holds", user_id="gus", amount=10**6, hold_id="h").status_code == 402
    assert_ledger_invariant(db, "gus")


def test_a_hold_id_equal_to_a_spend_key_is_a_conflict(spend_client, db):
    seed("kim", monthly=10)
    post(spend_client, "/spend", user_id="kim", amount=1, idempotency_key="shared-key")
    response = post(spend_client, "/holds", user_id="kim", amount=1, hold_id="shared-key")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "idempotency_conflict"


def test_a_crashed_worker_s_hold_expires_and_its_credits_come_back_once(spend_client, operator_client, db, clock):
    seed("wes", monthly=40, permanent=10)
    post(spend_client, "/holds", user_id="wes", amount=30, hold_id="job-7", expires_in=60)
    assert spend_client.get("/balance/wes").get_json()["balance"] == 20
    clock.advance(61)
    before = dump(db)
    balance = spend_client.get("/balance/wes").get_json()
    assert (balance["credits_monthly"], balance["credits_permanent"], balance["total_spent"]) == (40, 10, 0)
    assert spend_client.get("/holds/job-7").get_json()["status"] == "expired"
    preview = post(spend_client, "/spend", user_id="wes", amount=50, dry_run=True)
    assert preview.status_code == 200
    released = post(spend_client, "/holds/job-7/release")
    assert released.status_code == 409 and released.get_json()["error"]["status"] == "expired"
    assert dump(db) == before  # reads and refused settlements wrote nothing
    sweep = post(operator_client, "/sweep/holds").get_json()
    assert sweep["released"] == 1
    assert post(operator_client, "/sweep/holds").get_json()["released"] == 0
    refunds = [r for r in records_of(db, "wes") if r["type"] == "refund"]
    assert sorted((r["pool"], r["amount"]) for r in refunds) == [("monthly", 20), ("permanent", 10)]
    assert db.document(collections.hold("job-7")).get().to_dict()["status"] == "expired"
    assert user_doc(db, "wes")["open_holds"] == {}
    assert_ledger_invariant(db, "wes")


def test_the_next_spend_writes_an_expired_hold_s_release_in_its_own_commit(spend_client, operator_client, db, clock):
    seed("val", monthly=30)
    post(spend_client, "/holds", user_id="val", amount=30, hold_id="job-8", expires_in=5)
    clock.advance(6)
    spent = post(spend_client, "/spend", user_id="val", amount=25, idempotency_key="after-expiry")
    assert spent.status_code == 200 and pools(spent.get_json()) == (5, 0)
    assert [(r["type"], r["amount"]) for r in sorted(records_of(db, "val"), key=lambda r: r["created_at"])] == [
        ("subscription_grant", 30), ("spent", -30), ("refund", 30), ("spent", -25)]
    assert post(operator_client, "/sweep/holds").get_json()["released"] == 0
    assert_ledger_invariant(db, "val")


def test_a_refund_after_a_renewal_gives_the_monthly_part_back_expired(spend_client, webhook, db):
    ren = Customer("ren")
    assert webhook.outcome(ren.renewal(1, STARTER)) == "applied"
    post(spend_client, "/spend", user_id="ren", amount=50, idempotency_key="before-renewal")
    assert webhook.outcome(ren.renewal(2, STARTER)) == "applied"
    body = post(spend_client, "/refunds", user_id="ren", spend_key="before-renewal").get_json()
    assert moves(body) == [("refund", "monthly", 50), ("monthly_expired", "monthly", -50)]
    assert pools(body) == (300, 0) and body["balance"]["total_spent"] == 0
    assert_ledger_invariant(db, "ren")


def test_ten_concurrent_refunds_of_one_spend_never_give_back_more_than_it_took(spend_app, db):
    seed("ten", monthly=100)
    spend_app.test_client().post("/spend", json={"user_id": "ten", "amount": 50, "idempotency_key": "s-ten"})
    barrier = Barrier(10)

    def refund(n):
        client = spend_app.test_client()
        barrier.wait()
        return client.post("/refunds", json={"user_id": "ten", "spend_key": "s-ten", "amount": 10,
                                             "idempotency_key": f"r-{n}"}).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(refund, range(10)))
    assert sorted(statuses) == [200] * 5 + [409] * 5
    doc = user_doc(db, "ten")
    assert (doc["credits_monthly"], doc["total_spent"]) == (100, 0)
    assert_ledger_invariant(db, "ten")


def test_capture_and_release_racing_on_two_instances_settle_the_hold_once(spend_client, db):
    seed("race", monthly=100)
    post(spend_client, "/holds", user_id="race", amount=60, hold_id="race-1", expires_in=600)
    with serve_function("spend") as first, serve_function("spend") as second:
        barrier = Barrier(8)

        def settle(n):
            base = (first, second)[n % 2]
            barrier.wait()
            if n % 4 < 2:
                response = requests.post(f"{base}/holds/race-1/capture", json={"amount": 25}, timeout=30)
            else:
                response = requests.post(f"{base}/holds/race-1/release", timeout=30)
            return response.status_code, response.headers.get("Idempotent-Replayed"), response.json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(settle, range(8)))
    firsts = [body for status, replayed, body in results if status == 200 and replayed is None]
    assert len(firsts) == 1
    winner = firsts[0]["status"]
    for status, replayed, body in results:
        if status == 200:
            assert body["status"] == winner
        else:
            assert status == 409 and body["error"] == {**body["error"], "code": "hold_not_open", "status": winner}
    doc = user_doc(db, "race")
    assert doc["credits_monthly"] == (75 if winner == "captured" else 100)
    assert len([r for r in records_of(db, "race") if r["type"] == "refund"]) == 1
    assert_ledger_invariant(db, "race")


def test_a_hold_that_expires_while_a_renewal_lands_is_given_back_before_the_reset(spend_client, operator_client, webhook, db, clock):
    ivy = Customer("ivy")
    assert webhook.outcome(ivy.renewal(1, STARTER)) == "applied"
    post(spend_client, "/holds", user_id="ivy", amount=100, hold_id="ivy-job", expires_in=30)
    clock.advance(31)
    assert webhook.outcome(ivy.renewal(2, STARTER)) == "applied"
    doc = user_doc(db, "ivy")
    assert doc["credits_monthly"] == 300 and doc["open_holds"] == {}
    kinds = sorted((r["type"], r["amount"]) for r in records_of(db, "ivy") if r["source"] == "ivy-job")
    assert kinds == [("refund", 100), ("spent", -100)]
    # The renewal expired the whole old pool, the given-back credits with it.
    assert ("monthly_expired", -300) in [(r["type"], r["amount"]) for r in records_of(db, "ivy")]
    assert spend_client.get("/holds/ivy-job").get_json()["status"] == "expired"
    assert post(operator_client, "/sweep/holds").get_json()["released"] == 0
    assert_ledger_invariant(db, "ivy")


def test_a_hold_released_after_a_renewal_gives_its_monthly_part_back_expired(spend_client, webhook, db):
    eli = Customer("eli")
    webhook.outcome(eli.renewal(1, STARTER))
    post(spend_client, "/holds", user_id="eli", amount=100, hold_id="eli-job")
    webhook.outcome(eli.renewal(2, STARTER))
    body = post(spend_client, "/holds/eli-job/release").get_json()
    assert (body["status"], body["captured"]) == ("released", 0)
    assert moves(body) == [("refund", "monthly", 100), ("monthly_expired", "monthly", -100)]
    assert pools(body) == (300, 0)
    assert_ledger_invariant(db, "eli")
