"""The rules of a user's settings and of listing holds, as plain functions: no emulator, no commit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.ledger.change import REMOVED, Snapshot
from shared.ledger.codec import read_account
from shared.spending import page_tokens
from shared.spending.holds import listed, stored_statuses
from shared.common.errors import InvalidRequest
from shared.ledger.autotopup import TopupSetting
from shared.common.errors import NotFound
from shared.spending.settings import (AutoTopupBody, SettingsBody, decide_settings, decide_topup_switch,
                                      settings_view)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def snapshot(data=None, user_id="u") -> Snapshot:
    return Snapshot(read_account(user_id, data), data, {}, NOW)


def user(**extra):
    return {"user_id": "u", "credits_monthly": 5, "credits_permanent": 7, **extra}


# --- settings ------------------------------------------------------------------------------


def test_a_user_with_no_record_has_null_settings():
    assert settings_view("u", None, NOW) == {"user_id": "u", "low_balance_threshold": None, "auto_topup": None}


@pytest.mark.parametrize("stored", [0, -3, 5.0, "5", True, 1_000_000_001, None])
def test_a_stored_threshold_that_is_not_a_valid_integer_reads_as_none(stored):
    assert settings_view("u", user(low_balance_threshold=stored), NOW)["low_balance_threshold"] is None


def test_setting_a_threshold_writes_it_beside_the_pools_and_answers_what_get_will():
    change = decide_settings(snapshot(user()), {"low_balance_threshold": 40})

    assert change.user_fields == {"low_balance_threshold": 40}
    assert (change.account.monthly, change.account.permanent) == (5, 7)
    assert change.records == ()
    assert change.result == {"user_id": "u", "low_balance_threshold": 40, "auto_topup": None}


def test_clearing_a_threshold_removes_the_field():
    change = decide_settings(snapshot(user(low_balance_threshold=40)), {"low_balance_threshold": None})

    assert change.user_fields == {"low_balance_threshold": REMOVED}
    assert change.result["low_balance_threshold"] is None


@pytest.mark.parametrize("data, changes", [
    (user(low_balance_threshold=40), {"low_balance_threshold": 40}),
    (user(), {"low_balance_threshold": None}),
    (None, {"low_balance_threshold": None}),
])
def test_a_change_to_what_is_already_set_writes_nothing(data, changes):
    change = decide_settings(snapshot(data), changes)

    assert not change.writes_anything
    assert change.result == settings_view("u", data, NOW)


def test_a_legacy_document_is_migrated_with_its_record_by_a_settings_change():
    change = decide_settings(snapshot({"user_id": "u", "balance": 30, "last_seq": 0}), {"low_balance_threshold": 10})

    assert change.account.permanent == 30 and not change.account.is_legacy
    assert [(r.type.value, r.amount, r.seq) for r in change.records] == [("migration", 30, 1)]


def test_a_settings_body_names_the_settings_it_changes_and_nothing_else():
    assert SettingsBody.model_validate({"low_balance_threshold": 9}).changes() == {"low_balance_threshold": 9}
    assert SettingsBody.model_validate({"low_balance_threshold": None}).changes() == {"low_balance_threshold": None}


@pytest.mark.parametrize("body", [
    {}, {"low_balance_threshold": 0}, {"low_balance_threshold": 1_000_000_001}, {"low_balance_threshold": 2.0},
    {"low_balance_threshold": "2"}, {"low_balance_threshold": False}, {"low_balance_threshold": 2, "other": 1},
])
def test_an_empty_unknown_or_invalid_settings_body_is_refused(body):
    with pytest.raises(ValidationError):
        SettingsBody.model_validate(body)


TOPUP = {"enabled": True, "threshold": 100, "price_id": "price_pack_500"}


def test_an_auto_topup_body_takes_its_defaults_and_the_credits_of_its_quantity():
    body = SettingsBody.model_validate({"auto_topup": {**TOPUP, "quantity": 3}}).auto_topup

    setting = body.setting(500)
    assert (setting.quantity, setting.monthly_limit, setting.credits) == (3, 5, 1500)
    assert (setting.customer, setting.payment_method, setting.status) == (None, None, "active")


@pytest.mark.parametrize("topup", [
    {"threshold": 100, "price_id": "p"}, {**TOPUP, "enabled": 1}, {**TOPUP, "threshold": 0},
    {**TOPUP, "threshold": 1_000_000_001}, {**TOPUP, "quantity": 101}, {**TOPUP, "monthly_limit": 0},
    {**TOPUP, "price_id": ""}, {**TOPUP, "price_id": "a/b"}, {**TOPUP, "customer": 5}, {**TOPUP, "status": "active"},
])
def test_an_invalid_auto_topup_body_is_refused(topup):
    with pytest.raises(ValidationError):
        SettingsBody.model_validate({"auto_topup": topup})


def test_putting_auto_topup_restarts_its_state_but_keeps_the_month_and_the_pending_attempt():
    stored = TopupSetting(True, 100, "price_pack_500", 500, status="disabled", reason="repeated_failures", failures=3,
                          month="2026-03", this_month=2, pending_attempt="a1")
    data = user(auto_topup=stored.to_dict())

    change = decide_settings(snapshot(data), {"auto_topup": AutoTopupBody.model_validate(TOPUP).setting(500)})

    written = change.user_fields["auto_topup"]
    assert (written["status"], written["failures"], written["reason"]) == ("active", 0, None)
    assert (written["this_month"], written["pending_attempt"]) == (2, "a1")
    assert change.result["auto_topup"]["status"] == "active"


def test_removing_auto_topup_removes_the_field_and_removing_none_writes_nothing():
    stored = TopupSetting(True, 100, "price_pack_500", 500).to_dict()
    assert decide_settings(snapshot(user(auto_topup=stored)), {"auto_topup": None}).user_fields == {
        "auto_topup": REMOVED}
    assert not decide_settings(snapshot(user()), {"auto_topup": None}).writes_anything


@pytest.mark.parametrize("enabled", [True, False])
def test_an_operator_switch_puts_the_users_setting_again_keeping_their_choices_and_restarting_its_state(enabled):
    stored = TopupSetting(True, 250, "price_pack_500", 1500, quantity=3, monthly_limit=7, customer="cus_1",
                          payment_method="pm_1", status="disabled", reason="payment_reversed", failures=2,
                          last_failure_at=NOW, month="2026-03", this_month=2)
    data = user(auto_topup=stored.to_dict())

    change = decide_topup_switch(snapshot(data), enabled)

    written = change.user_fields["auto_topup"]
    same_put = decide_settings(snapshot(data), {"auto_topup": AutoTopupBody.model_validate({
        "enabled": enabled, "threshold": 250, "price_id": "price_pack_500", "quantity": 3, "monthly_limit": 7,
        "customer": "cus_1", "payment_method": "pm_1"}).setting(500)})
    assert written == same_put.user_fields["auto_topup"]
    assert (written["enabled"], written["status"], written["reason"], written["failures"]) == (enabled, "active", None, 0)
    assert (written["credits"], written["threshold"], written["this_month"]) == (1500, 250, 2)


def test_an_operator_switch_of_a_user_without_a_setting_is_refused():
    with pytest.raises(NotFound):
        decide_topup_switch(snapshot(user()), True)


# --- listing holds -------------------------------------------------------------------------


def hold(status="held", expires_in=60):
    return {"hold_id": "h", "status": status, "expires_at": NOW + timedelta(seconds=expires_in)}


def test_a_listing_of_expired_holds_also_reads_the_holds_still_stored_held():
    assert stored_statuses(None) is None
    assert stored_statuses("expired") == ("held", "expired")
    assert stored_statuses("held") == ("held",)
    assert stored_statuses("captured") == ("captured",)


def test_a_hold_past_its_expiry_is_listed_as_expired_and_not_as_held():
    late = NOW + timedelta(seconds=61)

    assert listed(hold(), "held", NOW) and not listed(hold(), "expired", NOW)
    assert listed(hold(), "expired", late) and not listed(hold(), "held", late)
    assert listed(hold("expired", -5), "expired", NOW)
    assert listed(hold("captured", -5), "captured", late) and not listed(hold("captured"), "expired", late)
    assert listed(hold(), None, late)


def test_a_listing_token_is_short_whatever_the_user_and_only_its_own_listing_takes_it_back():
    user_id = "𝄞" * 128
    listing = page_tokens.listing("holds", user_id, "held")
    token = page_tokens.sign(listing, [NOW.isoformat(), "d" * 64])

    assert len(token) < 200
    assert page_tokens.time_cursor(listing, token) == (NOW, "d" * 64)
    for other in (page_tokens.listing("holds", user_id, "expired"), page_tokens.listing("holds", "u", "held")):
        with pytest.raises(InvalidRequest):
            page_tokens.time_cursor(other, token)
    with pytest.raises(InvalidRequest):
        page_tokens.time_cursor(listing, token + "0")
    # A history token of the same user is no holds token, and the other way round.
    with pytest.raises(InvalidRequest):
        page_tokens.decode(user_id, token, {})
    with pytest.raises(InvalidRequest):
        page_tokens.time_cursor(listing, page_tokens.encode(user_id, 5, {}))


@pytest.mark.parametrize("cursor", [["not a time", "d"], [NOW.isoformat()], [NOW.replace(tzinfo=None).isoformat(), "d"],
                                    [NOW.isoformat(), "a/b"], [NOW.isoformat(), ""], {"a": 1}, [NOW.isoformat(), 5]])
def test_a_signed_cursor_of_the_wrong_shape_is_refused_not_crashed(cursor):
    listing = page_tokens.listing("holds", "u", None)
    token = page_tokens.sign(listing, cursor)

    with pytest.raises(InvalidRequest):
        page_tokens.time_cursor(listing, token)
