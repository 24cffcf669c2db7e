"""Commits and batched reads on the credit path, encoded to Firestore's protobufs directly.

The client library builds every write and decodes every document through proto-plus wrappers,
which costs about 0.3 ms of CPU per written document and 0.4 ms per read one: more than the
emulator takes to commit them, and the largest share of a campaign's or a busy instance's time.
This module builds the same messages on the raw protobuf classes instead.

Rules enforced here:
- a write means exactly what the library's `WriteBatch` call of the same name means
  (`create`: create-only; `set`: overwrite; `update`: the listed top-level fields, on an
  existing document, conditioned as the write option says; `delete`), and every value
  encodes to the same `Value` the library would produce: a unit test compares the two
  encodings over every kind of value the store writes;
- anything this module does not encode itself (a sentinel such as a transform, a dotted
  field path, a type other than plain data, an option other than a version) is built, or
  refused, by the library, so its meaning never depends on this module;
- a read gives what a library snapshot gives: `exists`, `reference`, `update_time` (the same
  `DatetimeWithNanoseconds` the library gives, so a version read here conditions a later
  write exactly), and `to_dict()` with the library's python types;
- commits and reads go through the library's own API object, so deadlines, retries and the
  errors they raise are the library's.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Iterable, Optional

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.transforms import DELETE_FIELD
from google.cloud.firestore_v1.types import common as common_types
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.cloud.firestore_v1.types import write as write_types

_Write = write_types.Write.pb()
_Document = document_types.Document.pb()
_Value = document_types.Value.pb()
_Precondition = common_types.Precondition.pb()
_CommitRequest = firestore_types.CommitRequest.pb()
_BatchGetRequest = firestore_types.BatchGetDocumentsRequest.pb()

# A top-level field name that is its own field path (no quoting, no dots).
_SIMPLE_FIELD = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_INT64 = (-(2**63), 2**63 - 1)


class _Unsupported(Exception):
    """A value this module leaves to the library (a sentinel, a reference, a geo point)."""


def _fill(target, value: Any) -> None:
    """Encode `value` into the `Value` message `target`, as `_helpers.encode_value` would."""
    if value is None:
        target.null_value = 0
    elif value is True or value is False:
        target.boolean_value = value
    elif type(value) is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Unsupported(value)
        target.integer_value = value
    elif type(value) is str:
        target.string_value = value
    elif type(value) is float:
        target.double_value = value
    elif isinstance(value, DatetimeWithNanoseconds):
        target.timestamp_value.CopyFrom(value.timestamp_pb())
    elif isinstance(value, datetime.datetime):
        target.timestamp_value.CopyFrom(_helpers._datetime_to_pb_timestamp(value))
    elif type(value) is dict:
        fields = target.map_value.fields
        if not value:
            target.map_value.SetInParent()
        for key, item in value.items():
            if type(key) is not str:
                raise _Unsupported(key)
            _fill(fields[key], item)
    elif type(value) in (list, tuple):
        values = target.array_value.values
        target.array_value.SetInParent()
        for item in value:
            if type(item) in (list, tuple):
                raise _Unsupported(item)  # the library refuses nested arrays: let it say so
            _fill(values.add(), item)
    elif type(value) is bytes:
        target.bytes_value = value
    else:
        raise _Unsupported(value)


def _document(name: str, data: dict[str, Any]):
    doc = _Document(name=name)
    for key, value in data.items():
        if type(key) is not str:
            raise _Unsupported(key)
        _fill(doc.fields[key], value)
    return doc


def _precondition(option) -> Optional[Any]:
    """The precondition a library write option stands for (None: no option)."""
    if option is None:
        return None
    if isinstance(option, _helpers.LastUpdateOption):
        # As the library does, to the microsecond (Firestore's update times carry no more).
        return _Precondition(update_time=_helpers._datetime_to_pb_timestamp(option._last_update_time))
    raise _Unsupported(option)  # an exists option, or another kind: the library says what it means


def _version(update_time) -> Any:
    """The precondition of a document at the version written at `update_time` (None: absent)."""
    if update_time is None:
        return _Precondition(exists=False)
    return _Precondition(update_time=_helpers._datetime_to_pb_timestamp(update_time))


class Results:
    """A commit's write results; each `update_time` is decoded only when asked for."""

    def __init__(self, response_pb) -> None:
        self._results = response_pb.write_results

    def __len__(self) -> int:
        return len(self._results)

    def __bool__(self) -> bool:
        return len(self._results) > 0

    def __getitem__(self, index: int) -> "_WriteResult":
        return _WriteResult(self._results[index])


class _WriteResult:
    def __init__(self, pb) -> None:
        self._pb = pb

    @property
    def update_time(self) -> Optional[DatetimeWithNanoseconds]:
        return DatetimeWithNanoseconds.from_timestamp_pb(self._pb.update_time) if self._pb.HasField("update_time") else None


class Batch:
    """The subset of the library's `WriteBatch` the store uses, built on raw protobufs."""

    def __init__(self, client) -> None:
        self._client = client
        self._writes: list[Any] = []

    def __len__(self) -> int:
        return len(self._writes)

    def create(self, reference, document_data: dict[str, Any]) -> None:
        try:
            write = _Write(update=_document(reference._document_path, document_data),
                           current_document=_Precondition(exists=False))
        except _Unsupported:
            self._library(_helpers.pbs_for_create(reference._document_path, document_data))
            return
        self._writes.append(write)

    def set(self, reference, document_data: dict[str, Any]) -> None:
        try:
            write = _Write(update=_document(reference._document_path, document_data))
        except _Unsupported:
            self._library(_helpers.pbs_for_set_no_merge(reference._document_path, document_data))
            return
        self._writes.append(write)

    def update(self, reference, field_updates: dict[str, Any], option=None) -> None:
        if isinstance(option, _helpers.ExistsOption):
            raise ValueError("you must not pass an explicit write option to update.")  # as the library
        try:
            if not field_updates:
                raise _Unsupported(field_updates)  # the library refuses an empty update
            data, mask = {}, []
            for key, value in field_updates.items():
                if type(key) is not str or not _SIMPLE_FIELD.match(key):
                    raise _Unsupported(key)
                mask.append(key)
                if value is DELETE_FIELD:
                    continue
                data[key] = value
            precondition = _precondition(option)
            write = _Write(update=_document(reference._document_path, data),
                           current_document=precondition if precondition is not None else _Precondition(exists=True))
            write.update_mask.field_paths.extend(sorted(mask))
        except _Unsupported:
            self._library(_helpers.pbs_for_update(reference._document_path, field_updates, option))
            return
        self._writes.append(write)

    def delete(self, reference, option=None) -> None:
        try:
            precondition = _precondition(option)
        except _Unsupported:
            self._library([_helpers.pb_for_delete(reference._document_path, option)])
            return
        write = _Write(delete=reference._document_path)
        if precondition is not None:
            write.current_document.CopyFrom(precondition)
        self._writes.append(write)

    def replace(self, reference, document_data: dict[str, Any], update_time) -> None:
        """`set` (the whole document), only over the version written at `update_time`."""
        precondition = _Precondition(update_time=_helpers._datetime_to_pb_timestamp(update_time))
        try:
            write = _Write(update=_document(reference._document_path, document_data), current_document=precondition)
        except _Unsupported:
            (write,) = [write_types.Write.pb(pb) for pb in _helpers.pbs_for_set_no_merge(reference._document_path,
                                                                                            document_data)]
            write.current_document.CopyFrom(precondition)
        self._writes.append(write)

    def delete_at(self, reference, update_time) -> None:
        """Delete the document only at the version written at `update_time` (None: only if absent,
        which deletes nothing)."""
        self._writes.append(_Write(delete=reference._document_path, current_document=_version(update_time)))

    def verify(self, reference, update_time) -> None:
        """Write nothing, but let the commit land only if the document is still at the version
        written at `update_time` (None: still absent).

        An update of no field changes neither the document nor its update time, and a delete of
        an absent document deletes nothing: each is only its precondition.
        """
        if update_time is None:
            self.delete_at(reference, None)
            return
        write = _Write(update=_Document(name=reference._document_path), current_document=_version(update_time))
        write.update_mask.SetInParent()
        self._writes.append(write)

    def _library(self, write_pbs) -> None:
        self._writes.extend(write_types.Write.pb(pb) for pb in write_pbs)

    def commit(self, retry: Any = None, timeout: Optional[float] = None) -> Results:
        """Commit every write atomically; raises the library's errors (`google.api_core.exceptions`)."""
        request = _CommitRequest(database=self._client._database_string, writes=self._writes)
        response = self._client._firestore_api.commit(
            request=firestore_types.CommitRequest.wrap(request),
            metadata=self._client._rpc_metadata,
            retry=retry,
            timeout=timeout,
        )
        return Results(firestore_types.CommitResponse.pb(response))


def _decode(value_pb, client) -> Any:
    kind = value_pb.WhichOneof("value_type")
    if kind == "integer_value":
        return value_pb.integer_value
    if kind == "string_value":
        return value_pb.string_value
    if kind == "timestamp_value":
        return DatetimeWithNanoseconds.from_timestamp_pb(value_pb.timestamp_value)
    if kind == "boolean_value":
        return value_pb.boolean_value
    if kind == "null_value":
        return None
    if kind == "double_value":
        return value_pb.double_value
    if kind == "map_value" and "__type__" not in value_pb.map_value.fields:
        # A map with `__type__` may stand for a vector or a BSON value: the library decodes those.
        return {key: _decode(item, client) for key, item in value_pb.map_value.fields.items()}
    if kind == "array_value":
        return [_decode(item, client) for item in value_pb.array_value.values]
    if kind == "bytes_value":
        return value_pb.bytes_value
    return _helpers.decode_value(document_types.Value.wrap(value_pb), client)


class Snapshot:
    """What a library `DocumentSnapshot` gives the store, decoded from the raw reply."""

    __slots__ = ("reference", "exists", "update_time", "_fields", "_client")

    def __init__(self, reference, document_pb, client) -> None:
        self.reference = reference
        self._client = client
        self.exists = document_pb is not None
        self._fields = document_pb.fields if document_pb is not None else None
        self.update_time = (DatetimeWithNanoseconds.from_timestamp_pb(document_pb.update_time)
                            if document_pb is not None else None)

    @property
    def id(self) -> str:
        return self.reference.id

    def to_dict(self) -> Optional[dict[str, Any]]:
        """A fresh dict of the document's data (None if it does not exist), as the library decodes it."""
        if self._fields is None:
            return None
        return {key: _decode(value, self._client) for key, value in self._fields.items()}


def get_all(client, references: Iterable[Any], timeout: Optional[float] = None) -> list[Snapshot]:
    """One `BatchGetDocuments` of `references`: a snapshot for each (absent ones included)."""
    refs = {ref._document_path: ref for ref in references}
    request = _BatchGetRequest(database=client._database_string, documents=list(refs))
    replies = client._firestore_api.batch_get_documents(
        request=firestore_types.BatchGetDocumentsRequest.wrap(request),
        metadata=client._rpc_metadata,
        retry=None,
        timeout=timeout,
    )
    snapshots = []
    for reply in replies:
        pb = firestore_types.BatchGetDocumentsResponse.pb(reply)
        if pb.HasField("found"):
            snapshots.append(Snapshot(refs[pb.found.name], pb.found, client))
        else:
            snapshots.append(Snapshot(refs[pb.missing], None, client))
    return snapshots
