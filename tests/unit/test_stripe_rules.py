"""The pure parts of the Stripe webhook: catalog validation, the event parser, renewal rules."""

from __future__ import annotations

import json

import pytest

from shared.billing import catalog
from shared.billing import addons
from shared.billing import subscriptions as renewals
from shared.billing import events as stripe_events
from shared.common.errors import CatalogError, InvalidPayload
from shared.billing.subscriptions import SubscriptionState
from shared.billing.events import Period
from tools.local import stripe_events as sf

CATALOG = catalog.parse(
    {
        "plans": {"price_pro": {"monthly_credits": 1000, "rollover_cap": 500}, "price_basic": {"monthly_credits": 300}},
        "addons": {"price_pack": {"permanent_credits": 500}},
    }
)
PRO, BASIC = CATALOG.plans["price_pro"], CATALOG.plans["price_basic"]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"plans": {"price_a": {"monthly_credits": 0}}}, "plans.price_a.monthly_credits"),
        ({"plans": {"price_a": {"monthly_credits": 10.5}}}, "plans.price_a.monthly_credits"),
        ({"plans": {"price_a": {"monthly_credits": True}}}, "plans.price_a.monthly_credits"),
        ({"plans": {"price_a": {"monthly_credits": 10, "rollover_cap": -1}}}, "plans.price_a.rollover_cap"),
        ({"plans": {"price_a": {"monthly_credits": 10, "rolover_cap": 5}}}, "plans.price_a: unknown key"),
        ({"plans": {"price_a": {}}}, "plans.price_a: `monthly_credits` is missing"),
        ({"addons": {"price_b": {"permanent_credits": "500"}}}, "addons.price_b.permanent_credits"),
        ({"addons": {"price_b": 500}}, "addons.price_b must be an object"),
        ({"plans": {"price_a": {"monthly_credits": 1}}, "addons": {"price_a": {"permanent_credits": 1}}}, "addons.price_a"),
        ({"plans": [], "addons": {}}, "`plans` must be an object"),
        ({"plan": {}}, "unknown top-level key"),
    ],
)
def test_a_bad_catalog_entry_is_refused_with_a_message_naming_it(data, named):
    with pytest.raises(CatalogError) as caught:
        catalog.parse(data, "test")
    assert named in caught.value.message


def test_the_example_catalog_is_valid_and_rollover_defaults_to_zero():
    example = catalog.load(str(sf.ROOT / "config" / "catalog.example.json"))
    assert example.plans["price_starter_monthly"].rollover_cap == 0
    assert BASIC.rollover_cap == 0 and PRO.rollover_cap == 500


def test_a_catalog_file_that_is_not_json_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text("{plans:")
    with pytest.raises(CatalogError, match="catalog.json: not valid JSON"):
        catalog.load(str(path))


@pytest.mark.parametrize("shape", ["current", "old"])
def test_both_invoice_shapes_read_as_the_same_values(shape):
    line = sf.invoice_line(shape, "price_pro", sf.period(2), "sub_1", amount=2000, quantity=2)
    obj = sf.invoice(shape, "subscription_cycle", [line], "sub_1", "cus_1", "user-1", "in_1")
    invoice = stripe_events.invoice(obj)
    assert (invoice.invoice_id, invoice.billing_reason, invoice.customer_id) == ("in_1", "subscription_cycle", "cus_1")
    assert (invoice.subscription_id, invoice.user_id) == ("sub_1", "user-1")
    [read] = invoice.lines
    assert (read.price_id, read.quantity, read.amount, read.proration) == ("price_pro", 2, 2000, False)
    assert read.period == Period(sf.period(2)["start"], sf.period(2)["end"])


def test_an_expanded_price_or_subscription_is_read_by_its_id():
    line = sf.invoice_line("current", "price_pro", sf.period(1), "sub_1", proration=True)
    line["pricing"]["price_details"]["price"] = {"id": "price_pro", "object": "price"}
    obj = sf.invoice("current", "subscription_update", [line], "sub_1", "cus_1", None)
    obj["parent"]["subscription_details"]["subscription"] = {"id": "sub_1", "object": "subscription"}
    invoice = stripe_events.invoice(obj)
    assert invoice.subscription_id == "sub_1" and invoice.user_id is None
    assert invoice.lines[0].price_id == "price_pro" and invoice.lines[0].proration is True


def test_the_stripe_fixture_invoices_parse_without_a_subscription_or_user():
    for folder in ("2025-02-24.acacia", "2025-03-31.basil", "2025-09-30.clover", "2026-07-29.dahlia"):
        invoice = stripe_events.invoice(sf.fixture(f"{folder}/invoice.json"))
        assert invoice.billing_reason == "manual" and invoice.user_id is None
        assert len(invoice.lines) == 1


def test_a_body_that_is_not_an_event_is_invalid_payload():
    for body in ([], {"object": "event"}, {"object": "event", "id": "evt_1", "type": "x", "data": {}}):
        with pytest.raises(InvalidPayload):
            stripe_events.envelope(body)
    event = stripe_events.envelope(json.loads(json.dumps(sf.fixture("2026-07-29.dahlia/event.json"))))
    assert event.type == "plan.created" and event.object["object"] == "plan"


def test_a_checkout_session_names_its_user_by_client_reference_id_first():
    session = sf.checkout_session("payment", "paid", "cus_1", client_reference_id="a", metadata_user_id="b")
    assert stripe_events.checkout_session(session).user_id == "a"
    session = sf.checkout_session("payment", "paid", "cus_1", metadata_user_id="b")
    assert stripe_events.checkout_session(session).user_id == "b"


def test_a_renewal_keeps_up_to_the_cap_and_expires_the_rest():
    decision = renewals.renew(800, None, PRO, 1, Period(100, 200))
    assert decision.outcome == "applied"
    assert [(e.type.value, e.amount) for e in decision.entries] == [("monthly_expired", -300), ("subscription_grant", 1000)]
    assert decision.state == SubscriptionState("price_pro", 100, 200, 1000, None, rolled_over=500, rollover_cap=500)


def test_a_renewal_with_nothing_to_forfeit_writes_only_the_grant_and_seats_multiply_it():
    decision = renewals.renew(0, None, BASIC, 3, Period(100, 200))
    assert [(e.type.value, e.amount) for e in decision.entries] == [("subscription_grant", 900)]


def test_renewal_periods_apply_once_and_older_ones_are_stale():
    state = SubscriptionState("price_pro", 200, 300, 1000)
    assert renewals.renew(10, state, PRO, 1, Period(200, 300)).outcome == "duplicate"
    assert renewals.renew(10, state, PRO, 1, Period(100, 200)).outcome == "stale"
    assert renewals.renew(10, state, PRO, 1, Period(300, 400)).outcome == "applied"
    ended = SubscriptionState("price_pro", 200, 300, 1000, canceled_at=350)
    assert renewals.renew(10, ended, PRO, 1, Period(300, 400)).outcome == "stale"


def test_an_upgrade_adds_only_the_difference_and_a_downgrade_is_ignored():
    state = SubscriptionState("price_basic", 100, 200, 300)
    up = renewals.upgrade(state, PRO, 1, Period(150, 200))
    assert [(e.type.value, e.amount) for e in up.entries] == [("subscription_grant", 700)]
    assert up.state.granted == 1000 and up.state.period_start == 100
    assert renewals.upgrade(up.state, PRO, 1, Period(160, 200)).outcome == "ignored"
    assert renewals.upgrade(up.state, BASIC, 1, Period(170, 200)).outcome == "ignored"
    assert renewals.upgrade(state, PRO, 1, Period(50, 100)).outcome == "stale"


def test_a_cancellation_empties_the_monthly_pool_once():
    decision = renewals.cancel(420, SubscriptionState("price_pro", 100, 200, 1000), 150)
    assert [(e.type.value, e.amount) for e in decision.entries] == [("monthly_expired", -420)]
    assert decision.state.canceled_at == 150
    assert renewals.cancel(0, decision.state, 160).outcome == "duplicate"
    assert renewals.cancel(0, None, 160).outcome == "ignored"


def test_an_upgrade_delivered_before_its_subscriptions_first_invoice_counts_as_after_it():
    # In creation order: the basic plan's first invoice (300), then an upgrade to pro (+700).
    upgraded = renewals.upgrade(None, PRO, 1, Period(110, 200))
    assert [(e.type.value, e.amount) for e in upgraded.entries] == [("subscription_grant", 1000)]
    first = renewals.renew(1000, upgraded.state, BASIC, 1, Period(100, 200))
    assert first.outcome == "ignored" and not first.entries and not first.resets_monthly
    assert (first.state.period_start, first.state.granted, first.state.price_id) == (100, 1000, "price_pro")
    # The next period renews the upgraded plan as usual.
    assert renewals.renew(1000, first.state, PRO, 1, Period(200, 300)).outcome == "applied"
    # A first invoice of a larger plan than the upgrade adds only the difference.
    bigger = renewals.renew(1000, upgraded.state, PRO, 2, Period(100, 200))
    assert [(e.type.value, e.amount) for e in bigger.entries] == [("subscription_grant", 1000)]


def test_a_replaced_subscriptions_late_first_invoice_changes_nothing_when_the_replacement_rolls_nothing_over():
    replacement = {"sub_new": SubscriptionState("price_pro", 150, 250, 1000)}
    late_first_invoice = renewals.renew(1000, None, BASIC, 1, Period(100, 200), replacement)
    assert late_first_invoice.outcome == "ignored" and not late_first_invoice.entries
    assert "sub_new" in late_first_invoice.reason and late_first_invoice.state.period_start == 100
    # A period that begins after the other subscription's renews as usual (two live subscriptions).
    assert renewals.renew(1000, None, BASIC, 1, Period(160, 260), replacement).outcome == "applied"


def test_a_replaced_subscriptions_late_first_invoice_is_rolled_over_by_the_replacement_up_to_its_cap():
    replacement = {"sub_new": SubscriptionState("price_pro", 150, 250, 1000, rolled_over=0, rollover_cap=500)}
    late = renewals.renew(1000, None, BASIC, 1, Period(100, 200), replacement)
    assert late.outcome == "applied"
    assert [(e.type.value, e.amount) for e in late.entries] == [("subscription_grant", 300)]
    assert late.others["sub_new"].rolled_over == 300


def test_an_older_renewal_of_the_same_subscription_stays_stale():
    replacement = {"sub_new": SubscriptionState("price_pro", 150, 250, 1000, rollover_cap=500)}
    renewed = SubscriptionState("price_basic", 120, 220, 300)
    assert renewals.renew(1000, renewed, BASIC, 1, Period(100, 200), replacement).outcome == "stale"


def test_a_late_invoice_of_a_subscription_that_ended_before_its_replacement_renewed_is_stale():
    replacement = {"sub_new": SubscriptionState("price_pro", 150, 250, 1000, rollover_cap=500)}
    ended = SubscriptionState(canceled_at=140)
    assert renewals.renew(1000, ended, BASIC, 1, Period(100, 200), replacement).outcome == "stale"


def test_pausing_a_subscription_the_user_replaced_leaves_the_active_ones_pool_alone():
    replacement = {"sub_new": SubscriptionState("price_pro", 150, 250, 1000)}
    paused = renewals.pause(1300, SubscriptionState("price_basic", 100, 200, 300), 170, replacement)
    assert paused.outcome == "ignored" and not paused.entries and not paused.resets_monthly
    assert paused.state.paused_at == 170 and "sub_new" in paused.reason
    # With no other subscription holding the pool, the pause empties it.
    alone = renewals.pause(1300, SubscriptionState("price_basic", 100, 200, 300), 170, {})
    assert [(e.type.value, e.amount) for e in alone.entries] == [("monthly_expired", -1300)]


def test_the_renewal_line_is_the_plan_line_that_is_not_a_proration():
    old = sf.invoice_line("current", "price_basic", sf.period(1), "s", amount=-100, proration=True)
    new = sf.invoice_line("current", "price_pro", sf.period(2), "s")
    other = sf.invoice_line("current", "price_unknown", sf.period(2), "s")
    lines = stripe_events.invoice(sf.invoice("current", "subscription_cycle", [old, new, other], "s", "c", "u")).lines
    line, plan = renewals.renewal_line(lines, CATALOG)
    assert plan is PRO and line.period.start == sf.period(2)["start"]
    line, plan = renewals.upgrade_line(lines[:1] + lines[2:], CATALOG) or (None, None)
    assert plan is None


def test_pack_lines_multiply_by_quantity_and_other_prices_are_named():
    items = stripe_events.line_items([sf.checkout_line_item("price_pack", 3), sf.checkout_line_item("price_shirt", 1)])
    entries, others = addons.addon_entries(items, CATALOG)
    assert [(e.type.value, e.pool.value, e.amount) for e in entries] == [("addon_purchase", "permanent", 1500)]
    assert others == ["price_shirt"]
