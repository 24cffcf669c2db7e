"""The services' decisions as plain functions of a snapshot: no emulator, no commit."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.billing import decisions
from shared.billing.catalog import Plan
from shared.billing.events import Period
from shared.billing.journal import JournalEntry
from shared.billing.subscriptions import APPLIED, DUPLICATE
from shared.common import ids
from shared.common.errors import IdempotencyConflict, InsufficientCredits, PoolUnderflow
from shared.ledger import collections
from shared.ledger.change import Snapshot
from shared.ledger.codec import read_account
from shared.ledger.idempotency import Once
from shared.ledger.models import CreditPool, TransactionType
from shared.operations.adjustments import decide_adjustment, validate
from shared.promotions.schemas import PromoMessage
from shared.promotions.service import (
    ALREADY_GRANTED,
    CONFLICTING,
    GRANTED,
    decide_grant,
)
from shared.spending.rules import SpendOrder, SpendRequest, decide_spend
from tests.support.fake_ledger import numbered

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def snapshot(user_id: str, data=None, documents=None) -> Snapshot:
    data = numbered(data)
    return Snapshot(read_account(user_id, data), data, dict(documents or {}), NOW)


def pools(data):
    return {"user_id": "u", "credits_monthly": data[0], "credits_permanent": data[1], "total_earned": sum(data)}


# --- spend ---------------------------------------------------------------------------------


def test_a_spend_draws_permanent_then_monthly_and_marks_its_key_in_the_same_change():
    request = SpendRequest("u", 30, "Story", "key-1")
    change = decide_spend(snapshot("u", pools((50, 20)), {request.command.path: None}), request,
                          SpendOrder.PERMANENT_FIRST)
    assert (change.account.monthly, change.account.permanent) == (40, 0)
    assert [(r.pool, r.amount, r.source) for r in change.records] == [
        (CreditPool.PERMANENT, -20, "key-1"), (CreditPool.MONTHLY, -10, "key-1")]
    marker = change.create[request.command.path]
    assert marker["user_id"] == "u" and json.loads(marker["response"]) == change.result.body
    assert change.result.body["balance"]["balance"] == 40 and not change.result.replayed


def test_a_spend_whose_key_ran_with_the_same_request_replays_and_writes_nothing():
    request = SpendRequest("u", 5, "Story", "key-1")
    stored = {"fingerprint": request.command.fingerprint, "response": json.dumps({"amount": 5})}
    change = decide_spend(snapshot("u", pools((5, 0)), {request.command.path: stored}), request,
                          SpendOrder.PERMANENT_FIRST)
    assert change.result.replayed and change.result.body == {"amount": 5} and not change.writes_anything


def test_a_key_reused_by_another_user_is_a_conflict():
    mine = SpendRequest("u", 5, "Story", "key-1")
    theirs = SpendRequest("v", 5, "Story", "key-1")
    stored = {"fingerprint": mine.command.fingerprint, "response": "{}"}
    with pytest.raises(IdempotencyConflict):
        decide_spend(snapshot("v", pools((5, 0)), {theirs.command.path: stored}), theirs,
                     SpendOrder.PERMANENT_FIRST)


def test_a_spend_beyond_the_pools_is_refused_whole():
    with pytest.raises(InsufficientCredits) as refused:
        decide_spend(snapshot("u", pools((3, 4))), SpendRequest("u", 8), SpendOrder.PERMANENT_FIRST)
    assert refused.value.details == {"balance": 7, "requested": 8}


def test_a_legacy_balance_is_migrated_in_the_spends_change_but_not_shown_in_its_answer():
    change = decide_spend(snapshot("u", {"user_id": "u", "balance": 40}), SpendRequest("u", 15),
                          SpendOrder.PERMANENT_FIRST)
    assert [r.type for r in change.records] == [TransactionType.MIGRATION, TransactionType.SPENT]
    assert [t["type"] for t in change.result.body["transactions"]] == ["spent"]
    assert change.account.permanent == 25 and not change.account.is_legacy


def test_the_idempotency_marker_refuses_another_input_under_the_same_key():
    command = Once("spend", "k", "x/y", "fp-1")
    assert command.replay(None) is None
    assert command.replay({"fingerprint": "fp-1", "response": '{"a":1}'}) == {"a": 1}
    with pytest.raises(IdempotencyConflict) as conflict:
        command.ran({"fingerprint": "fp-2"})
    assert conflict.value.details == {"idempotency_key": "k"}


def test_every_idempotency_record_holds_its_namespace_key_fingerprint_response_and_time():
    command = Once.command("refund", "r-1", lambda key: f"spend_idempotency/{key}", "refund", "u", 5)
    record = command.record(NOW, {"amount": 5}, user_id="u")
    assert record == {"namespace": "refund", "key": "r-1", "idempotency_key": "r-1", "user_id": "u",
                      "fingerprint": command.fingerprint, "response": '{"amount":5}', "created_at": NOW}
    assert Once.command("refund", None, str) is None
    # The same request replays; a fact has no fingerprint, so every delivery of it is the same.
    assert command.replay(record) == {"amount": 5}
    fact = Once.fact("stripe:invoice", "in_1", "webhook_applied/invoice:in_1")
    stored = fact.record(NOW, event_id="evt_1")
    assert stored == {"namespace": "stripe:invoice", "key": "in_1", "event_id": "evt_1", "created_at": NOW}
    assert fact.ran(stored) and fact.ran({"event_id": "evt_0"}) and not fact.ran(None)


# --- adjustments ---------------------------------------------------------------------------


def test_an_adjustment_writes_its_record_and_audit_entry_together():
    request = validate("u", "monthly", -5, "duplicate grant", "ops", "adj-1")
    change = decide_adjustment(snapshot("u", pools((10, 0)), {request.command.path: None}), request)
    [record] = change.records
    assert (record.pool, record.amount, record.source) == (CreditPool.MONTHLY, -5, request.adjustment_id)
    audit = change.create[request.command.path]
    assert audit["operator"] == "ops" and audit["transaction_id"] == record.transaction_id


def test_an_adjustment_never_takes_a_pool_below_zero():
    request = validate("u", "permanent", -5, "typo", "ops")
    with pytest.raises(PoolUnderflow):
        decide_adjustment(snapshot("u", pools((10, 4)), {request.command.path: None}), request)


def test_an_adjustment_repeated_by_a_colleague_is_a_replay():
    first = validate("u", "permanent", 5, "goodwill", "ana", "adj-2")
    again = validate("u", "permanent", 5, "goodwill", "ben", "adj-2")
    change = decide_adjustment(snapshot("u", pools((0, 0)), {first.command.path: None}), first)
    audit = change.create[first.command.path]
    replay = decide_adjustment(snapshot("u", pools((0, 5)), {again.command.path: audit}), again)
    assert replay.result.replayed and not replay.writes_anything
    assert replay.result.transaction == change.result.transaction


# --- promotions ----------------------------------------------------------------------------


def _grant_path(message: PromoMessage, user_id: str) -> str:
    return collections.transaction(ids.grant_record_id(message.grant_id, user_id))


def test_a_grant_creates_its_record_under_the_id_derived_from_grant_and_user():
    message = PromoMessage.model_validate({"grant_id": "spring", "user_ids": ["u"], "amount": 50})
    change = decide_grant(snapshot("u", None, {_grant_path(message, "u"): None}), message, "u")
    assert change.result == GRANTED
    assert [r.transaction_id for r in change.records] == [ids.grant_record_id("spring", "u")]
    assert (change.account.permanent, change.account.total_earned) == (50, 50)


@pytest.mark.parametrize("amount, result", [(50, ALREADY_GRANTED), (60, CONFLICTING)])
def test_a_grant_already_recorded_changes_nothing(amount, result):
    message = PromoMessage.model_validate({"grant_id": "spring", "user_ids": ["u"], "amount": 50})
    seen = {_grant_path(message, "u"): {"amount": amount}}
    change = decide_grant(snapshot("u", pools((0, 50)), seen), message, "u")
    assert change.result == result and not change.writes_anything


# --- Stripe events -------------------------------------------------------------------------


PRO = Plan("price_pro", 1000)
PERIOD = Period(1_700_000_000, 1_702_592_000)


def _renewal(markers=(Once.fact("stripe:invoice", "in_1", "webhook_applied/invoice:in_1"),
                      Once.fact("stripe:period", "sub_1:1700000000", "webhook_applied/period:sub_1:1700000000"))):
    return decisions.EventChange(
        journal=JournalEntry("evt_1", "invoice.paid", PERIOD.start, None, None, "{}"), user_id="u", source="in_1",
        markers=tuple(markers), decide=decisions.decide_renewal, inputs=decisions.PlanLine(PRO, 1, PERIOD, "sub_1", "sub_1:1700000000"),
        unapplied_path="webhook_unapplied/evt_1", subscription_id="sub_1",
    )


def test_a_renewal_creates_both_markers_keeps_the_subscription_state_and_drops_a_kept_copy():
    spec = _renewal()
    documents = {path: None for path in spec.reads} | {spec.unapplied_path: {"reason": "unknown user"}}
    change = decisions.decide_event(snapshot("u", pools((300, 0)), documents), spec)
    assert change.result.decision.outcome == APPLIED and change.result.journaled
    assert set(change.create) == {marker.path for marker in spec.markers} and change.delete == (spec.unapplied_path,)
    journal = change.overwrite[spec.journal.path]
    assert (journal["outcome"], journal["deliveries"], journal["applied_at"]) == ("applied", 1, NOW)
    record = change.create["webhook_applied/period:sub_1:1700000000"]
    assert (record["namespace"], record["key"], record["event_id"], record["outcome"]) == (
        "stripe:period", "sub_1:1700000000", "evt_1", APPLIED)
    assert change.user_fields["stripe_subscriptions"]["sub_1"]["period_start"] == PERIOD.start
    assert change.user_fields["monthly_reset_at"] == NOW
    assert [r.amount for r in change.records] == [-300, 1000]


def test_a_period_renewed_under_another_invoice_is_a_duplicate():
    spec = _renewal()
    documents = {path: None for path in spec.reads} | {spec.markers[1].path: {"event_id": "evt_0"}}
    change = decisions.decide_event(snapshot("u", pools((300, 0)), documents), spec)
    assert change.result.decision.outcome == DUPLICATE and not change.writes_anything
