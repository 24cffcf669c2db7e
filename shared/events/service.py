"""Events out: one Firestore document event in, its messages published to the events topic.

Rules enforced here:
- the function reads only what the event carries (the committed document before and after);
  nothing is read from or written to Firestore, so the spend path is unchanged;
- an event that can never be published (not protobuf, not a document of ours, a record that
  is not a transaction) is `InvalidPayload`: the edge logs and acknowledges it;
- a publish that fails is `PublishUnavailable`: the edge raises, Eventarc redelivers, and the
  redelivery publishes the same messages with the same event ids (consumers dedupe on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from ..common.errors import InvalidPayload
from . import documents, publisher, rules, settings

FIRESTORE_EVENT_PREFIX = "google.cloud.firestore.document.v1."


@dataclass(frozen=True)
class Outcome:
    path: str
    event_ids: tuple[str, ...]
    user_id: Optional[str]

    @property
    def name(self) -> str:
        return "published" if self.event_ids else "nothing_to_publish"


def document_path(attributes: Mapping[str, str]) -> Optional[str]:
    """The changed document's path from the event's `document` or `subject` attribute."""
    path = attributes.get("document")
    if path:
        return path
    subject = attributes.get("subject") or ""
    return subject[len("documents/"):] if subject.startswith("documents/") else None


def plan(event_type: str, attributes: Mapping[str, str], data: object) -> tuple[str, list[rules.Message]]:
    """The changed document's path and the messages its change publishes (no I/O)."""
    if not str(event_type).startswith(FIRESTORE_EVENT_PREFIX):
        raise InvalidPayload(f"not a Firestore document event ({event_type})")
    change = documents.decode(data, document_path(attributes))  # type: ignore[arg-type]
    messages = rules.messages_for(
        change.path, change.value, change.old_value, change.update_time, settings.low_balance_threshold()
    )
    return change.path, messages


def _outcome(path: str, messages: list[rules.Message]) -> Outcome:
    return Outcome(path, tuple(m.event_id for m in messages), messages[0].user_id if messages else None)


async def handle(event_type: str, attributes: Mapping[str, str], data: object) -> Outcome:
    """Publishes what the change means; the decoding and rules run inline (CPU only, no I/O)."""
    path, messages = plan(event_type, attributes, data)
    await publisher.publish(messages)
    return _outcome(path, messages)
