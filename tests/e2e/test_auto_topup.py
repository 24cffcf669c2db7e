"""Auto top-up end to end (CONTRACT section 9): the setting through `spend`, the attempt created by
the commit that makes it due, the charge by the real `auto_topup` function against the local Stripe
stand-in, and the webhook through the real `stripe_webhook`, all on the Firestore emulator."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from threading import Barrier

from shared.operations import reconciliation
from tools.local import stripe_events as sf
from tests.support.events import CREATED, document_event
from functions_framework import create_app

from tests.support.functions import ROOT
from tests.support.ledger import assert_ledger_invariant, attempts, records_of, seed, user_doc
from tests.support.topups import customer, pending, put_topup, setting, spend, topup_records


def put(client, user_id, body):
    response = client.put(f"/users/{user_id}/settings", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_spend_below_the_threshold_charges_once_and_the_credits_land_once_whatever_answers_first(
        spend_client, db, stripe, trigger, webhook):
    seed("ada", permanent=150)
    put_topup(spend_client, "ada", customer=customer(stripe))
    assert attempts(db, "ada") == {}

    assert spend_client.post("/spend", json={"user_id": "ada", "amount": 60}).status_code == 200

    [attempt] = pending(db, "ada")
    assert attempt["credits"] == 500 and setting(db, "ada")["pending_attempt"] == attempt["attempt_id"]
    settled = trigger(attempt["attempt_id"])
    assert settled["status"] == "succeeded"
    [intent] = stripe.intents.values()
    assert (intent["amount"], intent["currency"], intent["metadata"]) == (499, "usd", {
        "user_id": "ada", "topup_attempt_id": attempt["attempt_id"], "credits": "500"})
    assert topup_records(db, "ada") == [(500, intent["id"])]
    assert user_doc(db, "ada")["credits_permanent"] == 590
    after = setting(db, "ada")
    assert (after["pending_attempt"], after["failures"], after["status"], after["this_month"]) == (None, 0, "active", 1)
    # The webhook after the charge's answer, and the trigger again: nothing more.
    [event] = stripe.outbox
    assert event["type"] == "payment_intent.succeeded"
    assert webhook.outcome(event) == "duplicate"
    assert trigger(attempt["attempt_id"])["status"] == "succeeded"
    assert len(stripe.intents) == 1 and topup_records(db, "ada") == [(500, intent["id"])]
    assert_ledger_invariant(db, "ada")
    assert reconciliation.reconcile().drift == []


def test_the_trigger_delivered_three_times_makes_one_charge(spend_client, db, stripe, topup_app):
    seed("bo", permanent=50)
    put_topup(spend_client, "bo", customer=customer(stripe))
    [attempt] = pending(db, "bo")
    headers, body = document_event(f"credits_topups/{attempt['attempt_id']}", attempt, event_type=CREATED)

    def deliver(_):
        return topup_app.test_client().post("/", data=body, headers=headers).status_code

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(deliver, range(3))) == [200, 200, 200]

    assert len(stripe.intents) == 1
    assert [amount for amount, _ in topup_records(db, "bo")] == [500]
    assert_ledger_invariant(db, "bo")


def test_the_webhook_before_the_charges_answer_credits_once(spend_client, db, stripe, trigger, webhook):
    seed("cy", permanent=50)
    put_topup(spend_client, "cy", customer=customer(stripe))
    [attempt] = pending(db, "cy")
    # Stripe made the charge but its answer was lost: the webhook comes first.
    status, intent = stripe.create_intent({"customer": setting(db, "cy")["customer"],
                                           "payment_method": "pm_card_visa", "amount": "499", "currency": "usd",
                                           "metadata[user_id]": "cy",
                                           "metadata[topup_attempt_id]": attempt["attempt_id"],
                                           "metadata[credits]": "500"}, attempt["attempt_id"])
    assert status == 200
    assert webhook.outcome(stripe.outbox[-1]) == "applied"
    assert topup_records(db, "cy") == [(500, intent["id"])]

    assert trigger(attempt["attempt_id"])["status"] == "succeeded"
    assert webhook.outcome(sf.redelivered(stripe.outbox[-1])) == "duplicate"
    assert len(stripe.intents) == 1 and topup_records(db, "cy") == [(500, intent["id"])]
    assert_ledger_invariant(db, "cy")


def test_eight_concurrent_spends_crossing_the_threshold_make_one_attempt_and_one_charge(
        spend_app, spend_client, db, stripe, trigger):
    seed("dee", permanent=200)
    put_topup(spend_client, "dee", customer=customer(stripe))
    barrier = Barrier(8)

    def one(n):
        client = spend_app.test_client()
        barrier.wait()
        return spend(client, "dee", 20, f"dee-{n}").status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [200] * 8

    [attempt] = attempts(db, "dee").values()
    assert trigger(attempt["attempt_id"])["status"] == "succeeded"
    assert len(stripe.intents) == 1
    assert user_doc(db, "dee")["credits_permanent"] == 40 + 500
    assert_ledger_invariant(db, "dee")


def test_a_soft_decline_counts_backs_off_and_the_third_in_a_row_disables(spend_client, db, stripe, trigger, webhook):
    seed("eve", permanent=500)
    put_topup(spend_client, "eve", customer=customer(stripe, "pm_card_chargeDeclined"))
    spend(spend_client, "eve", 450)
    [attempt] = pending(db, "eve")

    settled = trigger(attempt["attempt_id"])

    assert (settled["status"], settled["reason"]) == ("failed", "generic_decline")
    after = setting(db, "eve")
    assert (after["status"], after["failures"], after["this_month"], after["pending_attempt"]) == ("active", 1, 0, None)
    assert webhook.outcome(stripe.outbox[-1]) == "duplicate"
    # Within the hour no change starts another attempt.
    spend(spend_client, "eve", 1)
    assert pending(db, "eve") == []
    # Two failures in a row, the last over four hours ago: the next attempt's decline is the third.
    stored = {**after, "failures": 2, "last_failure_at": datetime.now(timezone.utc) - timedelta(hours=5)}
    db.collection("users_credits").document("eve").update({"auto_topup": stored})
    spend(spend_client, "eve", 1)
    [attempt] = pending(db, "eve")
    assert trigger(attempt["attempt_id"])["status"] == "failed"
    after = setting(db, "eve")
    assert (after["status"], after["reason"], after["failures"]) == ("disabled", "repeated_failures", 3)
    assert topup_records(db, "eve") == []


def test_a_hard_decline_disables_at_once(spend_client, db, stripe, trigger):
    seed("fay", permanent=10)
    put_topup(spend_client, "fay", customer=customer(stripe, "pm_card_chargeDeclinedLostCard"))
    [attempt] = pending(db, "fay")

    settled = trigger(attempt["attempt_id"])

    assert (settled["status"], settled["reason"]) == ("failed", "lost_card")
    assert (setting(db, "fay")["status"], setting(db, "fay")["reason"]) == ("disabled", "card_declined")
    spend(spend_client, "fay", 1)
    assert pending(db, "fay") == []


def test_authentication_needed_waits_for_action_until_that_payment_succeeds_on_session(
        spend_client, db, stripe, trigger, webhook):
    seed("gus", permanent=10)
    put_topup(spend_client, "gus", customer=customer(stripe, "pm_card_authenticationRequired"))
    [attempt] = pending(db, "gus")

    settled = trigger(attempt["attempt_id"])

    assert settled["status"] == "action_required" and settled["client_secret"].startswith(settled["payment_intent"])
    assert (setting(db, "gus")["status"], setting(db, "gus")["reason"]) == ("action_required", "authentication_required")
    assert webhook.outcome(stripe.outbox[-1]) == "duplicate"  # payment_failed of that same PaymentIntent
    spend(spend_client, "gus", 1)
    assert pending(db, "gus") == []
    # The app completes the payment with the customer on session.
    stripe.confirm_intent(settled["payment_intent"])
    assert webhook.outcome(stripe.outbox[-1]) == "applied"
    assert topup_records(db, "gus") == [(500, settled["payment_intent"])]
    assert (setting(db, "gus")["status"], setting(db, "gus")["reason"]) == ("active", None)
    assert attempts(db, "gus")[attempt["attempt_id"]]["status"] == "succeeded"
    assert_ledger_invariant(db, "gus")


def test_no_payment_method_fails_the_attempt_and_disables_without_a_charge(spend_client, db, stripe, trigger):
    seed("hal", permanent=10)
    put_topup(spend_client, "hal", customer=customer(stripe, None))
    [attempt] = pending(db, "hal")

    assert trigger(attempt["attempt_id"])["status"] == "failed"
    assert (setting(db, "hal")["status"], setting(db, "hal")["reason"]) == ("disabled", "missing_payment_method")
    assert stripe.intents == {}


def test_the_monthly_limit_stops_attempts(spend_client, db, stripe, trigger):
    seed("ivy", permanent=10)
    put_topup(spend_client, "ivy", customer=customer(stripe), monthly_limit=1)
    [attempt] = pending(db, "ivy")
    assert trigger(attempt["attempt_id"])["status"] == "succeeded"

    spend(spend_client, "ivy", 500)

    assert user_doc(db, "ivy")["credits_permanent"] == 10
    assert pending(db, "ivy") == [] and setting(db, "ivy")["this_month"] == 1


def test_disabling_while_an_attempt_is_pending_charges_nothing(spend_client, db, stripe, trigger):
    seed("jo", permanent=10)
    put_topup(spend_client, "jo", customer=customer(stripe))
    [attempt] = pending(db, "jo")
    put_topup(spend_client, "jo", enabled=False, customer="cus_x")

    assert trigger(attempt["attempt_id"])["status"] == "canceled"
    assert stripe.intents == {} and topup_records(db, "jo") == []
    assert setting(db, "jo")["pending_attempt"] is None


def test_a_charge_made_before_the_setting_was_disabled_still_lands_its_credits_once(
        spend_client, db, stripe, trigger, webhook):
    # Found by the simulation (tests/simulation/found.py, CHARGED_THEN_CANCELED).
    seed("jan", permanent=10)
    put_topup(spend_client, "jan", customer=customer(stripe))
    [attempt] = pending(db, "jan")
    # Stripe charged the card, but the function never heard its answer; then the user stopped the setting.
    status, intent = stripe.create_intent({"customer": setting(db, "jan")["customer"],
                                           "payment_method": "pm_card_visa", "amount": "499", "currency": "usd",
                                           "metadata[user_id]": "jan",
                                           "metadata[topup_attempt_id]": attempt["attempt_id"],
                                           "metadata[credits]": "500"}, attempt["attempt_id"])
    assert status == 200
    put_topup(spend_client, "jan", enabled=False)
    assert trigger(attempt["attempt_id"])["status"] == "canceled"

    assert webhook.outcome(stripe.outbox[-1]) == "applied"
    assert topup_records(db, "jan") == [(500, intent["id"])]
    settled = attempts(db, "jan")[attempt["attempt_id"]]
    assert (settled["status"], settled["payment_intent"]) == ("succeeded", intent["id"])
    assert (setting(db, "jan")["enabled"], setting(db, "jan")["this_month"]) == (False, 1)
    assert webhook.outcome(sf.redelivered(stripe.outbox[-1])) == "duplicate"
    assert len(stripe.intents) == 1 and topup_records(db, "jan") == [(500, intent["id"])]
    assert_ledger_invariant(db, "jan")


def test_removing_the_setting_and_putting_it_again_keeps_the_monthly_limit_and_the_pending_attempt(
        spend_client, db, stripe, trigger):
    # Found by the simulation (tests/simulation/found.py, REMOVED_THEN_PUT).
    seed("lev", permanent=10)
    cus = customer(stripe)
    put_topup(spend_client, "lev", customer=cus, monthly_limit=1, threshold=1000)
    [first] = pending(db, "lev")
    assert put(spend_client, "lev", {"auto_topup": None})["auto_topup"] is None
    again = put_topup(spend_client, "lev", customer=cus, monthly_limit=1, threshold=1000)
    assert (again["pending_attempt"], again["this_month"]) == (first["attempt_id"], 1)
    assert len(attempts(db, "lev")) == 1

    assert trigger(first["attempt_id"])["status"] == "succeeded"
    assert spend_client.post("/spend", json={"user_id": "lev", "amount": 500}).status_code == 200
    put(spend_client, "lev", {"auto_topup": None})
    put_topup(spend_client, "lev", customer=cus, monthly_limit=1, threshold=1000)
    # Below the threshold again, but this month's one attempt is spent: nothing more is charged.
    assert len(attempts(db, "lev")) == 1 and len(stripe.intents) == 1
    assert setting(db, "lev")["this_month"] == 1


def test_a_refund_of_a_top_up_takes_its_credits_back_and_stops_the_setting(spend_client, db, stripe, trigger, webhook):
    seed("kim", permanent=10)
    put_topup(spend_client, "kim", customer=customer(stripe))
    [attempt] = pending(db, "kim")
    intent_id = trigger(attempt["attempt_id"])["payment_intent"]
    charge_id = stripe.intents[intent_id]["latest_charge"]

    refund = sf.event("charge.refunded", sf.charge(charge_id, intent_id, 499, 499, stripe.intents[intent_id]["customer"]))
    assert webhook.outcome(refund) == "applied"

    assert user_doc(db, "kim")["credits_permanent"] == 10
    assert [(r["type"], r["amount"]) for r in records_of(db, "kim") if r["source"] == charge_id] == [
        ("addon_refunded", -500)]
    assert (setting(db, "kim")["status"], setting(db, "kim")["reason"]) == ("disabled", "payment_reversed")
    assert_ledger_invariant(db, "kim")
    assert reconciliation.reconcile().drift == []


def test_the_sweep_charges_an_attempt_whose_trigger_was_lost(spend_client, db, stripe):
    sweep = create_app("auto_topup_sweep", source=str(ROOT / "functions" / "auto_topup" / "main.py")).test_client()
    seed("lee", permanent=10)
    put_topup(spend_client, "lee", customer=customer(stripe))
    [attempt] = pending(db, "lee")
    assert sweep.post("/").get_json()["attempts"] == 0  # not five minutes old yet
    db.collection("credits_topups").document(attempt["attempt_id"]).update(
        {"created_at": datetime.now(timezone.utc) - timedelta(minutes=6)})

    response = sweep.post("/")

    assert response.status_code == 200 and response.get_json()["outcomes"] == {"succeeded": 1}
    assert topup_records(db, "lee") and len(stripe.intents) == 1
