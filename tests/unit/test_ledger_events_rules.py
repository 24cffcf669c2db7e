"""The pure rules of events out, without emulators: which messages a change publishes, and their ids."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.common.errors import InvalidPayload
from shared.events import documents, rules

T1 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
T2 = datetime(2026, 3, 1, 12, 0, 1, tzinfo=timezone.utc)


def doc(monthly=0, permanent=0, **extra):
    return {"user_id": "u1", "credits_monthly": monthly, "credits_permanent": permanent,
            "total_earned": monthly + permanent, "total_spent": 0, "last_updated": T1, **extra}


def record(**extra):
    return {"transaction_id": "txn_1", "user_id": "u1", "type": "spent", "pool": "monthly", "amount": -5,
            "description": "Story (from monthly pool)", "source": "key-1", "created_at": T1, **extra}


def kinds(messages):
    return [m.event_type for m in messages]


def test_a_transaction_record_gives_one_transaction_created_keyed_by_its_id():
    [message] = rules.messages_for("credits_transactions/txn_1", record(), None, T1, 0)

    assert message.event_id == "transaction.created:txn_1"
    assert message.attributes == {"event_type": "transaction.created", "user_id": "u1",
                                  "event_id": "transaction.created:txn_1"}
    assert message.ordering_key == "u1"
    assert message.data["created_at"] == "2026-03-01T12:00:00.123456Z" and message.data["amount"] == -5


def test_a_record_whose_id_is_not_its_document_id_is_not_ours():
    with pytest.raises(InvalidPayload):
        rules.messages_for("credits_transactions/txn_2", record(), None, T1, 0)


def test_the_balance_event_id_is_the_document_and_its_update_time_so_each_commit_has_its_own():
    first = rules.messages_for("users_credits/u1", doc(5), doc(6), T1, 0)
    again = rules.messages_for("users_credits/u1", doc(5), doc(6), T1, 0)
    later = rules.messages_for("users_credits/u1", doc(5), doc(6), T2, 0)

    assert first[0].event_id == "balance.updated:users_credits/u1@2026-03-01T12:00:00.123456Z"
    assert first[0].event_id == again[0].event_id != later[0].event_id


def test_a_new_user_document_is_a_balance_update_from_zero():
    assert kinds(rules.messages_for("users_credits/u1", doc(0, 10), None, T1, 100)) == ["balance.updated"]


def test_a_legacy_document_reads_as_its_migrated_balance_so_its_migration_alone_publishes_nothing():
    legacy = {"user_id": "u1", "balance": 40, "total_earned": 40, "total_spent": 0}
    migrated = doc(0, 40)

    assert rules.messages_for("users_credits/u1", migrated, legacy, T1, 0) == []


@pytest.mark.parametrize(
    "old, new, threshold, low",
    [
        (100, 99, 100, True),   # from exactly the threshold to below it
        (150, 10, 100, True),
        (99, 50, 100, False),   # already below: not a crossing
        (50, 150, 100, False),  # upwards
        (150, 100, 100, False),  # reaching the threshold is not below it
        (150, 10, 0, False),    # no threshold
    ],
)
def test_balance_low_fires_only_on_a_crossing_from_at_least_the_threshold_to_below_it(old, new, threshold, low):
    messages = rules.messages_for("users_credits/u1", doc(0, new), doc(0, old), T1, threshold)

    assert kinds(messages) == ["balance.updated", "balance.low"] if low else ["balance.updated"]


def test_balance_low_carries_both_pools_the_total_and_the_threshold():
    low = rules.messages_for("users_credits/u1", doc(3, 4), doc(30, 40), T1, 10)[1]

    assert low.data == {"user_id": "u1", "balance": 7, "threshold": 10, "credits_monthly": 3, "credits_permanent": 4}
    assert low.event_id == "balance.low:users_credits/u1@2026-03-01T12:00:00.123456Z"


def test_the_new_documents_own_threshold_decides_and_a_threshold_change_alone_fires_nothing():
    own = rules.messages_for("users_credits/u1", doc(0, 40, low_balance_threshold=50),
                             doc(0, 60, low_balance_threshold=50), T1, 10)
    raised = rules.messages_for("users_credits/u1", doc(0, 40, low_balance_threshold=50),
                                doc(0, 40, low_balance_threshold=10), T1, 10)
    zero = rules.messages_for("users_credits/u1", doc(0, 1, low_balance_threshold=0), doc(0, 60), T1, 10)

    assert kinds(own) == ["balance.updated", "balance.low"] and own[1].data["threshold"] == 50
    assert raised == []
    assert kinds(zero) == ["balance.updated"]


def test_a_deleted_document_publishes_nothing():
    assert rules.messages_for("users_credits/u1", None, doc(5), None, 10) == []
    assert rules.messages_for("credits_transactions/txn_1", None, record(), None, 10) == []


@pytest.mark.parametrize("path", ["promo_rejected/m1", "users_credits", "users_credits/u1/sub/x", "a/b/c/d"])
def test_a_path_outside_the_two_collections_is_not_ours(path):
    with pytest.raises(InvalidPayload):
        rules.messages_for(path, {"x": 1}, None, T1, 0)


def test_a_change_without_an_update_time_cannot_be_identified():
    with pytest.raises(InvalidPayload):
        rules.messages_for("users_credits/u1", doc(1), doc(2), None, 0)


def test_a_document_event_survives_the_protobuf_round_trip_with_ints_timestamps_maps_and_nulls():
    value = {"n": 7, "s": "x", "t": T1, "m": {"k": [1, None, True, 2.5]}, "none": None}
    raw = documents.encode(documents.document_name("p", "users_credits/u1"), value, {"n": 6}, update_time=T2)

    change = documents.decode(raw)

    assert change.path == "users_credits/u1" and change.collection == "users_credits"
    assert change.value == value and change.old_value == {"n": 6} and change.update_time == T2
    assert type(change.value["n"]) is int


def test_bytes_that_are_not_a_document_event_are_refused():
    with pytest.raises(InvalidPayload):
        documents.decode(b"\xff\xfe\xfd")
    with pytest.raises(InvalidPayload):
        documents.decode(b"")


def _held(permanent, hold, expires_at):
    """A user document right after a hold of `hold` permanent credits, open until `expires_at`."""
    entry = {"hold_id": "h1", "amount": hold, "description": "Hold", "created_at": T1, "expires_at": expires_at,
             "drawn": [{"pool": "permanent", "amount": hold}]}
    return doc(0, permanent - hold, open_holds={"h1key": entry}, total_spent=hold)


def _low_events(changes, threshold=50):
    """The balance.low events a sequence of (new document, update time) changes publishes."""
    published, before = [], None
    for value, at in changes:
        published += [m.data["balance"] for m in rules.messages_for("users_credits/u1", value, before, at, threshold)
                      if m.event_type == "balance.low"]
        before = value
    return published


def test_balance_low_is_the_same_whether_or_not_the_sweep_released_an_expired_hold_in_between():
    T0 = datetime(2026, 3, 1, 11, 0, tzinfo=timezone.utc)
    held = _held(100, 60, expires_at=T1)  # 40 left: below 50, so the hold itself was a crossing
    swept = doc(0, 100, total_spent=0)  # the sweep gave the 60 back at T1
    spent = doc(0, 45, total_spent=55)  # then a spend of 55 (the same document either way)
    later = datetime(2026, 3, 1, 12, 5, tzinfo=timezone.utc)

    granted = doc(0, 100)
    with_sweep = _low_events([(granted, T0), (held, T0), (swept, T1), (spent, later)])
    without_sweep = _low_events([(granted, T0), (held, T0), (spent, later)])

    assert with_sweep == without_sweep == [40, 45]


def test_an_open_hold_not_yet_expired_counts_as_taken():
    held = _held(100, 60, expires_at=T2)
    assert _low_events([(doc(0, 100), T1), (held, T1)]) == [40]


# --- auto top-up ------------------------------------------------------------------------------

ATTEMPT = {"attempt_id": "topup_a", "user_id": "u1", "credits": 500, "status": "pending", "payment_intent": None,
           "reason": None}


@pytest.mark.parametrize("status, reason, event_type", [
    ("succeeded", None, "topup.succeeded"), ("failed", "lost_card", "topup.failed"),
    ("action_required", "authentication_required", "topup.action_required"),
])
def test_an_attempt_settled_publishes_its_outcome_once(status, reason, event_type):
    settled = {**ATTEMPT, "status": status, "payment_intent": "pi_1", "reason": reason, "client_secret": "pi_1_secret"}

    [message] = rules.messages_for("credits_topups/topup_a", settled, ATTEMPT, None, 0)

    assert (message.event_type, message.user_id, message.event_id) == (event_type, "u1", f"{event_type}:topup_a")
    expected = {"user_id": "u1", "attempt_id": "topup_a", "credits": 500, "payment_intent": "pi_1", "reason": reason}
    if status == "action_required":
        expected["client_secret"] = "pi_1_secret"
    assert message.data == expected
    assert rules.messages_for("credits_topups/topup_a", settled, settled, None, 0) == []


@pytest.mark.parametrize("status", ["pending", "canceled"])
def test_a_pending_or_canceled_attempt_publishes_nothing(status):
    assert rules.messages_for("credits_topups/topup_a", {**ATTEMPT, "status": status}, None, None, 0) == []


def test_a_setting_becoming_disabled_publishes_topup_disabled_once():
    setting = {"status": "active", "credits": 500, "pending_attempt": "topup_a", "reason": None}
    old = {"user_id": "u1", "credits_permanent": 10, "auto_topup": setting}
    new = {**old, "auto_topup": {**setting, "status": "disabled", "reason": "card_declined", "pending_attempt": None}}

    [message] = rules.messages_for("users_credits/u1", new, old, T2, 0)

    assert message.event_type == "topup.disabled"
    assert message.data == {"user_id": "u1", "attempt_id": "topup_a", "credits": 500, "payment_intent": None,
                            "reason": "card_declined"}
    assert rules.messages_for("users_credits/u1", new, new, T2, 0) == []
