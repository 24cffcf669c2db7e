"""Auto top-up's pure rules (CONTRACT section 9): when an attempt is due, and what outcomes do."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.ledger import autotopup as rules
from shared.ledger.autotopup import ChargeOutcome, TopupSetting

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
SETTING = TopupSetting(enabled=True, threshold=100, price_id="price_pack_500", credits=500)


def test_a_balance_below_the_threshold_makes_one_pending_attempt_named_on_the_setting():
    attempt, after = rules.decide_attempt("u", SETTING, 99, NOW)
    assert attempt.document["status"] == "pending" and attempt.document["credits"] == 500
    assert after.pending_attempt == attempt.attempt_id and after.this_month == 1 and after.month == "2026-12"
    # While it is pending, no further change makes another (Lago #1962).
    assert rules.decide_attempt("u", after, 0, NOW + timedelta(minutes=5)) is None


@pytest.mark.parametrize("balance", [100, 5000])
def test_a_balance_at_or_above_the_threshold_makes_none(balance):
    assert rules.decide_attempt("u", SETTING, balance, NOW) is None


@pytest.mark.parametrize("setting", [
    replace(SETTING, enabled=False),
    replace(SETTING, status="disabled", reason="card_declined"),
    replace(SETTING, status="action_required"),
    replace(SETTING, month="2026-12", this_month=5),
    replace(SETTING, failures=1, last_failure_at=NOW - timedelta(minutes=59)),
    replace(SETTING, failures=2, last_failure_at=NOW - timedelta(hours=3, minutes=59)),
    None,
], ids=["disabled by the user", "disabled by a decline", "waiting for action", "monthly limit", "one failure under an hour",
        "two failures under four hours", "no setting"])
def test_no_attempt_is_made_when_the_setting_says_not_now(setting):
    assert rules.decide_attempt("u", setting, 0, NOW) is None


def test_backoff_ends_after_one_hour_or_four_after_two_failures_and_the_limit_resets_each_month():
    assert rules.decide_attempt("u", replace(SETTING, failures=1, last_failure_at=NOW - timedelta(hours=1)), 0, NOW)
    assert rules.decide_attempt("u", replace(SETTING, failures=2, last_failure_at=NOW - timedelta(hours=4)), 0, NOW)
    assert rules.decide_attempt("u", replace(SETTING, month="2026-11", this_month=5), 0, NOW)


def _after(setting, outcome, created=NOW):
    return rules.settle_setting(setting, "a1", outcome, created, NOW)


def test_a_success_clears_the_pending_attempt_and_the_failures():
    pending = replace(SETTING, pending_attempt="a1", failures=2, month="2026-12", this_month=1)
    after = _after(pending, ChargeOutcome(rules.SUCCEEDED))
    assert (after.pending_attempt, after.failures, after.this_month, after.status) == (None, 0, 1, "active")


@pytest.mark.parametrize("code", ["lost_card", "stolen_card", "pickup_card", "fraudulent", "expired_card"])
def test_a_hard_decline_disables_at_once(code):
    after = _after(replace(SETTING, pending_attempt="a1"), ChargeOutcome(rules.FAILED, decline_code=code))
    assert (after.status, after.reason) == ("disabled", "card_declined")


def test_advice_not_to_try_again_is_a_hard_decline():
    after = _after(SETTING, ChargeOutcome(rules.FAILED, decline_code="generic_decline", advice_code="do_not_try_again"))
    assert after.reason == "card_declined"


def test_the_third_soft_decline_in_a_row_disables_and_failed_attempts_do_not_count_against_the_limit():
    setting = replace(SETTING, month="2026-12", this_month=3, pending_attempt="a1")
    for expected in ("active", "active", "disabled"):
        setting = _after(replace(setting, pending_attempt="a1"), ChargeOutcome(rules.FAILED, decline_code="insufficient_funds"))
        assert setting.status == expected
    assert setting.reason == "repeated_failures" and setting.this_month == 0


def test_authentication_needed_waits_for_action_and_a_later_success_reactivates():
    waiting = _after(replace(SETTING, pending_attempt="a1"), ChargeOutcome(rules.ACTION_REQUIRED))
    assert waiting.status == "action_required" and rules.decide_attempt("u", waiting, 0, NOW) is None
    assert _after(waiting, ChargeOutcome(rules.SUCCEEDED)).status == "active"


def test_no_payment_method_disables_and_a_reversed_payment_disables():
    assert _after(SETTING, ChargeOutcome(rules.MISSING_PAYMENT_METHOD)).reason == "missing_payment_method"
    assert rules.reversed_payment(SETTING).reason == "payment_reversed"


def test_putting_a_setting_again_makes_it_active_with_no_failures_and_keeps_the_months_count():
    disabled = replace(SETTING, status="disabled", reason="repeated_failures", failures=3, last_failure_at=NOW,
                       month="2026-12", this_month=2)
    again = rules.put_setting(SETTING, disabled)
    assert (again.status, again.reason, again.failures, again.last_failure_at, again.this_month) == (
        "active", None, 0, None, 2)


def test_removing_the_setting_keeps_the_pending_attempt_and_the_months_count_for_a_setting_put_again():
    # Found by the simulation (tests/simulation/found.py, REMOVED_THEN_PUT).
    counted = replace(SETTING, month="2026-12", this_month=1, pending_attempt="a1")
    stub = rules.removed_setting(counted)
    assert (stub.enabled, stub.removed, stub.pending_attempt, stub.this_month) == (False, True, "a1", 1)
    assert rules.view(stub, NOW) is None and rules.decide_attempt("u", stub, 0, NOW) is None
    assert rules.should_charge({"attempt_id": "a1", "status": "pending"}, stub) is False
    again = rules.put_setting(SETTING, stub)
    assert (again.removed, again.pending_attempt, again.this_month) == (False, "a1", 1)
    assert rules.decide_attempt("u", again, 0, NOW) is None  # "a1" is still pending
    # Nothing to keep: the setting goes, as before.
    assert rules.removed_setting(SETTING) is None and rules.removed_setting(None) is None


def test_a_removed_settings_stub_follows_its_attempts_outcomes_but_never_becomes_a_setting_again():
    stub = rules.removed_setting(replace(SETTING, month="2026-12", this_month=1, pending_attempt="a1"))
    failed = _after(stub, ChargeOutcome(rules.FAILED, decline_code="lost_card"))
    assert (failed.pending_attempt, failed.this_month, failed.status, failed.removed) == (None, 0, "active", True)
    assert rules.reversed_payment(stub) == stub


def test_a_success_of_an_attempt_canceled_after_its_charge_was_made_lands_and_counts_again():
    # Found by the simulation (tests/simulation/found.py, CHARGED_THEN_CANCELED).
    canceled = {"attempt_id": "a1", "status": "canceled", "payment_intent": None}
    assert rules.settles(canceled, ChargeOutcome(rules.SUCCEEDED, payment_intent="pi_1"))
    assert not rules.settles(canceled, ChargeOutcome(rules.FAILED, "generic_decline", payment_intent="pi_1"))
    another = ChargeOutcome(rules.SUCCEEDED, payment_intent="pi_1")
    assert not rules.settles({**canceled, "payment_intent": "pi_2"}, another)
    stopped = replace(SETTING, enabled=False, month="2026-12", this_month=0)
    after = rules.settle_setting(stopped, "a1", ChargeOutcome(rules.SUCCEEDED, payment_intent="pi_1"), NOW, NOW,
                                 was_canceled=True)
    assert (after.enabled, after.this_month, after.failures) == (False, 1, 0)


def test_the_setting_round_trips_its_document_and_ignores_one_that_is_not_a_setting():
    assert TopupSetting.from_dict(SETTING.to_dict()) == SETTING
    assert TopupSetting.from_dict({"enabled": True}) is None and TopupSetting.from_dict("x") is None


# --- the kernel's check on every change ------------------------------------------------------

def _change(balance, user_fields=None):
    from shared.ledger.accounts import Account
    from shared.ledger.change import Change

    return Change(result="r", account=Account("u", 0, balance), user_fields=user_fields or {})


def test_a_change_leaving_the_balance_below_the_threshold_carries_the_attempt_and_the_setting_naming_it():
    data = {"auto_topup": SETTING.to_dict()}

    change = rules.with_due_attempt(_change(99), data, NOW)

    (path, attempt), = change.create.items()
    assert path == f"credits_topups/{attempt['attempt_id']}" and attempt["user_id"] == "u"
    assert change.user_fields["auto_topup"]["pending_attempt"] == attempt["attempt_id"]
    assert change.result == "r"


def test_a_change_without_a_setting_or_above_the_threshold_or_writing_nothing_is_left_as_it_is():
    from shared.ledger.change import REMOVED, Change

    assert rules.with_due_attempt(_change(5), {}, NOW) == _change(5)
    assert rules.with_due_attempt(_change(100), {"auto_topup": SETTING.to_dict()}, NOW) == _change(100)
    assert rules.with_due_attempt(Change(result=None), {"auto_topup": SETTING.to_dict()}, NOW) == Change(result=None)
    removed = _change(5, {"auto_topup": REMOVED})
    assert rules.with_due_attempt(removed, {"auto_topup": SETTING.to_dict()}, NOW) == removed


def test_the_setting_the_change_leaves_is_the_one_checked():
    put = _change(5, {"auto_topup": SETTING.to_dict()})
    assert rules.with_due_attempt(put, {}, NOW).create
    stopped = _change(5, {"auto_topup": replace(SETTING, enabled=False).to_dict()})
    assert not rules.with_due_attempt(stopped, {"auto_topup": SETTING.to_dict()}, NOW).create


@pytest.mark.parametrize("setting, reason", [
    (replace(SETTING, enabled=False), "not_enabled"),
    (None, "not_enabled"),
    (replace(SETTING, status="disabled", reason="card_declined"), "disabled"),
    (replace(SETTING, status="action_required"), "action_required"),
    (replace(SETTING, pending_attempt="a1"), "attempt_pending"),
    (replace(SETTING, month="2026-12", this_month=5), "monthly_limit_reached"),
    (replace(SETTING, failures=1, last_failure_at=NOW - timedelta(minutes=59)), "backing_off"),
    (replace(SETTING, failures=1, last_failure_at=NOW - timedelta(hours=1)), None),
    (replace(SETTING, month="2026-11", this_month=5), None),
])
def test_what_holds_the_next_attempt_back_is_named_and_nothing_when_one_would_be_made(setting, reason):
    assert rules.blocked(setting, NOW) == reason
    assert (rules.decide_attempt("u", setting, 0, NOW) is None) == (reason is not None)


def test_the_backoff_ends_one_hour_after_a_failure_and_four_hours_after_two_in_a_row():
    assert rules.backoff_until(SETTING) is None
    assert rules.backoff_until(replace(SETTING, failures=1, last_failure_at=NOW)) == NOW + timedelta(hours=1)
    assert rules.backoff_until(replace(SETTING, failures=2, last_failure_at=NOW)) == NOW + timedelta(hours=4)
