"""`credits events tail`: events published by `ledger_events` read back through the Pub/Sub emulator."""

from __future__ import annotations

import json
import time

import pytest
from google.cloud import pubsub_v1

from shared.events import publisher
from tests.support.cli import credits
from tests.support.events import document_event, transaction, user
from tests.support.functions import asgi_client, function_app


@pytest.fixture(scope="session")
def events_app(pubsub_emulator):
    return function_app("ledger_events")


@pytest.fixture
def topic(pubsub_emulator, monkeypatch):
    """A fresh events topic, named in CREDITS_EVENTS_TOPIC; deleted with its subscriptions afterwards."""
    name = f"credits-events-{time.time_ns()}"
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", name)
    monkeypatch.delenv("CREDITS_LOW_BALANCE", raising=False)
    admin = pubsub_v1.PublisherClient()
    path = publisher.topic_path()
    admin.create_topic(name=path)
    yield path
    subscriptions = pubsub_v1.SubscriberClient()
    for subscription in admin.list_topic_subscriptions(topic=path):
        subscriptions.delete_subscription(subscription=subscription)
    subscriptions.close()
    admin.delete_topic(topic=path)


@pytest.fixture
def deliver(events_app, topic):
    client = asgi_client(events_app)

    def post(path, value, old_value=None):
        headers, body = document_event(path, value, old_value)
        response = client.post("/", content=body, headers=headers)
        assert response.status_code == 200, response.content

    return post


def test_tail_makes_its_subscription_and_prints_one_line_per_event_then_stops_at_max(deliver, topic, capsys):
    # The subscription does not exist yet: the first tail makes it, so it sees what comes after.
    first = credits(capsys, "events", "tail", "--timeout", "0.5")
    assert first.code == 0, first.err
    assert first.out == ""

    deliver("credits_transactions/t1", transaction("t1", "u1", -30))
    deliver("users_credits/u1", user("u1", 70, 0), user("u1", 100, 0))

    run = credits(capsys, "events", "tail", "--max", "2", "--timeout", "20")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["transaction.created", "u1", "transaction.created:t1"]
    assert lines[0].endswith("spent -30 permanent")
    assert lines[1].split()[:2] == ["balance.updated", "u1"]
    assert lines[1].split()[2].startswith("balance.updated:users_credits/u1")
    assert lines[1].endswith("balance 70 (monthly 70, permanent 0)")


def test_tail_json_prints_one_object_per_line_and_acknowledges_only_what_it_printed(deliver, topic, capsys):
    assert credits(capsys, "events", "tail", "--timeout", "0.5").code == 0  # makes the subscription
    for n in range(3):
        deliver(f"credits_transactions/t{n}", transaction(f"t{n}", "u2", -(n + 1)))

    first = credits(capsys, "events", "tail", "--json", "--max", "1", "--timeout", "20")
    assert first.code == 0, first.err
    [event] = [json.loads(line) for line in first.out.splitlines()]
    assert event["event_type"] == "transaction.created" and event["user_id"] == "u2"
    assert event["event_id"] == "transaction.created:t0"
    assert event["data"]["amount"] == -1 and event["data"]["transaction_id"] == "t0"

    # The one printed is acknowledged; the other two come next, in order.
    rest = credits(capsys, "events", "tail", "--json", "--max", "5", "--timeout", "3")
    assert rest.code == 0, rest.err
    assert [json.loads(line)["event_id"] for line in rest.out.splitlines()] == [
        "transaction.created:t1", "transaction.created:t2"
    ]


def test_tail_of_a_topic_that_does_not_exist_is_a_usage_error(pubsub_emulator, monkeypatch, capsys):
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", f"no-such-topic-{time.time_ns()}")
    run = credits(capsys, "events", "tail", "--timeout", "1")
    assert run.code == 2
    assert "does not exist" in run.err


def test_tail_refuses_a_max_below_one(capsys):
    run = credits(capsys, "events", "tail", "--max", "0")
    assert run.code == 2
    assert "--max" in run.err


def test_tail_lines_fit_100_columns_and_json_keeps_everything(deliver, topic, capsys):
    long_user = "u" + "x" * 127
    assert credits(capsys, "events", "tail", "--timeout", "0.5").code == 0  # makes the subscription
    deliver("credits_transactions/tw", transaction("tw", long_user, -30))
    run = credits(capsys, "events", "tail", "--max", "1", "--timeout", "20")
    assert run.code == 0, run.err
    [line] = run.out.splitlines()
    assert len(line) <= 100 and line.startswith("transaction.created") and line.endswith("spent -30 permanent")
    assert "…" in line
