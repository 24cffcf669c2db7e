"""The one Pub/Sub publisher of an instance: created lazily, batching, ordered by user.

Rules enforced here:
- nothing connects at import: the client is made on first publish and kept for the instance;
- messages are batched across concurrent requests (a few milliseconds of latency buys one
  round trip for many messages) and ordered by their ordering key (the user id);
- a publish is done only when Pub/Sub has acknowledged every message of it; any failure is
  `PublishUnavailable` (transient: the trigger redelivers and the same event ids go out again),
  after `resume_publish`, because a failed ordering key refuses every later message until then.
"""

from __future__ import annotations

import os
import threading
from typing import Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher import exceptions as publish_errors

from .. import config
from ..errors import ConfigurationError, PublishUnavailable
from .rules import Message

# Flush a batch after this long or this many messages, whichever comes first.
BATCH_LATENCY_S = 0.005
BATCH_MAX_MESSAGES = 500
# Pub/Sub's own retries of a publish give up after this; the trigger then redelivers the event.
PUBLISH_TIMEOUT_S = 30.0

_lock = threading.Lock()
_client: Optional[pubsub_v1.PublisherClient] = None


def topic_path() -> str:
    topic = config.events_topic()
    if topic.startswith("projects/"):
        return topic
    project = config.project() or (config.DEFAULT_PROJECT if os.environ.get("PUBSUB_EMULATOR_HOST") else None)
    if not project:
        raise ConfigurationError("GOOGLE_CLOUD_PROJECT is not set, so CREDITS_EVENTS_TOPIC has no project")
    return f"projects/{project}/topics/{topic}"


def client() -> pubsub_v1.PublisherClient:
    global _client
    with _lock:
        if _client is None:
            _client = pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(
                    max_messages=BATCH_MAX_MESSAGES, max_latency=BATCH_LATENCY_S
                ),
                publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
            )
        return _client


def reset_client() -> None:
    """Forget the client (tests that move the emulator or the topic)."""
    global _client
    with _lock:
        _client = None


def publish(messages: Sequence[Message], topic: Optional[str] = None) -> list[str]:
    """Publish `messages` in order and wait for Pub/Sub to keep them all; their message ids."""
    if not messages:
        return []
    path = topic or topic_path()
    publisher = client()
    futures = []
    try:
        for message in messages:
            futures.append(
                publisher.publish(path, message.payload(), ordering_key=message.ordering_key, **message.attributes)
            )
        return [future.result(timeout=PUBLISH_TIMEOUT_S) for future in futures]
    except (gexc.GoogleAPIError, publish_errors.PublishToPausedOrderingKeyException, TimeoutError) as err:
        # Without this every later message for these users would be refused by the client.
        for key in {message.ordering_key for message in messages}:
            publisher.resume_publish(path, key)
        raise PublishUnavailable(f"publishing to {path} failed: {type(err).__name__}: {err}") from None
