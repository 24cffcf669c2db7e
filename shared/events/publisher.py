"""The one Pub/Sub publisher of an instance: created lazily, batching across users, ordered by user.

Rules enforced here:
- nothing connects at import: the client and its sender thread start on the first publish;
- messages from concurrent requests share one Publish call, whatever their ordering keys: while
  one call is in flight the next batch fills (up to `BATCH_MAX_MESSAGES`), so batches grow with
  load and a lone message waits for nothing; `BATCH_LATENCY_S` can add a wait before each batch. The client library
  makes one call per ordering key, which with a key per user means one call per event; one
  Publish request may carry many ordering keys, and Pub/Sub keeps the order within it;
- ordering by key (the user id): one sender per process sends batches one after another, so a
  user's messages reach Pub/Sub in the order that process published them (separate processes and
  instances order nothing between them, and neither do Eventarc's concurrent deliveries);
- `publish` is a coroutine: a request waits for its messages on the event loop, holding no thread;
- a publish is done only when Pub/Sub has acknowledged every message of it. A failure pauses
  the batch's ordering keys, as the client library does with message ordering on: later
  messages for those users fail too, rather than overtake the failed one, until
  `resume_publish(key)`. `publish` resumes the keys and raises `PublishUnavailable` (transient:
  the trigger redelivers, and the same event ids go out again).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future
from typing import Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1 import PublishRequest, PubsubMessage
from google.pubsub_v1.services.publisher.client import PublisherClient as PublishApi

from ..common import settings as common_settings
from ..common.errors import ConfigurationError, PublishUnavailable
from . import settings
from .rules import Message

# Extra wait before a batch is sent, for more messages to join it. 0: the call in flight is the
# wait (measured in benchmarks/: a fixed linger only adds latency and idle CPU in the gRPC client).
BATCH_LATENCY_S = 0.0
BATCH_MAX_MESSAGES = 500
# Pub/Sub's own retries of a Publish call give up after this; the trigger then redelivers the event.
PUBLISH_TIMEOUT_S = 30.0
# The raw protobuf classes behind the proto-plus wrappers: building a message through the wrapper
# costs about eight times as much CPU, and this runs once per message on the hot path.
_MESSAGE_PB = PubsubMessage.pb()
_REQUEST_PB = PublishRequest.pb()


class OrderingKeyPaused(Exception):
    """A message's ordering key failed earlier and has not been resumed."""


class BatchingPublisher:
    """Publishes messages of any ordering keys in shared batches, one Publish call at a time."""

    def __init__(self, client: Optional[pubsub_v1.PublisherClient] = None) -> None:
        self._client = client or pubsub_v1.PublisherClient()
        self._lock = threading.Condition()
        self._pending: list[tuple[str, _MESSAGE_PB, Future]] = []
        self._paused: set[tuple[str, str]] = set()
        self._sender = threading.Thread(target=self._send_loop, name="events-publisher", daemon=True)
        self._sender.start()

    def publish(self, topic: str, data: bytes, ordering_key: str = "", **attributes: str) -> Future:
        future: Future = Future()
        message = _MESSAGE_PB(data=data, ordering_key=ordering_key, attributes=attributes)
        with self._lock:
            if (topic, ordering_key) in self._paused:
                future.set_exception(OrderingKeyPaused(ordering_key))
                return future
            self._pending.append((topic, message, future))
            self._lock.notify()
        return future

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        with self._lock:
            self._paused.discard((topic, ordering_key))

    def _next_batch(self) -> list[tuple[str, _MESSAGE_PB, Future]]:
        with self._lock:
            while not self._pending:
                self._lock.wait()
        if BATCH_LATENCY_S:
            time.sleep(BATCH_LATENCY_S)  # let concurrent requests join this batch
        with self._lock:
            batch, self._pending = self._pending[:BATCH_MAX_MESSAGES], self._pending[BATCH_MAX_MESSAGES:]
            return batch

    def _send_loop(self) -> None:
        while True:
            batch = self._next_batch()
            by_topic: dict[str, list[tuple[_MESSAGE_PB, Future]]] = {}
            for topic, message, future in batch:
                by_topic.setdefault(topic, []).append((message, future))
            for topic, items in by_topic.items():
                self._send(topic, items)

    def _send(self, topic: str, items: list[tuple[_MESSAGE_PB, Future]]) -> None:
        with self._lock:
            # Queued behind a failure of the same key: fail it rather than let it overtake.
            sendable = []
            for message, future in items:
                if (topic, message.ordering_key) in self._paused:
                    future.set_exception(OrderingKeyPaused(message.ordering_key))
                else:
                    sendable.append((message, future))
        if not sendable:
            return
        try:
            # The plain Publish RPC (the library client's own `publish` is its per-key batcher);
            # the client still supplies the channel, the emulator and the default retries.
            request = _REQUEST_PB(topic=topic)
            request.messages.extend(message for message, _ in sendable)
            response = PublishApi.publish(self._client, request=PublishRequest.wrap(request), timeout=PUBLISH_TIMEOUT_S)
        except Exception as err:  # every failure fails the waiting requests; none is swallowed
            with self._lock:
                self._paused.update((topic, message.ordering_key) for message, _ in sendable if message.ordering_key)
            for _, future in sendable:
                future.set_exception(err)
            return
        for (_, future), message_id in zip(sendable, response.message_ids):
            future.set_result(message_id)


def topic_path() -> str:
    topic = settings.events_topic()
    if topic.startswith("projects/"):
        return topic
    project = common_settings.project() or (
        common_settings.DEFAULT_PROJECT if os.environ.get("PUBSUB_EMULATOR_HOST") else None
    )
    if not project:
        raise ConfigurationError("GOOGLE_CLOUD_PROJECT is not set, so CREDITS_EVENTS_TOPIC has no project")
    return f"projects/{project}/topics/{topic}"


@common_settings.cached
def client() -> BatchingPublisher:
    """The publisher of this instance, built on first use."""
    return BatchingPublisher()


def _submit(messages: Sequence[Message], topic: Optional[str]) -> tuple[BatchingPublisher, str, list[Future]]:
    path = topic or topic_path()
    publisher = client()
    futures = [
        publisher.publish(path, message.payload(), ordering_key=message.ordering_key, **message.attributes)
        for message in messages
    ]
    return publisher, path, futures


def _unavailable(publisher: BatchingPublisher, path: str, messages: Sequence[Message], err: BaseException):
    # Without this every later message for these users would be refused.
    for key in {message.ordering_key for message in messages}:
        publisher.resume_publish(path, key)
    return PublishUnavailable(f"publishing to {path} failed: {type(err).__name__}: {err}")


_FAILURES = (gexc.GoogleAPIError, OrderingKeyPaused, TimeoutError)


async def publish(messages: Sequence[Message], topic: Optional[str] = None) -> list[str]:
    """Publish `messages` in order and wait for Pub/Sub to keep them all; their message ids.

    A coroutine: the caller waits on its event loop, holding no thread, while the sender thread
    sends its batch."""
    if not messages:
        return []
    publisher, path, futures = _submit(messages, topic)
    waiting = asyncio.gather(*(asyncio.wrap_future(future) for future in futures), return_exceptions=True)
    try:
        results = await asyncio.wait_for(waiting, PUBLISH_TIMEOUT_S + 5)
    except asyncio.TimeoutError as err:
        raise _unavailable(publisher, path, messages, err) from None
    for result in results:
        if isinstance(result, _FAILURES):
            raise _unavailable(publisher, path, messages, result) from None
        if isinstance(result, BaseException):
            raise result
    return list(results)
