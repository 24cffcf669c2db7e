"""The support console's actions and pages over HTTP against the emulator: a double submit does
nothing twice, each action writes what the API or `credits` writes plus its audit entry, roles
and CSRF are enforced, IAP's header names the actor in Google Cloud mode."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from console.app import create_app
from console.config import ConsoleSettings
from shared.ledger import collections
from shared.operations import adjustments, audit_log
from shared.promotions import rejected
from shared.spending import service as spending
from tests.support.console import csrf_of, nonce_of
from tests.support.ledger import assert_ledger_invariant, records_of, user_doc

LIMIT = 100
DEV = ConsoleSettings(dev_sign_in=True, secret_key="test-secret", agent_adjust_limit=LIMIT)


@pytest.fixture
def console(db):
    app = create_app(DEV)
    app.testing = True
    return app


def signed_in(app, actor: str, role: str):
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    answer = client.post("/sign-in", data={"actor": actor, "role": role, "csrf_token": csrf_of(page), "next": "/"})
    assert answer.status_code == 303
    return client


def form_of(client, user_id: str, **fields):
    """A fresh form of the user page: its CSRF token and nonce, and the fields."""
    page = client.get(f"/users/{user_id}").get_data(as_text=True)
    return {"csrf_token": csrf_of(page), "nonce": nonce_of(page), **fields}


def seed(user_id: str, permanent: int) -> None:
    adjustments.adjust(user_id, "permanent", permanent, "seed", "test", idempotency_key=f"seed-{user_id}")


def audit_entries(db, user_id: str):
    query = db.collection(collections.AUDIT).where(filter=FieldFilter("user_id", "==", user_id))
    return [snap.to_dict() for snap in query.stream()]


def test_a_double_submitted_refund_refunds_once_and_is_audited_once(console, db, spend_client):
    seed("ann", 100)
    assert spend_client.post("/spend", json={"user_id": "ann", "amount": 60, "idempotency_key": "ann-s1"}).status_code == 200
    agent = signed_in(console, "alex@example.com", "agent")
    form = form_of(agent, "ann", spend_key="ann-s1", amount="25", reason="failed job")
    first = agent.post("/users/ann/refund", data=form)
    second = agent.post("/users/ann/refund", data=form)
    assert first.status_code == second.status_code == 303
    assert spending.balance("ann")["balance"] == 65
    assert [r["amount"] for r in records_of(db, "ann") if r["type"] == "refund"] == [25]
    entries = audit_entries(db, "ann")
    assert len(entries) == 1
    assert entries[0]["actor"] == "alex@example.com" and entries[0]["reason"] == "failed job"
    assert entries[0]["changed"]["before"]["credits_permanent"] == 40
    assert entries[0]["changed"]["after"]["credits_permanent"] == 65
    page = agent.get("/users/ann").get_data(as_text=True)
    assert "already" in page  # the second submit said it was done before
    assert_ledger_invariant(db, "ann")


def test_a_console_refund_writes_what_the_api_refund_writes(console, db, spend_client):
    for user in ("api", "web"):
        seed(user, 100)
        assert spend_client.post("/spend", json={"user_id": user, "amount": 70, "idempotency_key": f"{user}-s"}).status_code == 200
    assert spend_client.post("/refunds", json={"user_id": "api", "spend_key": "api-s", "amount": 30,
                                               "description": "Refund by support", "idempotency_key": "r1"}).status_code == 200
    agent = signed_in(console, "alex@example.com", "agent")
    agent.post("/users/web/refund", data=form_of(agent, "web", spend_key="web-s", amount="30", reason="why"))

    def shape(user):
        return sorted((r["type"], r["pool"], r["amount"], r["description"]) for r in records_of(db, user))

    assert shape("api") == shape("web")
    assert spending.balance("api")["balance"] == spending.balance("web")["balance"] == 60


def test_an_agent_adjustment_over_the_limit_is_refused_and_an_admins_is_not(console, db):
    seed("bea", 10)
    agent = signed_in(console, "alex@example.com", "agent")
    refused = agent.post("/users/bea/adjust", data=form_of(agent, "bea", pool="permanent", amount=str(LIMIT + 1),
                                                            reason="big"))
    assert refused.status_code == 403
    assert "at most 100" in refused.get_data(as_text=True)
    assert spending.balance("bea")["balance"] == 10 and audit_entries(db, "bea") == []
    admin = signed_in(console, "root@example.com", "admin")
    done = admin.post("/users/bea/adjust", data=form_of(admin, "bea", pool="permanent", amount=str(LIMIT + 1),
                                                         reason="big"))
    assert done.status_code == 303
    assert spending.balance("bea")["balance"] == 10 + LIMIT + 1
    adjustment = max((r for r in records_of(db, "bea") if r["type"] == "adjustment"), key=lambda r: r["seq"])
    assert adjustment["description"] == "Adjustment by root@example.com: big"
    assert [e["actor"] for e in audit_entries(db, "bea")] == ["root@example.com"]


def test_a_viewer_may_read_every_page_and_take_no_action(console, db, spend_client):
    seed("cy", 50)
    spend_client.post("/holds", json={"user_id": "cy", "amount": 20, "hold_id": "cy-h1"})
    viewer = signed_in(console, "val@example.com", "viewer")
    for path in ("/", "/search?q=cy-h1", "/users/cy", "/users/cy/ledger?type=spent&pool=permanent",
                 "/events", "/usage", "/health", "/audit"):
        answer = viewer.get(path, follow_redirects=True)
        assert answer.status_code == 200, path
    page = viewer.get("/users/cy").get_data(as_text=True)
    assert 'name="nonce"' not in page  # no form at all
    form = {"csrf_token": csrf_of(page), "nonce": "a-viewer-made-this-nonce", "hold_id": "cy-h1", "reason": "try"}
    answer = viewer.post("/users/cy/release", data=form)
    assert answer.status_code == 403
    assert spending.balance("cy")["credits_held"] == 20 and audit_entries(db, "cy") == []


def test_a_form_without_its_csrf_token_does_nothing(console, db):
    seed("dan", 10)
    agent = signed_in(console, "alex@example.com", "agent")
    form = form_of(agent, "dan", pool="permanent", amount="5", reason="r")
    del form["csrf_token"]
    assert agent.post("/users/dan/adjust", data=form).status_code == 400
    assert spending.balance("dan")["balance"] == 10


def test_a_search_finds_the_user_by_spend_key_hold_id_or_user_id(console, db, spend_client):
    seed("eva", 50)
    spend_client.post("/spend", json={"user_id": "eva", "amount": 5, "idempotency_key": "eva-key"})
    spend_client.post("/holds", json={"user_id": "eva", "amount": 5, "hold_id": "eva-hold"})
    agent = signed_in(console, "alex@example.com", "agent")
    for query in ("eva", "eva-key", "eva-hold"):
        answer = agent.get(f"/search?q={query}")
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/users/eva"), query
    assert "No user found" in agent.get("/search?q=nobody-at-all").get_data(as_text=True)


def test_turning_auto_top_up_off_twice_from_one_form_writes_once_as_the_api_would(console, db, spend_client,
                                                                                 stripe_settings):
    setting = {"enabled": True, "threshold": 5, "price_id": "price_pack_500", "customer": "cus_fay",
               "payment_method": "pm_card"}
    seed("fay", 100)
    assert spend_client.put("/users/fay/settings", json={"auto_topup": setting}).status_code == 200
    agent = signed_in(console, "alex@example.com", "agent")
    form = form_of(agent, "fay", enabled="false", reason="card stolen")
    agent.post("/users/fay/auto-topup", data=form)
    after_first = user_doc(db, "fay")["auto_topup"]
    agent.post("/users/fay/auto-topup", data=form)
    assert user_doc(db, "fay")["auto_topup"] == after_first
    assert after_first["enabled"] is False
    assert len(audit_entries(db, "fay")) == 1
    # The API's PUT of the same setting, disabled, stores the same.
    seed("gus", 100)
    assert spend_client.put("/users/gus/settings", json={"auto_topup": {**setting, "enabled": False}}).status_code == 200
    assert user_doc(db, "gus")["auto_topup"] == after_first


def test_discarding_a_kept_promo_message_is_audited_with_its_actor(console, db):
    rejected.reject("msg-1", "no grant_id", b'{"users": ["x"]}')
    agent = signed_in(console, "alex@example.com", "agent")
    page = agent.get("/events").get_data(as_text=True)
    assert "msg-1" in page and "no grant_id" in page
    form = {"csrf_token": csrf_of(page), "nonce": nonce_of(page), "message_id": "msg-1", "reason": "test data"}
    assert agent.post("/messages/discard", data=form).status_code == 303
    assert agent.post("/messages/discard", data=form).status_code == 303
    entries = audit_log.latest()
    assert [(e["action"], e["actor"], e["outcome"]) for e in entries] == [("discard_message", "alex@example.com", "discarded")]
    kept = rejected.kept_messages(doc_id="msg-1")[0][1]
    assert kept["status"] == "discarded" and kept["discarded_by"] == "alex@example.com"


def test_behind_iap_the_header_names_the_actor_and_the_lists_give_the_role(db):
    app = create_app(ConsoleSettings(secret_key="s", agents=("alex@example.com",), viewers=("domain:finance.example",)))
    client = app.test_client()
    header = "X-Goog-Authenticated-User-Email"
    assert client.get("/").status_code == 403
    assert client.get("/", headers={header: "accounts.google.com:mallory@example.com"}).status_code == 403
    assert client.get("/sign-in").status_code == 404  # no development sign-in in Google Cloud mode
    page = client.get("/", headers={header: "accounts.google.com:val@finance.example"}).get_data(as_text=True)
    assert "val@finance.example" in page and "viewer" in page
    page = client.get("/users/zed", headers={header: "accounts.google.com:alex@example.com"}).get_data(as_text=True)
    assert re.search(r'data-testid="role">agent<', page)
    assert "console-test-secret" not in page and "secret_key" not in page


def test_discarding_a_kept_stripe_event_is_what_credits_replay_does_and_is_audited(console, db):
    from shared.billing import service as webhooks
    from tools.local import stripe_events as sf

    line = sf.invoice_line("current", "price_unknown_monthly", sf.period(1), "sub_hal")
    evt = sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], "sub_hal", "cus_hal", "hal"))
    assert webhooks.handle(evt, json.dumps(evt)).outcome == "unapplied"
    agent = signed_in(console, "alex@example.com", "agent")
    page = agent.get("/events").get_data(as_text=True)
    assert evt["id"] in page
    form = {"csrf_token": csrf_of(page), "nonce": nonce_of(page), "event_id": evt["id"], "user_id": "hal",
            "reason": "a price that never existed"}
    assert agent.post("/events/discard", data=form).status_code == 303
    assert agent.post("/events/discard", data=form).status_code == 303
    journal = db.document(f"webhook_events/{evt['id']}").get().to_dict()
    assert journal["outcome"] == "discarded" and journal["discarded_by"] == "alex@example.com"
    assert [(e["action"], e["outcome"]) for e in audit_entries(db, "hal")] == [("discard_event", "discarded")]
    assert 'data-testid="kept-events"' not in agent.get("/events").get_data(as_text=True)  # none waits


def test_the_ledger_page_filters_by_type_and_pages_with_its_filters_kept(console, db, spend_client):
    seed("ivy", 100)
    for n in range(30):
        assert spend_client.post("/spend", json={"user_id": "ivy", "amount": 1, "idempotency_key": f"ivy-{n}"}).status_code == 200
    viewer = signed_in(console, "val@example.com", "viewer")
    first = viewer.get("/users/ivy/ledger?type=spent").get_data(as_text=True)
    assert first.count("ivy-") == 25 and "adjustment" not in first.split('data-testid="ledger"')[1]
    more = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    assert "type=spent" in more
    second = viewer.get(more).get_data(as_text=True)
    assert second.count("ivy-") == 5 and 'rel="next"' not in second
    refunds_only = viewer.get("/users/ivy/ledger?type=refund").get_data(as_text=True)
    assert "No records." in refunds_only


def test_the_user_page_shows_a_top_up_waiting_for_action_but_never_its_client_secret(console, db):
    seed("ida", 50)
    db.collection(collections.TOPUPS).document("topup_ida_1").set({
        "attempt_id": "topup_ida_1", "user_id": "ida", "price_id": "price_pack_500", "quantity": 1, "credits": 500,
        "status": "action_required", "reason": "authentication_required", "payment_intent": "pi_ida",
        "client_secret": "pi_ida_secret_do_not_show", "created_at": datetime(2026, 12, 4, 8, tzinfo=timezone.utc)})
    agent = signed_in(console, "alex@example.com", "agent")
    page = agent.get("/users/ida").get_data(as_text=True)
    assert "topup_ida_1" in page and "action_required" in page
    assert "secret" not in page
