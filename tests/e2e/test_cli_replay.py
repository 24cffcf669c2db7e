"""`credits replay`: stored unapplied Stripe events and rejected promo messages, applied once."""

from __future__ import annotations

import json

import pytest

from shared.common import settings
from shared.promotions import rejected
from shared.billing import service as webhooks
from tools.local import stripe_events as sf
from tests.support.cli import credits, records_of, user_doc

PLANS = {"price_pro_monthly": {"monthly_credits": 1000}}


@pytest.fixture
def catalog_file(monkeypatch, tmp_path):
    """A catalog the test can extend, as an operator fixes a missing price."""
    path = tmp_path / "catalog.json"

    def write(plans):
        path.write_text(json.dumps({"plans": plans, "addons": {}}))
        settings.reset()

    write(PLANS)
    monkeypatch.setenv("CREDITS_CATALOG", str(path))
    settings.reset()
    yield write
    monkeypatch.undo()
    settings.reset()


def unknown_price_event(user_id: str) -> dict:
    line = sf.invoice_line("current", "price_team_monthly", sf.period(1), "sub_team")
    return sf.event("invoice.paid", sf.invoice("current", "subscription_create", [line], "sub_team", "cus_team", user_id))


def test_an_unapplied_stripe_event_is_listed_and_applied_exactly_once_after_the_fix(db, capsys, catalog_file):
    evt = unknown_price_event("team-user")
    assert webhooks.handle(evt, json.dumps(evt)).outcome == "unapplied"

    listed = credits(capsys, "replay", "--json")
    assert listed.code == 1  # something waits
    [waiting] = listed.json["stripe_events"]
    assert waiting["event_id"] == evt["id"] and waiting["event_type"] == "invoice.paid" and waiting["reason"]
    table = credits(capsys, "replay", "--list")
    assert evt["id"] in table.out and "invoice.paid" in table.out

    # Before the fix a replay still cannot apply it, and says so.
    first_reason = waiting["reason"]
    early = credits(capsys, "replay", "--event-id", evt["id"], "--json")
    assert early.code == 1 and early.json["results"][0]["outcome"] == "unapplied"
    assert user_doc(db, "team-user") is None
    # The replay's reason goes beside the kept one, never over it.
    [kept] = credits(capsys, "replay", "--json").json["stripe_events"]
    assert kept["reason"] == first_reason and kept["last_replay_reason"]

    catalog_file({**PLANS, "price_team_monthly": {"monthly_credits": 2500}})
    run = credits(capsys, "replay", "--event-id", evt["id"], "--json")
    assert run.code == 0, run.out
    assert run.json["results"][0]["outcome"] == "applied"
    assert user_doc(db, "team-user")["credits_monthly"] == 2500
    assert credits(capsys, "replay", "--json").json["stripe_events"] == []

    again = credits(capsys, "replay", "--event-id", evt["id"], "--json")
    assert again.code == 1 and again.json["results"][0]["outcome"] == "not_found"
    # Stripe redelivering it now finds it applied.
    assert webhooks.handle(evt, json.dumps(evt)).outcome == "duplicate"
    assert user_doc(db, "team-user")["credits_monthly"] == 2500
    assert [r["type"] for r in records_of(db, "team-user")] == ["subscription_grant"]


def test_a_rejected_promo_message_that_is_valid_now_is_granted_once(db, capsys):
    data = json.dumps({"grant_id": "spring", "user_ids": ["p1", "p2"], "amount": 50}).encode()
    rejected.reject("msg-1", "rejected by an earlier validation rule", data)
    rejected.reject("msg-2", "not JSON", b"{not json")

    listed = credits(capsys, "replay", "--json").json["promo_messages"]
    assert {m["message_id"] for m in listed} == {"msg-1", "msg-2"}

    run = credits(capsys, "replay", "--message-id", "msg-1", "--json")
    assert run.code == 0
    [result] = run.json["results"]
    assert result["outcome"] == "replayed" and result["granted"] == 2
    again = credits(capsys, "replay", "--message-id", "msg-1", "--json")
    assert again.json["results"][0]["outcome"] == "already_replayed"
    for user_id in ("p1", "p2"):
        assert user_doc(db, user_id)["credits_permanent"] == 50
        assert len(records_of(db, user_id)) == 1

    still = credits(capsys, "replay", "--all", "--json")
    assert still.code == 1
    assert [(r["id"], r["outcome"]) for r in still.json["results"]] == [("msg-2", "still_rejected")]
    assert [m["message_id"] for m in credits(capsys, "replay", "--json").json["promo_messages"]] == ["msg-2"]


def test_replay_all_applies_events_and_messages_together(db, capsys, catalog_file):
    evt = unknown_price_event("both-user")
    webhooks.handle(evt, json.dumps(evt))
    rejected.reject("msg-3", "earlier rule", json.dumps({"grant_id": "g3", "user_id": "both-user", "amount": 7}).encode())
    catalog_file({**PLANS, "price_team_monthly": {"monthly_credits": 100}})
    run = credits(capsys, "replay", "--all")
    assert run.code == 0, run.out
    assert "applied" in run.out and "replayed" in run.out
    doc = user_doc(db, "both-user")
    assert (doc["credits_monthly"], doc["credits_permanent"]) == (100, 7)
    assert credits(capsys, "replay", "--all", "--json").json["results"] == []
    assert credits(capsys, "reconcile").code == 0


def test_replay_refuses_two_actions_at_once(db, capsys):
    assert credits(capsys, "replay", "--all", "--event-id", "evt_1").code == 2


def test_replay_lists_with_exit_0_only_when_nothing_waits(db, capsys):
    assert credits(capsys, "replay").code == 0
    rejected.reject("msg-w", "not JSON", b"{nope")
    listed = credits(capsys, "replay", "--json")
    assert listed.code == 1
    assert listed.json["promo_messages"][0]["rejected_at"].endswith("Z")


def test_replaying_an_unknown_message_says_so(db, capsys):
    run = credits(capsys, "replay", "--message-id", "nope", "--json")
    assert run.code == 1
    assert run.json["results"][0]["outcome"] == "not_found"
    assert run.json["results"][0]["reason"] == "no such kept message"


def test_a_message_that_can_never_succeed_is_discarded_with_a_reason_and_kept_for_audit(db, capsys):
    rejected.reject("msg-bad", "not JSON", b"{nope")

    refused = credits(capsys, "replay", "--discard", "msg-bad")
    assert refused.code == 2 and "--reason" in refused.err

    run = credits(capsys, "replay", "--discard", "msg-bad", "--reason", "test message from staging",
                  "--operator", "ops-anna", "--json")
    assert run.code == 0 and run.json["results"][0]["outcome"] == "discarded"
    [(_, kept, _)] = rejected.kept_messages(status="discarded")
    assert kept["discard_reason"] == "test message from staging" and kept["discarded_by"] == "ops-anna"
    assert kept["raw_data"] == b"{nope"
    # No longer waiting, never replayed, not discarded twice.
    assert credits(capsys, "replay").code == 0
    assert credits(capsys, "replay", "--message-id", "msg-bad", "--json").json["results"][0]["outcome"] != "replayed"
    assert credits(capsys, "replay", "--discard", "msg-bad", "--reason", "again").code == 1


def test_a_stripe_event_that_can_never_apply_is_discarded_with_a_reason_and_journaled(db, capsys, catalog_file):
    evt = unknown_price_event("team-user")
    assert webhooks.handle(evt, json.dumps(evt)).outcome == "unapplied"
    refused = credits(capsys, "replay", "--discard-event", evt["id"])
    assert refused.code == 2
    run = credits(capsys, "replay", "--discard-event", evt["id"], "--reason", "price retired long ago",
                  "--operator", "ops-anna", "--json")
    assert run.code == 0 and run.json["results"][0]["outcome"] == "discarded"
    # No longer waiting; the journal says who gave up on it and why, and keeps the raw body.
    assert credits(capsys, "replay", "--json").json["stripe_events"] == []
    journal = db.document(f"webhook_events/{evt['id']}").get().to_dict()
    assert journal["outcome"] == "discarded" and journal["discarded_by"] == "ops-anna"
    assert journal["discard_reason"] == "price retired long ago" and journal["kept_reason"] and journal["raw"]
    assert credits(capsys, "replay", "--discard-event", evt["id"], "--reason", "again").code == 1
    assert user_doc(db, "team-user") is None
