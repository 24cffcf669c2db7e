"""`credits health` against the Firestore emulator: each count it watches, made by the real services."""

from __future__ import annotations

from datetime import timedelta

from shared.operations import health
from shared.spending import holds_service
from shared.spending import service as spending
from shared.spending.holds import HoldRequest
from shared.store import client as store_client
from tests.support.cli import credits
from tests.support.functions import function_app
from tests.support.ledger import seed
from tests.support.promo import push_body
from tests.support.stripe_story import Customer


def test_a_quiet_system_needs_no_attention(db, capsys):
    run = credits(capsys, "health", "--json")
    assert run.code == 0, run.err
    assert run.json["needs_attention"] is False
    assert {name: check["count"] for name, check in run.json["checks"].items()} == {
        "unapplied_stripe_events": 0, "rejected_promo_messages": 0, "expired_holds_not_swept": 0,
        "users_owing_credits": 0, "topups_disabled_by_failures": 0, "topups_disabled_by_refund_or_dispute": 0,
        "topups_waiting_for_action": 0,
    }
    assert "nothing needs attention" in credits(capsys, "health").out


def test_a_kept_stripe_event_and_a_rejected_promo_message_need_attention(db, webhook, capsys):
    assert webhook.outcome(Customer("hal", metadata=False).renewal(1, "price_pro_monthly")) == "unapplied"
    response = function_app("promo_grant").test_client().post("/", json=push_body(b"not json", "health-1"))
    assert response.status_code == 200
    run = credits(capsys, "health", "--json")
    assert run.code == 1
    checks = run.json["checks"]
    assert checks["unapplied_stripe_events"] == {**checks["unapplied_stripe_events"], "count": 1, "needs_attention": True}
    assert checks["rejected_promo_messages"]["count"] == 1 and checks["rejected_promo_messages"]["needs_attention"]
    table = credits(capsys, "health")
    assert table.code == 1
    assert "ATTENTION" in table.out and "needs attention: unapplied_stripe_events, rejected_promo_messages" in table.out


def test_a_hold_expired_past_the_grace_needs_attention_until_the_sweep_releases_it(db, capsys, monkeypatch):
    seed("hana", monthly=50)
    holds_service.hold(HoldRequest("hana", 10, "hana-render", "Render", 60))
    assert credits(capsys, "health", "--json").json["checks"]["expired_holds_not_swept"]["count"] == 0
    real = store_client.utcnow
    later = lambda: real() + timedelta(minutes=7)  # noqa: E731
    for module in ("shared.operations.health", "shared.store.commit", "shared.spending.holds_service"):
        monkeypatch.setattr(f"{module}.utcnow", later)
    assert credits(capsys, "health", "--json", "--hold-grace", "10").code == 0  # within a long grace
    run = credits(capsys, "health", "--json")
    assert run.code == 1 and run.json["checks"]["expired_holds_not_swept"]["count"] == 1
    assert credits(capsys, "holds", "sweep", "--json").json["released"] == 1
    assert credits(capsys, "health", "--json").code == 0


def test_users_owing_credits_are_counted_with_what_they_owe_but_need_no_attention(db, webhook, fake_stripe, capsys):
    dan = Customer("dana")
    fake_stripe.add_session("cs_dana", ("price_pack_500", 1))
    assert webhook.outcome(dan.pack_checkout("cs_dana", paid=True)) == "applied"
    spending.spend("dana", 400, "Spent most of it")
    assert webhook.outcome(dan.refund("cs_dana", 1000)) == "applied"
    run = credits(capsys, "health", "--json")
    assert run.code == 0, run.out
    assert run.json["checks"]["users_owing_credits"]["count"] == 1
    assert run.json["credits_owed"] == 400 and health.check().credits_owed == 400
