"""End to end: real changes in the Firestore emulator, forwarded by the local forwarder as Eventarc
would, through `ledger_events` on functions-framework, to the real Pub/Sub emulator.

The function's answer to the first delivery of every event is lost on the way back (as when
Eventarc times out a request that did publish), so every change is delivered and published at
least twice; deduplicated on `event_id`, what a consumer keeps is exactly one message per change.
"""

from __future__ import annotations

import threading
import time

import pytest

from scripts.local_events import Forwarder
from shared.promotions import schemas, service as promo_service
from tests.support.functions import function_app, serve_asgi
from tests.support.emulators import PROJECT
from tests.support.events import EventsTopic, dedupe
from tests.support.ledger import records_of
from tests.support.stripe_story import Customer


class LosesFirstAnswers:
    """ASGI middleware: runs every request, but answers the first delivery of each event with a 503."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ce_id = dict(scope["headers"]).get(b"ce-id", b"").decode()
        with self.lock:
            first = ce_id not in self.seen
            self.seen.add(ce_id)
        if not first:
            return await self.app(scope, receive, send)

        async def dropped(message) -> None:
            pass  # the function ran and published; only its answer is dropped

        await self.app(scope, receive, dropped)
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"answer lost"})


@pytest.fixture
def pipeline(db, pubsub_emulator, monkeypatch):
    topic = EventsTopic()
    monkeypatch.setenv("CREDITS_EVENTS_TOPIC", topic.name)
    monkeypatch.setenv("CREDITS_LOW_BALANCE", "200")
    app = function_app("ledger_events")
    with serve_asgi(LosesFirstAnswers(app)) as url:
        forwarder = Forwarder(url, PROJECT).start()
        try:
            yield topic, forwarder
        finally:
            forwarder.stop()
            topic.close()


def wait_for(topic, received, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received.extend(topic.pull(0, timeout=1, settle=0.1))
        if condition(dedupe(received)):
            return
    raise AssertionError(f"not received in {timeout}s: {[m.event_id for m in dedupe(received)]}")


def test_a_renewal_a_promo_and_a_spend_each_reach_the_topic_once_per_change_after_deduplication(
    pipeline, webhook, spend_client, db
):
    topic, forwarder = pipeline
    received = []

    def kinds(kept):
        return [m.event_type for m in kept]

    assert webhook.outcome(Customer("ada").renewal(1, "price_starter_monthly")) == "applied"  # 300 monthly
    wait_for(topic, received, lambda kept: kinds(kept).count("balance.updated") == 1)
    promo_service.grant(schemas.parse_message(b'{"grant_id": "g1", "user_ids": ["ada"], "amount": 50}'))
    wait_for(topic, received, lambda kept: kinds(kept).count("balance.updated") == 2)
    spent = spend_client.post("/spend", json={"user_id": "ada", "amount": 200, "idempotency_key": "ada-1"})
    assert spent.status_code == 200
    records = records_of(db, "ada")
    wait_for(topic, received, lambda kept: kinds(kept).count("balance.updated") == 3
             and kinds(kept).count("transaction.created") == len(records) and "balance.low" in kinds(kept))
    received.extend(topic.pull(0, settle=1.0))

    kept = dedupe(received)
    assert len(received) >= 2 * len(kept)  # every change was published at least twice...
    assert len({m.event_id for m in kept}) == len(kept)  # ...and dedupes to one message per change
    assert sorted(m.data["transaction_id"] for m in kept if m.event_type == "transaction.created") == sorted(
        r["transaction_id"] for r in records
    )
    balances = [(m.data["credits_monthly"], m.data["credits_permanent"]) for m in kept
                if m.event_type == "balance.updated"]
    assert balances == [(300, 0), (300, 50), (150, 0)]
    [low] = [m for m in kept if m.event_type == "balance.low"]
    assert low.data == {"user_id": "ada", "balance": 150, "threshold": 200, "credits_monthly": 150,
                        "credits_permanent": 0}
    assert {m.ordering_key for m in kept} == {"ada"}
    latest = [m for m in kept if m.event_type == "balance.updated"][-1]
    assert spend_client.get("/balance/ada").get_json() == latest.data
