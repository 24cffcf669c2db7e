"""Reading the events topic back: a pull subscription, its messages decoded, acknowledged on request.

Rules enforced here:
- the subscription is made on the events topic (the same `CREDITS_EVENTS_TOPIC` the function
  publishes to) when it is missing, with message ordering on, so one user's events come in order;
  an existing subscription is used as it is;
- nothing is acknowledged by pulling: the caller acknowledges what it has handled, so a message
  is never lost between the pull and its use (one not acknowledged comes again);
- a message whose data is not JSON is still returned (its data as text), never dropped;
- every Pub/Sub failure is `SubscriptionUnavailable`; a missing topic is `ConfigurationError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from ..common.errors import ConfigurationError, SubscriptionUnavailable
from . import publisher

TAIL_SUBSCRIPTION = "credits-events-tail"
# Pub/Sub holds a pulled message for this long before offering it again.
ACK_DEADLINE_S = 60


@dataclass(frozen=True)
class Received:
    """One pulled message: the attributes `ledger_events` sets, its decoded data, and its ack id."""

    ack_id: str
    message_id: str
    publish_time: Optional[datetime]
    event_type: str
    user_id: str
    event_id: str
    data: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "user_id": self.user_id,
            "event_id": self.event_id,
            "message_id": self.message_id,
            "publish_time": self.publish_time.isoformat() if self.publish_time else None,
            "data": self.data,
        }


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


class Tail:
    """A pull subscription on the events topic, made if missing."""

    def __init__(self, subscription: str = TAIL_SUBSCRIPTION, client: Optional[pubsub_v1.SubscriberClient] = None):
        self.topic = publisher.topic_path()
        project = self.topic.split("/")[1]
        self.path = subscription if subscription.startswith("projects/") else (
            f"projects/{project}/subscriptions/{subscription}"
        )
        self._client = client or pubsub_v1.SubscriberClient()

    def ensure(self) -> str:
        """The subscription's path, after creating it on the events topic if it does not exist."""
        try:
            self._client.create_subscription(
                request={"name": self.path, "topic": self.topic, "enable_message_ordering": True,
                         "ack_deadline_seconds": ACK_DEADLINE_S}
            )
        except gexc.AlreadyExists:
            pass
        except gexc.NotFound:
            raise ConfigurationError(f"the events topic {self.topic} does not exist") from None
        except gexc.GoogleAPIError as err:
            raise SubscriptionUnavailable(f"creating {self.path} failed: {type(err).__name__}: {err}") from None
        return self.path

    def pull(self, max_messages: int, wait_s: float) -> list[Received]:
        """Up to `max_messages` messages, waiting at most about `wait_s` for the first; none acknowledged."""
        try:
            response = self._client.pull(
                subscription=self.path, max_messages=max_messages, timeout=max(wait_s, 0.1), retry=None
            )
        except gexc.DeadlineExceeded:
            return []  # nothing arrived in time
        except gexc.GoogleAPIError as err:
            raise SubscriptionUnavailable(f"pulling {self.path} failed: {type(err).__name__}: {err}") from None
        received = []
        for item in response.received_messages:
            message = item.message
            attributes = dict(message.attributes)
            received.append(Received(
                ack_id=item.ack_id,
                message_id=message.message_id,
                publish_time=message.publish_time or None,
                event_type=attributes.get("event_type", ""),
                user_id=attributes.get("user_id", message.ordering_key),
                event_id=attributes.get("event_id", ""),
                data=_decode(message.data),
            ))
        return received

    def acknowledge(self, messages: Sequence[Received]) -> None:
        if messages:
            self._call(self._client.acknowledge, subscription=self.path, ack_ids=[m.ack_id for m in messages])

    def _call(self, method, **request) -> None:
        try:
            method(request=request)
        except gexc.GoogleAPIError as err:
            name = getattr(method, "__name__", "call")
            raise SubscriptionUnavailable(f"{name} on {self.path} failed: {type(err).__name__}: {err}") from None

    def close(self) -> None:
        self._client.close()

