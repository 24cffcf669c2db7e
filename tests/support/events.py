"""Helpers for events-out tests: Eventarc's Firestore CloudEvents, and the events topic to read.

`document_event` builds exactly what Eventarc POSTs for a Firestore change (binary mode: the
attributes as `ce-` headers, the body a protobuf `DocumentEventData`); `EventsTopic` makes a
fresh topic with a pull subscription on the Pub/Sub emulator and reads what was published.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from google.cloud import pubsub_v1

from shared.events import documents
from tests.support.emulators import PROJECT

WRITTEN = "google.cloud.firestore.document.v1.written"
CREATED = "google.cloud.firestore.document.v1.created"


def now() -> datetime:
    return datetime.now(timezone.utc)


def document_event(
    path: str,
    value: Optional[Mapping[str, Any]],
    old_value: Optional[Mapping[str, Any]] = None,
    *,
    event_type: Optional[str] = None,
    update_time: Optional[datetime] = None,
    ce_id: Optional[str] = None,
    project: str = PROJECT,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode CloudEvent Eventarc sends for a change of `path`."""
    kind = event_type or (CREATED if path.startswith("credits_transactions/") else WRITTEN)
    body = documents.encode(
        documents.document_name(project, path),
        value,
        old_value,
        update_time=(update_time or now()) if value is not None else None,
    )
    headers = {
        "Content-Type": "application/protobuf",
        "ce-specversion": "1.0",
        "ce-id": ce_id or uuid.uuid4().hex,
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/(default)",
        "ce-type": kind,
        "ce-subject": f"documents/{path}",
        "ce-time": now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "ce-dataschema": "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto",
        "ce-location": "nam5",
        "ce-project": project,
        "ce-database": "(default)",
        "ce-namespace": "(default)",
        "ce-document": path,
    }
    return headers, body


def transaction(txn_id: str, user_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": txn_id,
        "user_id": user_id,
        "type": "spent" if amount < 0 else "promo_grant",
        "pool": "permanent",
        "amount": amount,
        "description": "Story",
        "source": f"src-{txn_id}",
        "created_at": now(),
        "seq": 1,
        "balance_after": {"credits_monthly": 0, "credits_permanent": 100},
        **extra,
    }


def user(user_id: str, monthly: int = 0, permanent: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "credits_monthly": monthly,
        "credits_permanent": permanent,
        "total_earned": monthly + permanent,
        "total_spent": 0,
        "last_updated": now(),
        **extra,
    }


@dataclass(frozen=True)
class Received:
    data: dict[str, Any]
    attributes: dict[str, str]
    ordering_key: str

    @property
    def event_type(self) -> str:
        return self.attributes["event_type"]

    @property
    def event_id(self) -> str:
        return self.attributes["event_id"]


class EventsTopic:
    """A fresh topic and pull subscription on the emulator; `name` goes in CREDITS_EVENTS_TOPIC."""

    def __init__(self, project: str = PROJECT) -> None:
        self.name = f"credits-events-{uuid.uuid4().hex[:10]}"
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.path = self.publisher.topic_path(project, self.name)
        self.subscription = self.subscriber.subscription_path(project, self.name + "-tail")
        self.publisher.create_topic(name=self.path)
        self.subscriber.create_subscription(
            request={"name": self.subscription, "topic": self.path, "enable_message_ordering": True,
                     "ack_deadline_seconds": 60}
        )

    def pull(self, expected: int = 0, timeout: float = 10.0, settle: float = 0.3) -> list[Received]:
        """Everything published so far (acknowledged): waits for `expected`, then `settle` more."""
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            with warnings.catch_warnings():
                # Deprecated for production pulls; here it keeps the polling loop short.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self.subscriber.pull(
                    subscription=self.subscription, max_messages=1000, return_immediately=True, timeout=10
                )
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
                for item in response.received_messages:
                    received.append(
                        Received(json.loads(item.message.data), dict(item.message.attributes), item.message.ordering_key)
                    )
                quiet_until = None
                continue
            if len(received) >= expected:
                quiet_until = quiet_until or time.monotonic() + settle
                if time.monotonic() >= quiet_until:
                    break
            time.sleep(0.05)
        return received

    def close(self) -> None:
        try:
            self.subscriber.delete_subscription(subscription=self.subscription)
            self.publisher.delete_topic(topic=self.path)
        finally:
            self.subscriber.close()


def dedupe(received: list[Received]) -> list[Received]:
    """One message per event_id, the first received: what a consumer keeps."""
    seen: dict[str, Received] = {}
    for item in received:
        seen.setdefault(item.event_id, item)
    return list(seen.values())
