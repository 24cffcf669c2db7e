"""The `ledger_events` function on the real functions-framework, publishing to the real Pub/Sub emulator.

Each test posts the binary-mode CloudEvent Eventarc sends for a Firestore change (a protobuf
`DocumentEventData` body) and reads the events topic through a pull subscription.
"""

from __future__ import annotations

import pytest

from shared.events import publisher
from tests.support.functions import asgi_client, function_app
from tests.support.events import CREATED, EventsTopic, dedupe, document_event, now, transaction, user


@pytest.fixture(scope="session")
def events_app(pubsub_emulator):
    return function_app("ledger_events")


@pytest.fixture
def topic(pubsub_emulator, monkeypatch):
    topic = EventsTopic()
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", topic.name)
    monkeypatch.delenv("CREDITS_LOW_BALANCE", raising=False)
    yield topic
    topic.close()


@pytest.fixture
def deliver(events_app, topic):
    client = asgi_client(events_app)

    def post(path, value, old_value=None, **kwargs):
        headers, body = document_event(path, value, old_value, **kwargs)
        return client.post("/", content=body, headers=headers)

    return post


def test_a_new_transaction_record_publishes_transaction_created_with_the_record_as_the_api_shows_it(deliver, topic):
    record = transaction("txn_1", "u1", -30)

    response = deliver("credits_transactions/txn_1", record, event_type=CREATED)

    assert response.status_code == 200, response.content
    [message] = topic.pull(1)
    assert message.attributes == {"event_type": "transaction.created", "user_id": "u1",
                                  "event_id": "transaction.created:txn_1"}
    assert message.ordering_key == "u1"
    assert message.data == {**record, "created_at": record["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def test_a_change_of_a_users_pools_publishes_balance_updated_with_the_balance_as_the_api_shows_it(deliver, topic):
    stamp = now()
    before, after = user("u1", 100, 50, total_earned=150), user("u1", 100, 20, total_earned=150, total_spent=30, last_updated=stamp)

    response = deliver("users_credits/u1", after, before, update_time=stamp)

    assert response.status_code == 200, response.content
    [message] = topic.pull(1)
    assert message.event_type == "balance.updated"
    assert message.ordering_key == message.attributes["user_id"] == "u1"
    assert message.event_id == f"balance.updated:users_credits/u1@{stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
    assert message.data == {"user_id": "u1", "credits_monthly": 100, "credits_permanent": 20, "balance": 120,
                            "total_earned": 150, "total_spent": 30,
                            "last_updated": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "credits_owed": 0,
                            "credits_held": 0}


def test_a_change_that_takes_the_balance_below_the_threshold_publishes_balance_low(deliver, topic, monkeypatch):
    monkeypatch.setenv("CREDITS_LOW_BALANCE", "100")

    deliver("users_credits/u1", user("u1", 0, 90, total_spent=20), user("u1", 0, 110))

    messages = topic.pull(2)
    assert [m.event_type for m in messages] == ["balance.updated", "balance.low"]
    low = messages[1]
    assert low.data == {"user_id": "u1", "balance": 90, "threshold": 100, "credits_monthly": 0,
                        "credits_permanent": 90}
    assert low.ordering_key == "u1" and low.event_id.startswith("balance.low:users_credits/u1@")


def test_a_redelivered_event_publishes_the_same_event_ids_again(deliver, topic, monkeypatch):
    monkeypatch.setenv("CREDITS_LOW_BALANCE", "100")
    stamp = now()
    change = ("users_credits/u1", user("u1", 0, 50), user("u1", 0, 150))

    first = deliver(*change, update_time=stamp, ce_id="ce-1")
    again = deliver(*change, update_time=stamp, ce_id="ce-1")
    txn = transaction("txn_9", "u1", -100)
    deliver("credits_transactions/txn_9", txn, ce_id="ce-2")
    deliver("credits_transactions/txn_9", txn, ce_id="ce-2")

    assert first.status_code == again.status_code == 200
    messages = topic.pull(6)
    assert len(messages) == 6
    assert sorted(m.event_type for m in dedupe(messages)) == ["balance.low", "balance.updated", "transaction.created"]
    assert all(sum(m.event_id == kept.event_id for m in messages) == 2 for kept in dedupe(messages))


def test_balance_low_fires_once_per_downward_crossing_down_up_and_down_again(deliver, topic, monkeypatch):
    monkeypatch.setenv("CREDITS_LOW_BALANCE", "100")
    states = [150, 120, 80, 60, 130, 100, 99, 50]  # down across at 80, up at 130, down across at 99

    for old, new in zip(states, states[1:]):
        deliver("users_credits/u1", user("u1", 0, new), user("u1", 0, old))

    messages = topic.pull(len(states) - 1 + 2)
    low = [m.data["balance"] for m in messages if m.event_type == "balance.low"]
    assert low == [80, 99]
    assert sum(m.event_type == "balance.updated" for m in messages) == len(states) - 1


def test_a_users_own_threshold_overrides_the_default(deliver, topic, monkeypatch):
    monkeypatch.setenv("CREDITS_LOW_BALANCE", "100")

    deliver("users_credits/u1", user("u1", 0, 90), user("u1", 0, 110))  # default: crosses 100
    deliver("users_credits/u2", user("u2", 0, 90, low_balance_threshold=10), user("u2", 0, 110, low_balance_threshold=10))
    deliver("users_credits/u3", user("u3", 0, 400, low_balance_threshold=500), user("u3", 0, 600, low_balance_threshold=500))

    low = {m.data["user_id"]: m.data["threshold"] for m in topic.pull(5) if m.event_type == "balance.low"}
    assert low == {"u1": 100, "u3": 500}


def test_without_a_default_or_own_threshold_no_balance_low_is_published(deliver, topic):
    deliver("users_credits/u1", user("u1", 0, 1), user("u1", 0, 1000))

    assert [m.event_type for m in topic.pull(1)] == ["balance.updated"]


def test_a_deleted_document_publishes_nothing_and_is_acknowledged(deliver, topic):
    gone_user = deliver("users_credits/u1", None, user("u1", 0, 10))
    gone_record = deliver("credits_transactions/txn_1", None, transaction("txn_1", "u1", 5),
                          event_type="google.cloud.firestore.document.v1.deleted")

    assert gone_user.status_code == gone_record.status_code == 200
    assert topic.pull(0, settle=0.5) == []


def test_a_write_that_leaves_the_balance_as_it_was_publishes_nothing(deliver, topic):
    deliver("users_credits/u1", user("u1", 5, 5, stripe_customer="cus_1"), user("u1", 5, 5))

    assert topic.pull(0, settle=0.5) == []


@pytest.mark.parametrize(
    "path, value",
    [
        ("webhook_unapplied/evt_1", {"reason": "unknown user"}),
        ("users_credits/u1/history/x", {"credits_monthly": 1}),
        ("credits_transactions/txn_1", {"transaction_id": "txn_1", "amount": "lots"}),
    ],
    ids=["another collection", "a subcollection", "a record that is not a transaction"],
)
def test_a_document_that_is_not_ours_is_logged_and_acknowledged(deliver, topic, capsys, path, value):
    response = deliver(path, value)

    assert response.status_code == 200
    assert topic.pull(0, settle=0.5) == []
    assert '"outcome":"invalid_payload"' in capsys.readouterr().out


def test_a_body_that_is_not_protobuf_is_logged_and_acknowledged(events_app, topic, capsys):
    headers, _ = document_event("users_credits/u1", user("u1", 1, 1))

    response = asgi_client(events_app).post("/", content=b"\xff\xfe not protobuf", headers=headers)

    assert response.status_code == 200
    assert '"outcome":"invalid_payload"' in capsys.readouterr().out


def test_a_publish_that_cannot_reach_the_topic_fails_so_eventarc_redelivers(deliver, topic, monkeypatch, capsys):
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", "no-such-topic")
    monkeypatch.setattr(publisher, "PUBLISH_TIMEOUT_S", 10.0)

    response = deliver("credits_transactions/txn_1", transaction("txn_1", "u1", -3))

    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert '"outcome":"unavailable"' in capsys.readouterr().out
    # The ordering key was resumed: the next event for the same user goes out.
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", topic.name)
    assert deliver("credits_transactions/txn_2", transaction("txn_2", "u1", -3)).status_code == 200
    assert [m.event_id for m in topic.pull(1)] == ["transaction.created:txn_2"]


def test_every_refusal_of_the_function_is_in_the_error_envelope(events_app):
    client = asgi_client(events_app)
    wrong_method = client.get("/")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"
    not_an_event = client.post("/", content=b"{}", headers={"content-type": "application/json"})
    assert not_an_event.status_code == 400 and not_an_event.json()["error"]["code"] == "invalid_request"


def test_an_auto_topup_attempt_waiting_for_action_publishes_topup_action_required_with_its_client_secret(
        deliver, topic):
    pending = {"attempt_id": "topup_a", "user_id": "u1", "price_id": "price_pack_500", "quantity": 1,
               "credits": 500, "status": "pending", "created_at": now()}
    waiting = {**pending, "status": "action_required", "payment_intent": "pi_1", "reason": "authentication_required",
               "client_secret": "pi_1_secret_x", "settled_at": now()}

    response = deliver("credits_topups/topup_a", waiting, pending)

    assert response.status_code == 200, response.content
    [message] = topic.pull(1)
    assert message.attributes == {"event_type": "topup.action_required", "user_id": "u1",
                                  "event_id": "topup.action_required:topup_a"}
    assert message.data == {"user_id": "u1", "attempt_id": "topup_a", "credits": 500, "payment_intent": "pi_1",
                            "reason": "authentication_required", "client_secret": "pi_1_secret_x"}
