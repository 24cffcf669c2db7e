"""The pure parts of the Stripe webhook: catalog validation, the event parser, renewal rules."""

from __future__ import annotations

import json

import pytest

from shared.billing import catalog
from shared.billing import addons
from shared.billing import subscriptions as renewals
from shared.billing import events as stripe_events
from shared.common.errors import CatalogError, InvalidPayload
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
