"""What `credits health` calls a problem, without Firestore."""

from shared.operations.health_rules import (OWING_USERS, REJECTED_PROMOS, STALE_HOLDS, TOPUPS_ACTION,
                                            TOPUPS_FAILED, TOPUPS_REVERSED, UNAPPLIED_EVENTS, Health)


def _health(**counts: int) -> Health:
    return Health(counts={UNAPPLIED_EVENTS: 0, REJECTED_PROMOS: 0, STALE_HOLDS: 0, OWING_USERS: 0, **counts},
                  credits_owed=0)


def test_nothing_kept_and_no_stale_hold_needs_no_attention():
    assert _health().attention == [] and _health().as_dict()["needs_attention"] is False


def test_one_kept_event_message_or_stale_hold_each_needs_attention_in_report_order():
    assert _health(**{STALE_HOLDS: 1, UNAPPLIED_EVENTS: 3}).attention == [UNAPPLIED_EVENTS, STALE_HOLDS]
    assert _health(**{REJECTED_PROMOS: 1}).as_dict()["checks"][REJECTED_PROMOS]["needs_attention"] is True


def test_users_owing_credits_are_reported_but_never_alarm():
    report = _health(**{OWING_USERS: 12})
    assert report.attention == [] and report.as_dict()["checks"][OWING_USERS]["count"] == 12


def test_stopped_auto_top_ups_are_counted_apart_and_never_alarm():
    report = _health(**{TOPUPS_FAILED: 2, TOPUPS_REVERSED: 1, TOPUPS_ACTION: 3})
    checks = report.as_dict()["checks"]
    assert report.attention == []
    assert [checks[name]["count"] for name in (TOPUPS_FAILED, TOPUPS_REVERSED, TOPUPS_ACTION)] == [2, 1, 3]
