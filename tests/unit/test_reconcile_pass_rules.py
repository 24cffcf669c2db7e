"""How a scheduled reconcile pass adds up its pages, and what `credits health` makes of it, without Firestore."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.operations.health_rules import (OWING_USERS, RECONCILE_DRIFT, REJECTED_PROMOS, STALE_HOLDS,
                                            UNAPPLIED_EVENTS, Health, reconcile_view)
from shared.operations.reconcile_rules import PageCounts, after_page

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def page(users: int, drift: int = 0) -> PageCounts:
    return PageCounts(users=users, transactions=users * 3, drift=drift, drift_users=min(drift, users), unconfirmed=0)


def test_the_first_page_starts_a_pass_at_its_own_time_and_moves_the_cursor():
    state, finished = after_page({}, page(5), "u5", False, T0)
    assert finished is None
    assert (state["pass_started_at"], state["cursor"], state["users"], state["transactions"]) == (T0, "u5", 5, 15)
    assert state["last_pass"] is None and state["passes_completed"] == 0


def test_pages_add_up_and_the_page_reaching_the_end_completes_the_pass():
    state, _ = after_page({}, page(5, drift=1), "u5", False, T0)
    state, _ = after_page(state, page(5), "u10", False, T0 + timedelta(minutes=5))
    state, finished = after_page(state, page(2), "u12", True, T0 + timedelta(minutes=10))
    assert finished == {"started_at": T0, "finished_at": T0 + timedelta(minutes=10), "duration_s": 600.0,
                        "users": 12, "transactions": 36, "drift": 1, "drift_users": 1, "unconfirmed": 0, "pages": 3}
    assert state["last_pass"] == finished and state["passes_completed"] == 1
    # The next page starts a new pass from the first user.
    assert (state["pass_started_at"], state["cursor"], state["users"], state["pages"]) == (None, None, 0, 0)


def test_the_next_pass_starts_at_its_first_page_and_keeps_the_last_pass_until_it_completes():
    state, first = after_page({}, page(3, drift=2), "u3", True, T0)
    later = T0 + timedelta(hours=1)
    state, finished = after_page(state, page(2), "u2", False, later)
    assert finished is None and state["pass_started_at"] == later and state["last_pass"] == first
    state, second = after_page(state, page(1), "u3", True, later + timedelta(minutes=5))
    assert second["drift"] == 0 and second["users"] == 3 and state["passes_completed"] == 2


def health(reconcile=None) -> Health:
    return Health(counts={UNAPPLIED_EVENTS: 0, REJECTED_PROMOS: 0, STALE_HOLDS: 0, OWING_USERS: 0},
                  credits_owed=0, reconcile=reconcile)


def test_no_reconcile_pass_yet_is_reported_but_needs_no_attention():
    report = health(None)
    assert report.attention == []
    assert report.as_dict()["reconcile"]["last_pass"] is None
    assert report.as_dict()["reconcile"]["needs_attention"] is False


def test_a_last_pass_that_found_drift_needs_attention_and_a_clean_one_does_not():
    dirty, _ = after_page({}, page(4, drift=2), None, True, T0)
    assert health(dirty).attention == [RECONCILE_DRIFT]
    view = health(dirty).as_dict()["reconcile"]
    assert view["needs_attention"] is True and view["last_pass"]["drift"] == 2
    assert view["last_pass"]["finished_at"] == T0.isoformat()
    clean, _ = after_page(dirty, page(4), None, True, T0 + timedelta(days=1))
    assert health(clean).attention == []


def test_drift_in_the_current_pass_waits_for_the_pass_to_complete():
    clean, _ = after_page({}, page(4), None, True, T0)
    running, _ = after_page(clean, page(2, drift=1), "u2", False, T0 + timedelta(hours=1))
    view = reconcile_view(running)
    assert view["needs_attention"] is False
    assert view["current_pass"] == {"started_at": (T0 + timedelta(hours=1)).isoformat(), "cursor": "u2",
                                    "users": 2, "drift": 1, "pages": 1}
