"""Forward the Firestore emulator's document changes to the local `ledger_events` (and the local
`auto_topup`), as Eventarc does.

    python scripts/local_events.py http://127.0.0.1:8084/ [http://127.0.0.1:8089/]

Needs FIRESTORE_EMULATOR_HOST (and PUBSUB_EMULATOR_HOST to create the events topic). Listens to
`credits_transactions` and `users_credits` with `on_snapshot`, keeps each document's last seen
value to fill `old_value`, and POSTs each change as the binary-mode CloudEvent Eventarc sends: a
protobuf `DocumentEventData` body, `ce-type` `google.cloud.firestore.document.v1.created` for a
new transaction record and `.written` for any write of a user document or of an auto top-up attempt
(`credits_topups`); with a second URL, each attempt's creation is also delivered there as
`.created`, the `auto_topup` function's trigger, from its own queue so a charge never holds up
the events. A delivery that fails is retried with backoff under the same `ce-id`, as Eventarc
retries.

Differences from Eventarc, which matter only locally: documents present when the forwarder
starts are taken as already delivered; changes to one document that land between two snapshots
of the listener arrive as one change (the listener sees the latest state).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.events import documents  # noqa: E402

TRANSACTIONS = "credits_transactions"
USERS = "users_credits"
TOPUPS = "credits_topups"
CREATED = "google.cloud.firestore.document.v1.created"
WRITTEN = "google.cloud.firestore.document.v1.written"
EVENTS_TOPIC = "credits-events"
# A pull subscription made with the topic, so the local run's events can be watched
# (`credits events tail`, or `gcloud pubsub subscriptions pull credits-events-tail`).
TAIL_SUBSCRIPTION = "credits-events-tail"
MAX_ATTEMPTS = 8


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cloud_event(project: str, path: str, event_type: str, body: bytes, ce_id: str) -> dict[str, str]:
    """The headers of a binary-mode Firestore CloudEvent for a change of `path`."""
    return {
        "Content-Type": "application/protobuf",
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/(default)",
        "ce-type": event_type,
        "ce-subject": f"documents/{path}",
        "ce-time": _iso(datetime.now(timezone.utc)),
        "ce-project": project,
        "ce-database": "(default)",
        "ce-namespace": "(default)",
        "ce-document": path,
    }


class Forwarder:
    """Listens to both collections and delivers every change, in order, to `endpoint`."""

    def __init__(self, endpoint: str, project: str, client=None, topup_endpoint: Optional[str] = None) -> None:
        from google.cloud import firestore

        self.endpoint = endpoint
        self.topup_endpoint = topup_endpoint
        self.project = project
        self.client = client or firestore.Client(project=project)
        self.delivered = 0
        self._last: dict[str, tuple[dict[str, Any], Any, Any]] = {}
        self._outbox: "queue.Queue[Optional[tuple[str, dict[str, str], bytes]]]" = queue.Queue()
        self._topups: "queue.Queue[Optional[tuple[str, dict[str, str], bytes]]]" = queue.Queue()
        self._watches: list = []
        self._ready = {TRANSACTIONS: threading.Event(), USERS: threading.Event(), TOPUPS: threading.Event()}
        self._senders = [
            threading.Thread(target=self._send_loop, args=(self._outbox, endpoint), name="local-events-sender",
                             daemon=True)]
        if topup_endpoint:
            self._senders.append(threading.Thread(target=self._send_loop, args=(self._topups, topup_endpoint),
                                                  name="local-topups-sender", daemon=True))

    def start(self, timeout: float = 30.0) -> "Forwarder":
        for sender in self._senders:
            sender.start()
        for collection in (TRANSACTIONS, USERS, TOPUPS):
            self._watches.append(
                self.client.collection(collection).on_snapshot(
                    lambda docs, changes, read_time, c=collection: self._on_snapshot(c, changes)
                )
            )
        for collection, ready in self._ready.items():
            if not ready.wait(timeout):
                raise RuntimeError(f"no snapshot of {collection} from the emulator in {timeout}s")
        return self

    def stop(self) -> None:
        for watch in self._watches:
            watch.unsubscribe()
        self._outbox.put(None)
        self._topups.put(None)
        for sender in self._senders:
            sender.join(timeout=30)

    def _on_snapshot(self, collection: str, changes) -> None:
        first = not self._ready[collection].is_set()
        for change in changes:
            snapshot = change.document
            path = f"{collection}/{snapshot.id}"
            previous = self._last.get(path)
            if change.type.name == "REMOVED":
                self._last.pop(path, None)
                value, update_time, create_time = None, None, None
            else:
                value, update_time, create_time = snapshot.to_dict() or {}, snapshot.update_time, snapshot.create_time
                self._last[path] = (value, update_time, create_time)
            if first:
                continue  # what exists at start counts as delivered already
            if collection == TRANSACTIONS:
                if change.type.name != "ADDED" or previous is not None:
                    continue  # the transactions trigger is `created` only
                event_type = CREATED
            else:
                event_type = WRITTEN
            old_value, old_update_time, old_create_time = previous if previous else (None, None, None)
            body = documents.encode(
                documents.document_name(self.project, path),
                value,
                old_value,
                update_time=update_time,
                create_time=create_time or old_create_time,
                old_update_time=old_update_time,
            )
            self._outbox.put((path, cloud_event(self.project, path, event_type, body, uuid.uuid4().hex), body))
            if collection == TOPUPS and self.topup_endpoint and change.type.name == "ADDED" and previous is None:
                # The attempt's creation is `auto_topup`'s trigger.
                self._topups.put((path, cloud_event(self.project, path, CREATED, body, uuid.uuid4().hex), body))
        self._ready[collection].set()

    def _send_loop(self, outbox, endpoint: str) -> None:
        while True:
            item = outbox.get()
            if item is None:
                return
            path, headers, body = item
            for attempt in range(MAX_ATTEMPTS):
                if self._post(endpoint, headers, body):
                    self.delivered += 1
                    break
                time.sleep(min(0.2 * 2**attempt, 5.0))
            else:
                print(f"local events: gave up delivering {path} ({headers['ce-id']})", file=sys.stderr, flush=True)

    def _post(self, endpoint: str, headers: dict[str, str], body: bytes) -> bool:
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError):
            return False


def create_topic(project: str, topic: str = EVENTS_TOPIC, subscription: str = TAIL_SUBSCRIPTION) -> str:
    """Create the events topic and its tail subscription on the Pub/Sub emulator, if missing."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    try:
        publisher.create_topic(name=topic_path)
    except gexc.AlreadyExists:
        pass
    try:
        subscriber.create_subscription(
            request={"name": subscriber.subscription_path(project, subscription), "topic": topic_path,
                     "enable_message_ordering": True}
        )
    except gexc.AlreadyExists:
        pass
    subscriber.close()
    return topic_path


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        print("usage: FIRESTORE_EMULATOR_HOST=host:port python scripts/local_events.py <ledger_events URL> "
              "[<auto_topup URL>]", file=sys.stderr)
        return 2
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-credits")
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        topic = os.environ.get("CREDITS_EVENTS_TOPIC", "").strip() or EVENTS_TOPIC
        path = create_topic(project, topic)
        print(f"Events topic        {path} (watch: credits events tail)", flush=True)
    forwarder = Forwarder(argv[1], project, topup_endpoint=argv[2] if len(argv) == 3 else None).start()
    print(f"Firestore changes   forwarded to {argv[1]} as Eventarc CloudEvents", flush=True)
    if len(argv) == 3:
        print(f"Top-up attempts     forwarded to {argv[2]} (auto_topup)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        forwarder.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
