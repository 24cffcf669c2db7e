"""The webhook's linear path, piece by piece and without Firestore: plan, build, the named
decisions, the journal, and subscriptions replacing one another."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.billing import catalog, decisions, events, plans
from shared.billing.events import Period
from shared.billing.journal import JournalEntry, journal_document, journal_fields
from shared.billing.outcomes import EventResult, Outcome
from shared.common.errors import CannotApply
from tests.support.stripe_story import Customer
from tools.local import stripe_events as sf

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CATALOG = catalog.parse({
    "plans": {"price_pro_monthly": {"monthly_credits": 1000, "rollover_cap": 500},
              "price_starter_monthly": {"monthly_credits": 300}},
    "addons": {"price_pack_500": {"permanent_credits": 500}},
})
PRO = CATALOG.plans["price_pro_monthly"]


def _plan(body):
    return plans.plan(events.envelope(body), "{}", CATALOG)


def test_outcomes_are_one_enum_that_reads_as_the_contracts_words():
    assert [str(outcome) for outcome in Outcome] == ["applied", "duplicate", "stale", "ignored", "unapplied", "failed"]
    assert Outcome.APPLIED == "applied"
    assert EventResult("evt", "invoice.paid", Outcome.STALE).as_dict()["outcome"] == "stale"


def test_every_handled_event_type_plans_one_named_module_level_decision():
    named = {planned.decide.__name__ for planned in (
        _plan(Customer("pa").renewal(1, "price_pro_monthly")),
        _plan(Customer("pa").change(1, "price_starter_monthly", "price_pro_monthly")),
        _plan(Customer("pa").cancellation(sf.period(1)["end"])),
        _plan(Customer("pa").paused(sf.period(1)["start"] + 5)),
        _plan(Customer("pa").resumed(sf.period(1)["start"] + 9)),
        _plan(Customer("pa").pack_checkout("cs_pa", paid=True)),
        _plan(Customer("pa").refund("cs_pa", 500)),
        _plan(Customer("pa").dispute("cs_pa", "dp_pa")),
        _plan(Customer("pa").dispute("cs_pa", "dp_pa", status="won")),
    )}
    assert named == {"decide_renewal", "decide_upgrade", "decide_cancellation", "decide_pause", "decide_resume",
                     "decide_pack_purchase", "decide_refund", "decide_dispute", "decide_dispute_closed"}
    assert all(getattr(decisions, name).__qualname__ == name for name in named)


def test_a_renewal_plans_its_invoice_and_period_markers_and_needs_only_its_user():
    planned = _plan(Customer("pb").renewal(2, "price_pro_monthly"))
    assert [marker.namespace for marker in planned.markers] == ["stripe:invoice", "stripe:period"]
    assert planned.inputs == decisions.PlanLine(PRO, 1, Period(**sf.period(2)), "sub_pb", f"sub_pb:{sf.period(2)['start']}")
    assert (planned.user_hint, planned.session_id, planned.payment_intent) == ("pb", None, None)


def test_a_type_nobody_handles_and_an_unpaid_session_are_answered_without_a_commit():
    ignored = _plan(sf.event("plan.created", {"id": "plan_1", "object": "plan"}))
    assert ignored.outcome == Outcome.IGNORED
    unpaid = _plan(Customer("pc").pack_checkout("cs_pc", paid=False))
    assert unpaid.outcome == Outcome.IGNORED and "unpaid" in unpaid.reason


def test_a_refund_of_a_payment_not_applied_yet_is_remembered_on_the_payment_not_on_a_user():
    planned = _plan(Customer("pd").refund("cs_pd", 400))
    built = plans.build(planned, plans.Gathered())
    assert isinstance(built, plans.RememberFact) and built.version is None
    assert built.payment.charges and not built.payment.applied
    # The same refund again, now remembered: nothing new.
    again = plans.build(planned, plans.Gathered(payment=built.payment.to_dict(NOW), payment_version=NOW))
    assert isinstance(again, plans.Answer) and again.outcome == Outcome.IGNORED


def test_a_refund_of_an_applied_payment_becomes_its_users_change():
    planned = _plan(Customer("pe").refund("cs_pe", 400))
    payment = {"user_id": "pe", "granted": 500, "session_id": "cs_pe"}
    built = plans.build(planned, plans.Gathered(payment=payment))
    assert isinstance(built, decisions.EventChange) and built.user_id == "pe"
    assert built.decide is decisions.decide_refund and built.documents == (planned.inputs.payment_path,)


def test_a_pack_whose_line_items_name_no_addon_cannot_be_applied():
    planned = _plan(Customer("pf").pack_checkout("cs_pf", paid=True))
    with pytest.raises(CannotApply):
        plans.build(planned, plans.Gathered("pf", (events.LineItem("price_unknown", 1),), catalog=CATALOG))


def test_a_journal_entry_counts_deliveries_and_marks_when_its_event_applied():
    entry = JournalEntry("evt_1", "invoice.paid", 1_700_000_000, "2026-07-29.dahlia", "cus_1", '{"id": "evt_1"}')
    first = journal_document(entry, Outcome.UNAPPLIED, "unknown user", None, None, NOW)
    assert (first["deliveries"], first["outcome"], "applied_at" in first) == (1, "unapplied", False)
    applied = journal_document(entry, Outcome.APPLIED, "", "u", first, NOW)
    assert (applied["deliveries"], applied["outcome"], applied["applied_at"], applied["reason"]) == (2, "applied", NOW, None)
    fields = journal_fields(entry, Outcome.DUPLICATE, "already applied", "u", NOW)
    assert "applied_at" not in fields and fields["expire_at"] > NOW and fields["raw"] == entry.raw


# --- subscriptions replacing one another -----------------------------------------------------------


