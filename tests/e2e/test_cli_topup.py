"""`credits topup show|enable|disable` and auto top-up's counts in `credits health`, against the
Firestore emulator, with the settings put through the real `spend`, charged by the real
`auto_topup` at the Stripe stand-in and settled by the real `stripe_webhook`."""

from __future__ import annotations

from tests.support.cli import credits
from tests.support.ledger import seed
from tests.support.topups import customer, pending, put_topup, setting, spend, topup_records
from tools.local import stripe_events as sf


def test_show_tells_a_user_without_a_setting_apart(db, capsys):
    run = credits(capsys, "topup", "show", "nobody", "--json")
    assert run.code == 0 and run.json["auto_topup"] is None and run.json["attempts"] == []
    assert "has no auto top-up setting" in credits(capsys, "topup", "show", "nobody").out


def test_show_lists_the_state_and_the_attempts_and_enable_restarts_a_declined_setting_keeping_the_users_choices(
        spend_client, db, stripe, trigger, capsys):
    seed("amy", permanent=10)
    put_topup(spend_client, "amy", customer=customer(stripe, "pm_card_chargeDeclinedLostCard"), threshold=200,
              quantity=2, monthly_limit=3)
    [attempt] = pending(db, "amy")
    assert trigger(attempt["attempt_id"])["status"] == "failed"

    shown = credits(capsys, "topup", "show", "amy", "--json")

    assert shown.code == 0, shown.err
    state = shown.json["auto_topup"]
    assert (state["status"], state["reason"], state["failures"], state["this_month"]) == ("disabled", "card_declined", 1, 0)
    assert shown.json["blocked_by"] == "disabled" and shown.json["backoff_until"] is not None
    assert [(a["status"], a["reason"], a["credits"]) for a in shown.json["attempts"]] == [("failed", "lost_card", 1000)]
    table = credits(capsys, "topup", "show", "amy").out
    assert "card_declined" in table and "lost_card" in table and "held back (disabled)" in table
    assert "0 of 3 attempts counted" in table

    # The user's card is replaced at Stripe; the operator restarts the setting.
    stripe.customers[state["customer"]]["invoice_settings"]["default_payment_method"] = "pm_card_visa"
    assert credits(capsys, "topup", "enable", "amy").code == 2  # --reason is required
    run = credits(capsys, "topup", "enable", "amy", "--reason", "card replaced, ticket 42", "--operator", "ops", "--json")

    assert run.code == 0, run.err
    after = run.json["auto_topup"]
    assert (after["enabled"], after["status"], after["reason"], after["failures"]) == (True, "active", None, 0)
    assert (after["threshold"], after["quantity"], after["monthly_limit"], after["price_id"]) == (200, 2, 3, "price_pack_500")
    # Below the threshold, the enabling commit made the first attempt, as a PUT would.
    [attempt] = pending(db, "amy")
    assert after["pending_attempt"] == attempt["attempt_id"] and attempt["credits"] == 1000
    assert credits(capsys, "topup", "show", "amy", "--json").json["blocked_by"] == "attempt_pending"
    assert trigger(attempt["attempt_id"])["status"] == "succeeded"
    shown = credits(capsys, "topup", "show", "amy", "--json").json
    assert [a["status"] for a in shown["attempts"]] == ["succeeded", "failed"]
    assert (shown["month_succeeded"], shown["month_credits"], shown["auto_topup"]["this_month"]) == (1, 1000, 1)
    assert [amount for amount, _ in topup_records(db, "amy")] == [1000]


def test_disable_stops_the_setting_and_cancels_the_pending_attempt_without_a_charge(
        spend_client, db, stripe, trigger, capsys):
    seed("bea", permanent=50)
    put_topup(spend_client, "bea", customer=customer(stripe))
    [attempt] = pending(db, "bea")

    run = credits(capsys, "topup", "disable", "bea", "--reason", "user asked by email")

    assert run.code == 0, run.err
    assert "auto top-up of bea disabled" in run.out
    assert setting(db, "bea")["enabled"] is False and setting(db, "bea")["customer"] is not None
    assert trigger(attempt["attempt_id"])["status"] == "canceled"
    assert stripe.intents == {}
    assert credits(capsys, "topup", "show", "bea", "--json").json["blocked_by"] == "not_enabled"
    spend(spend_client, "bea", 1)
    assert pending(db, "bea") == []


def test_enable_or_disable_of_a_user_without_a_setting_is_refused_and_writes_nothing(db, capsys):
    seed("cal", permanent=5)
    before = db.collection("users_credits").document("cal").get().to_dict()

    run = credits(capsys, "topup", "enable", "cal", "--reason", "try", "--json")

    assert run.code == 1 and run.json["error"]["code"] == "not_found"
    assert "no auto top-up setting" in run.err
    assert db.collection("users_credits").document("cal").get().to_dict() == before


def test_health_counts_auto_top_ups_stopped_by_failures_by_a_refund_and_waiting_for_action_without_alarm(
        spend_client, db, stripe, trigger, webhook, capsys):
    for user, method in (("dee", "pm_card_chargeDeclinedLostCard"), ("eli", "pm_card_visa"),
                         ("fox", "pm_card_authenticationRequired"), ("gil", None)):
        seed(user, permanent=10)
        put_topup(spend_client, user, customer=customer(stripe, method))
        [attempt] = pending(db, user)
        settled = trigger(attempt["attempt_id"])
    intent = stripe.intents[next(i for i, pi in stripe.intents.items() if pi["metadata"]["user_id"] == "eli")]
    refund = sf.event("charge.refunded", sf.charge(intent["latest_charge"], intent["id"], 499, 499, intent["customer"]))
    assert webhook.outcome(refund) == "applied"
    assert settled["status"] == "failed"  # gil: no payment method

    run = credits(capsys, "health", "--json")

    assert run.code == 0, run.out
    counts = {name: check["count"] for name, check in run.json["checks"].items() if name.startswith("topups_")}
    assert counts == {"topups_disabled_by_failures": 2, "topups_disabled_by_refund_or_dispute": 1,
                      "topups_waiting_for_action": 1}
    assert not any(check["needs_attention"] for check in run.json["checks"].values())
    assert "topups_waiting_for_action" in credits(capsys, "health").out
