"""Firestore document events as Eventarc delivers them: protobuf `DocumentEventData` <-> dicts.

Rules enforced here:
- a document's fields become plain Python values (int stays int, timestamps become aware UTC
  datetimes), so the rules never see protobuf;
- bytes that are not a `DocumentEventData`, or a document path outside a database's
  `documents/`, are `InvalidPayload`: such an event can never be published;
- the same module encodes changes, so the local forwarder and the tests send exactly the
  protobuf Google sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import message as protobuf_message
from google.protobuf import timestamp_pb2

from ..common.errors import InvalidPayload

# The raw protobuf class behind the proto-plus wrapper: decoding and walking it directly is
# several times faster than through the wrapper, and this runs once per committed change.
_EVENT_PB = DocumentEventData.pb()


@dataclass(frozen=True)
class DocumentChange:
    """One document change: its path inside the database, and the document before and after."""

    path: str  # e.g. "users_credits/u1"
    value: Optional[dict[str, Any]]  # None when the document was deleted
    old_value: Optional[dict[str, Any]]  # None when the document was created
    update_time: Optional[datetime]  # the new document's commit time, None when deleted

    @property
    def collection(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def document_id(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.seconds, tz=timezone.utc).replace(microsecond=ts.nanos // 1000)


def _python(value) -> Any:
    kind = value.WhichOneof("value_type")
    if kind == "integer_value":
        return value.integer_value
    if kind == "string_value":
        return value.string_value
    if kind == "timestamp_value":
        return _timestamp(value.timestamp_value)
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "double_value":
        return value.double_value
    if kind == "map_value":
        return {key: _python(item) for key, item in value.map_value.fields.items()}
    if kind == "array_value":
        return [_python(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "reference_value":
        return value.reference_value
    if kind == "geo_point_value":
        return {"latitude": value.geo_point_value.latitude, "longitude": value.geo_point_value.longitude}
    return None  # null_value, or nothing set


def _relative_path(name: str) -> str:
    """`projects/p/databases/d/documents/a/b` -> `a/b`."""
    marker = "/documents/"
    if marker not in name:
        raise InvalidPayload(f"document name {name!r} is not a Firestore document path")
    return name.split(marker, 1)[1]


def decode(raw: bytes, path: Optional[str] = None) -> DocumentChange:
    """The change in a `DocumentEventData` body; `path` (the event's `document` attribute) wins."""
    if not isinstance(raw, (bytes, bytearray)):
        raise InvalidPayload("event data is not a protobuf body")
    try:
        event = _EVENT_PB.FromString(bytes(raw))
    except (protobuf_message.DecodeError, RuntimeWarning) as err:
        raise InvalidPayload(f"event data is not a DocumentEventData: {err}") from None
    has_value = event.HasField("value") and bool(event.value.name)
    has_old = event.HasField("old_value") and bool(event.old_value.name)
    if not path:
        if not (has_value or has_old):
            raise InvalidPayload("event names no document")
        path = _relative_path(event.value.name if has_value else event.old_value.name)
    value = {key: _python(item) for key, item in event.value.fields.items()} if has_value else None
    old_value = {key: _python(item) for key, item in event.old_value.fields.items()} if has_old else None
    update_time = _timestamp(event.value.update_time) if has_value and event.value.HasField("update_time") else None
    return DocumentChange(path=path.strip("/"), value=value, old_value=old_value, update_time=update_time)


# --- Encoding: what Firestore sends, for the local forwarder and the tests ----------------------


def _set_timestamp(target: timestamp_pb2.Timestamp, moment: datetime) -> None:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    target.FromDatetime(moment.astimezone(timezone.utc).replace(tzinfo=None))


def _set_value(target, value: Any) -> None:
    if value is None:
        target.null_value = 0
    elif isinstance(value, bool):
        target.boolean_value = value
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, datetime):
        _set_timestamp(target.timestamp_value, value)
    elif isinstance(value, Mapping):
        target.map_value.SetInParent()
        for key, item in value.items():
            _set_value(target.map_value.fields[str(key)], item)
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            _set_value(target.array_value.values.add(), item)
    else:
        raise TypeError(f"no Firestore value for {type(value).__name__}")


def _set_document(target, name: str, fields: Mapping[str, Any], create_time, update_time) -> None:
    target.name = name
    for key, item in fields.items():
        _set_value(target.fields[key], item)
    if create_time is not None:
        _set_timestamp(target.create_time, create_time)
    if update_time is not None:
        _set_timestamp(target.update_time, update_time)


def document_name(project: str, path: str, database: str = "(default)") -> str:
    return f"projects/{project}/databases/{database}/documents/{path}"


def encode(
    name: str,
    value: Optional[Mapping[str, Any]],
    old_value: Optional[Mapping[str, Any]] = None,
    *,
    update_time: Optional[datetime] = None,
    create_time: Optional[datetime] = None,
    old_update_time: Optional[datetime] = None,
) -> bytes:
    """A serialized `DocumentEventData` for the document `name` (a full resource name)."""
    event = _EVENT_PB()
    if value is not None:
        _set_document(event.value, name, value, create_time or update_time, update_time)
    if old_value is not None:
        _set_document(event.old_value, name, old_value, create_time or old_update_time, old_update_time)
        if value is not None:
            changed = sorted(key for key in set(value) | set(old_value) if value.get(key) != old_value.get(key))
            event.update_mask.field_paths.extend(changed)
    return event.SerializeToString()
