"""Each Stripe flow through the real function and emulator: renewals, upgrades, packs,
cancellations, user resolution, and events kept unapplied until their cause is fixed."""

from __future__ import annotations

import json

from shared.spending import service as spending
from shared.billing import service as webhooks
from tools.local import stripe_events as sf
from tests.support.ledger import assert_ledger_invariant, dump, journal, records_of, user_doc
from tests.support.stripe_story import Customer, ledger_view

PRO, STARTER = "price_pro_monthly", "price_starter_monthly"


def pools(db, user_id):
    doc = user_doc(db, user_id) or {}
    return doc.get("credits_monthly", 0), doc.get("credits_permanent", 0)


def kinds(db, user_id, source):
    return sorted((r["type"], r["amount"]) for r in records_of(db, user_id) if r["source"] == source)


def test_a_renewal_without_rollover_resets_the_pool_and_expires_the_remainder(webhook, db):
    ada = Customer("ada")
    assert webhook.outcome(ada.renewal(1, STARTER)) == "applied"
    spending.spend("ada", 100, "Story")
    assert webhook.outcome(ada.renewal(2, STARTER)) == "applied"
    assert pools(db, "ada") == (300, 0)
    assert kinds(db, "ada", "in_ada_p2") == [("monthly_expired", -200), ("subscription_grant", 300)]
    assert_ledger_invariant(db, "ada")


def test_a_renewal_rolls_over_what_is_left_up_to_the_plan_cap(webhook, db):
    bo = Customer("bo")
    webhook.outcome(bo.renewal(1, PRO))
    spending.spend("bo", 200, "Story")
    webhook.outcome(bo.renewal(2, PRO))
    assert pools(db, "bo") == (1500, 0)
    assert kinds(db, "bo", "in_bo_p2") == [("monthly_expired", -300), ("subscription_grant", 1000)]
    spending.spend("bo", 1200, "Story")
    webhook.outcome(bo.renewal(3, PRO))
    # 300 left is under the cap of 500: all of it rolls over and nothing expires.
    assert pools(db, "bo") == (1300, 0)
    assert kinds(db, "bo", "in_bo_p3") == [("subscription_grant", 1000)]
    assert_ledger_invariant(db, "bo")


def test_a_repeated_renewal_changes_nothing_and_an_older_period_is_stale(webhook, db):
    cy = Customer("cy")
    first = cy.renewal(1, PRO)
    assert webhook.outcome(first) == "applied"
    second = cy.renewal(2, PRO)
    assert webhook.outcome(second) == "applied"
    before = dump(db, journal=False)
    assert webhook.outcome(second) == "duplicate"
    assert webhook.outcome(sf.redelivered(second)) == "duplicate"
    # Another invoice for a period already renewed: once per subscription and period.
    assert webhook.outcome(cy.renewal(2, PRO, invoice_id="in_cy_p2_again")) == "duplicate"
    assert webhook.outcome(first) == "duplicate"
    late = cy.renewal(1, PRO, invoice_id="in_cy_p1_late")
    assert webhook.outcome(late) == "stale"
    assert webhook.outcome(cy.payment_succeeded(second)) == "ignored"
    assert dump(db, journal=False) == before
    # The journal keeps every event with its latest outcome; an applied one also says when.
    entries = journal(db)
    assert entries[second["id"]]["outcome"] == "duplicate" and entries[second["id"]]["deliveries"] == 2
    assert entries[second["id"]]["applied_at"] is not None
    assert entries[late["id"]]["outcome"] == "stale" and "applied_at" not in entries[late["id"]]
    assert json.loads(entries[late["id"]]["raw"])["id"] == late["id"]


def test_the_period_comes_from_the_plan_line_not_from_earlier_prorations_on_the_invoice(webhook, db):
    di = Customer("di")
    webhook.outcome(di.renewal(1, STARTER))
    leftover = sf.invoice_line("current", STARTER, sf.period(1), di.subscription, amount=-100, proration=True)
    assert webhook.outcome(di.renewal(2, PRO, extra_lines=[leftover])) == "applied"
    state = user_doc(db, "di")["stripe_subscriptions"][di.subscription]
    assert (state["period_start"], state["price_id"], state["granted"]) == (sf.period(2)["start"], PRO, 1000)


def test_an_upgrade_adds_the_difference_and_a_downgrade_waits_for_the_renewal(webhook, db):
    ed = Customer("ed")
    webhook.outcome(ed.renewal(1, STARTER))
    spending.spend("ed", 50, "Story")
    assert webhook.outcome(ed.change(1, STARTER, PRO)) == "applied"
    assert pools(db, "ed") == (250 + 700, 0)
    assert kinds(db, "ed", "in_ed_change1_price_pro_monthly") == [("subscription_grant", 700)]
    assert webhook.outcome(sf.redelivered(ed.change(1, STARTER, PRO))) == "duplicate"
    before = dump(db, journal=False)
    assert webhook.outcome(ed.change(1, PRO, STARTER, day=20)) == "ignored"
    assert dump(db, journal=False) == before
    # The renewal after the upgrade grants the pro allowance with pro's rollover cap.
    assert webhook.outcome(ed.renewal(2, PRO)) == "applied"
    assert pools(db, "ed") == (1000 + 500, 0)
    # A change from a period before the one last renewed is stale.
    assert webhook.outcome(ed.change(1, STARTER, PRO, invoice_id="in_ed_late_change")) == "stale"
    assert_ledger_invariant(db, "ed")


def test_a_pack_bought_with_delayed_payment_is_credited_once_when_paid(webhook, db, fake_stripe):
    flo = Customer("flo")
    fake_stripe.add_session("cs_test_flo_pack", ("price_pack_500", 2), ("price_pack_2000", 1))
    calls = len(fake_stripe.requests)
    assert webhook.outcome(flo.pack_checkout("cs_test_flo_pack", paid=False)) == "ignored"
    assert pools(db, "flo") == (0, 0)
    assert len(fake_stripe.requests) == calls
    paid = flo.pack_checkout("cs_test_flo_pack", paid=True, event_type="checkout.session.async_payment_succeeded")
    assert webhook.outcome(paid) == "applied"
    assert pools(db, "flo") == (0, 3000)
    assert kinds(db, "flo", "cs_test_flo_pack") == [("addon_purchase", 1000), ("addon_purchase", 2000)]
    assert webhook.outcome(sf.redelivered(paid)) == "duplicate"
    assert webhook.outcome(flo.pack_checkout("cs_test_flo_pack", paid=False)) == "ignored"
    assert pools(db, "flo") == (0, 3000)
    # One read of the line items in all: repeats are answered from the marker.
    assert len(fake_stripe.requests) == calls + 1
    assert user_doc(db, "flo")["total_earned"] == 3000
    assert_ledger_invariant(db, "flo")


def test_a_cancellation_empties_the_monthly_pool_and_makes_older_periods_stale(webhook, db, fake_stripe):
    gil = Customer("gil")
    webhook.outcome(gil.renewal(1, PRO))
    fake_stripe.add_session("cs_test_gil_pack", ("price_pack_500", 1))
    webhook.outcome(gil.pack_checkout("cs_test_gil_pack", paid=True))
    cancel = gil.cancellation(sf.period(2)["start"] + 3 * sf.DAY)
    assert webhook.outcome(cancel) == "applied"
    assert pools(db, "gil") == (0, 500)
    assert kinds(db, "gil", cancel["id"]) == [("monthly_expired", -1000)]
    assert webhook.outcome(sf.redelivered(cancel)) == "duplicate"
    assert webhook.outcome(gil.renewal(2, PRO)) == "stale"
    assert pools(db, "gil") == (0, 500)
    assert_ledger_invariant(db, "gil")


def test_both_invoice_shapes_produce_the_same_pools_and_records(webhook, db, firestore_emulator):
    views = []
    for shape in ("current", "old"):
        firestore_emulator.reset()
        hal = Customer("hal", shape=shape)
        events = [hal.renewal(1, STARTER), hal.change(1, STARTER, PRO), hal.renewal(2, PRO), hal.renewal(3, PRO)]
        assert [webhook.outcome(e) for e in events] == ["applied"] * 4
        spending.spend("hal", 100, "Story", idempotency_key="hal-1")
        assert webhook.outcome(hal.renewal(4, PRO)) == "applied"
        assert webhook.outcome(hal.cancellation(sf.period(4)["start"] + sf.DAY)) == "applied"
        assert webhook.outcome(hal.renewal(3, PRO, invoice_id="in_hal_late")) == "stale"
        pools_, records = ledger_view(db, "hal")
        # The cancellation's source is its event id, fresh per build; everything else must match.
        views.append((pools_, [r for r in records if not r[3].startswith("evt_")]))
        assert_ledger_invariant(db, "hal")
    assert views[0] == views[1]
    assert views[0][0]["credits_monthly"] == 0 and len(views[0][1]) >= 8


def test_an_event_without_user_metadata_goes_to_the_user_linked_to_its_customer(webhook, db):
    ida = Customer("ida", metadata=False)
    assert webhook.outcome(ida.subscription_checkout()) == "ignored"
    assert db.document("stripe_customers/cus_ida").get().to_dict()["user_id"] == "ida"
    assert webhook.outcome(ida.renewal(1, PRO)) == "applied"
    assert pools(db, "ida") == (1000, 0)


def test_a_session_names_its_user_by_metadata_when_it_has_no_client_reference_id(webhook, db, fake_stripe):
    session = sf.checkout_session("payment", "paid", None, metadata_user_id="jo", session_id="cs_test_jo")
    fake_stripe.add_session("cs_test_jo", ("price_pack_500", 1))
    assert webhook.outcome(sf.event("checkout.session.completed", session)) == "applied"
    assert pools(db, "jo") == (0, 500)


def test_an_unknown_user_is_kept_unapplied_and_applies_once_the_link_exists(webhook, db):
    kit = Customer("kit", metadata=False)
    renewal = kit.renewal(1, PRO)
    assert webhook.outcome(renewal) == "unapplied"
    kept = db.document(f"webhook_unapplied/{renewal['id']}").get().to_dict()
    assert "unknown user" in kept["reason"] and "cus_kit" in kept["reason"]
    assert json.loads(kept["raw"]) == renewal
    assert kept["attempts"] == 1 and kept["event_type"] == "invoice.paid"
    assert user_doc(db, "kit") is None
    assert webhooks.replay_unapplied() == [
        {"event_id": renewal["id"], "event_type": "invoice.paid", "outcome": "unapplied", "user_id": None,
         "reason": kept["reason"]}
    ]
    assert db.document(f"webhook_unapplied/{renewal['id']}").get().to_dict()["attempts"] == 2

    webhook.outcome(kit.subscription_checkout())
    [result] = webhooks.replay_unapplied()
    assert (result["outcome"], result["user_id"]) == ("applied", "kit")
    assert pools(db, "kit") == (1000, 0)
    assert not db.document(f"webhook_unapplied/{renewal['id']}").get().exists
    assert webhooks.replay_unapplied() == []
    assert webhooks.replay_unapplied(renewal["id"]) == []
    assert webhook.outcome(renewal) == "duplicate"
    assert pools(db, "kit") == (1000, 0)
    assert_ledger_invariant(db, "kit")


def test_an_unknown_plan_price_is_unapplied_until_the_catalog_has_it_and_stripe_resends(webhook, db, stripe_config, tmp_path):
    lu = Customer("lu")
    renewal = lu.renewal(1, "price_team_monthly")
    assert webhook.outcome(renewal) == "unapplied"
    reason = db.document(f"webhook_unapplied/{renewal['id']}").get().to_dict()["reason"]
    assert "price_team_monthly" in reason
    assert user_doc(db, "lu") is None

    extended = json.loads(sf.ROOT.joinpath("tests", "stripe_catalog.json").read_text())
    extended["plans"]["price_team_monthly"] = {"monthly_credits": 5000}
    (tmp_path / "catalog.json").write_text(json.dumps(extended))
    stripe_config(CREDITS_CATALOG=str(tmp_path / "catalog.json"))
    # Stripe's resend keeps the event id: it is attempted again and applied.
    assert webhook.outcome(renewal) == "applied"
    assert pools(db, "lu") == (5000, 0)
    assert not db.document(f"webhook_unapplied/{renewal['id']}").get().exists
    assert webhook.outcome(renewal) == "duplicate"


def test_an_unknown_pack_price_is_unapplied_and_a_replay_by_event_id_applies_it_once(
    webhook, db, fake_stripe, stripe_config, tmp_path
):
    mo = Customer("mo")
    fake_stripe.add_session("cs_test_mo", ("price_pack_mega", 3))
    paid = mo.pack_checkout("cs_test_mo", paid=True)
    assert webhook.outcome(paid) == "unapplied"
    assert "price_pack_mega" in db.document(f"webhook_unapplied/{paid['id']}").get().to_dict()["reason"]

    extended = json.loads(sf.ROOT.joinpath("tests", "stripe_catalog.json").read_text())
    extended["addons"]["price_pack_mega"] = {"permanent_credits": 10000}
    (tmp_path / "catalog.json").write_text(json.dumps(extended))
    stripe_config(CREDITS_CATALOG=str(tmp_path / "catalog.json"))
    [result] = webhooks.replay_unapplied(paid["id"])
    assert result["outcome"] == "applied"
    assert webhooks.replay_unapplied(paid["id"]) == []
    assert webhook.outcome(sf.redelivered(paid)) == "duplicate"
    assert pools(db, "mo") == (0, 30000)
    assert_ledger_invariant(db, "mo")


def test_a_session_the_stripe_api_does_not_know_is_kept_unapplied(webhook, db):
    ned = Customer("ned")
    assert webhook.outcome(ned.pack_checkout("cs_test_unknown_to_stripe", paid=True)) == "unapplied"
    [kept] = [d for path, d in dump(db).items() if path.startswith("webhook_unapplied/")]
    assert "404" in kept["reason"]
    assert user_doc(db, "ned") is None


def test_a_stripe_api_failure_is_503_and_writes_nothing_then_the_retry_applies(webhook, db, fake_stripe):
    oz = Customer("oz")
    fake_stripe.add_session("cs_test_oz", ("price_pack_500", 1))
    fake_stripe.intercept = lambda path: (500, {"error": {"type": "api_error", "message": "boom"}})
    try:
        paid = oz.pack_checkout("cs_test_oz", paid=True)
        response = webhook.send(paid)
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "unavailable"
        assert response.headers["Retry-After"]
        assert dump(db) == {}, "a 503 leaves nothing written, not even the journal"
    finally:
        fake_stripe.intercept = None
    assert webhook.outcome(paid) == "applied"
    assert pools(db, "oz") == (0, 500)


def test_a_legacy_balance_is_migrated_in_the_commit_of_the_first_renewal(webhook, db):
    db.collection("users_credits").document("pat").set({"user_id": "pat", "balance": 70, "total_earned": 90, "total_spent": 20})
    webhook.outcome(Customer("pat").renewal(1, STARTER))
    assert pools(db, "pat") == (300, 70)
    assert "balance" not in user_doc(db, "pat")
    assert sorted(r["type"] for r in records_of(db, "pat")) == ["migration", "subscription_grant"]
    assert_ledger_invariant(db, "pat")


def test_the_replay_command_applies_what_was_kept_and_says_so(webhook, db):
    import os
    import subprocess
    import sys
    from pathlib import Path

    quin = Customer("quin", metadata=False)
    renewal = quin.renewal(1, PRO)
    assert webhook.outcome(renewal) == "unapplied"
    command = [str(Path(sys.executable).parent / "credits"), "replay", "--event-id", renewal["id"], "--json"]
    env = dict(os.environ)
    still = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert still.returncode == 1
    assert [r["outcome"] for r in json.loads(still.stdout)["results"]] == ["unapplied"]
    webhook.outcome(quin.subscription_checkout())
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert (result["event_id"], result["event_type"], result["outcome"], result["user_id"]) == (
        renewal["id"], "invoice.paid", "applied", "quin")
    assert pools(db, "quin") == (1000, 0)
