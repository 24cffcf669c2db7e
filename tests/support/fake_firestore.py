"""An in-memory Firestore behind a real client, with faults a test arms one commit at a time.

The store talks to Firestore through two calls of the library's API object
(`client._firestore_api`): `batch_get_documents` and `commit`. `FakeFirestore` is that object,
so the store (and the library's own `get_all`, `create`, `update`) runs unchanged on it, in
memory, in microseconds, with faults placed exactly where a test wants them.

Rules it follows (Firestore's, as far as the store relies on them):
- a commit is atomic: every precondition is checked against the stored documents (in write
  order, each write seeing the ones before it), and either every write is applied or none is;
- preconditions: `exists=False` fails with `AlreadyExists`, `exists=True` with `NotFound`,
  `update_time` (an exact match, to the microsecond) with `FailedPrecondition`, also when the
  document is missing;
- `update` without a mask replaces the document; with a mask it sets the masked fields that
  the document holds and deletes the masked fields it lacks, leaves every other field, and
  creates a missing document unless a precondition forbids it; `delete` removes it (a missing
  document is no error unless a precondition says so); transforms: `increment` and
  `REQUEST_TIME`;
- each commit gets a commit time later than every earlier one (microseconds, as Firestore);
  a document a commit changes gets it as its update time; a write that leaves a document
  exactly as it was keeps its update time, and its write result gives the previous one (as
  Firestore does), so an empty update mask changes neither the document nor its version;
- a read returns the documents as stored, with a `read_time`.

Faults, each deterministic and armed for the next commit (or next calls) only:
- `unavailable(times)`: the next calls (reads, commits or both) raise `ServiceUnavailable` and
  do nothing;
- `before_next_commit(callback)`: `callback()` runs when the commit arrives, before it is
  checked, so another writer's commit can land between a read and the commit that follows it;
- `tear_next_commit(after_writes, during)`: the commit is checked and stored as usual, but
  reads see only its first `after_writes` writes until `during()` has returned (documents of
  the later writes read as they were before it, unless a later commit writes them meanwhile);
  commits made during it are checked against what is stored, not what is seen;
- `lose_reply_of_next_commit()`: the commit is applied, then `DeadlineExceeded` is raised;
- `hold_next_commit()`: the commit is not applied and `DeadlineExceeded` is raised; it waits
  until `release_held()` sends it (applied only if its preconditions hold then) or `drop_held()`.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, Optional

import google.auth.credentials
from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.cloud.firestore_v1.types import write as write_types
from google.protobuf import timestamp_pb2

from shared.common import settings
from shared.store import client as store_client

PROJECT = "demo-double"

_Document = document_types.Document.pb()
_Value = document_types.Value.pb()
_CommitResponse = firestore_types.CommitResponse.pb()
_BatchGetResponse = firestore_types.BatchGetDocumentsResponse.pb()
_WriteResult = write_types.WriteResult.pb()
_REQUEST_TIME = write_types.DocumentTransform.FieldTransform.ServerValue.REQUEST_TIME


def _raw(request: Any, wrapper) -> Any:
    """The raw protobuf of a request, given as the library's dict or as a proto-plus message."""
    if isinstance(request, dict):
        request = wrapper(request)
    return wrapper.pb(request)


def _timestamp(micros: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def _copy(doc):
    if doc is None:
        return None
    copied = _Document()
    copied.CopyFrom(doc)
    return copied


def _parts(field_path: str) -> list[str]:
    return list(FieldPath.from_api_repr(field_path).parts)


def _get(fields, parts: list[str]):
    head, rest = parts[0], parts[1:]
    if head not in fields:
        return None
    value = fields[head]
    if not rest:
        return value
    return _get(value.map_value.fields, rest) if value.WhichOneof("value_type") == "map_value" else None


def _set(fields, parts: list[str], value) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        fields[head].CopyFrom(value)
        return
    node = fields[head]
    if node.WhichOneof("value_type") != "map_value":
        node.Clear()
        node.map_value.SetInParent()
    _set(node.map_value.fields, rest, value)


def _delete(fields, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head not in fields:
        return
    if not rest:
        del fields[head]
    elif fields[head].WhichOneof("value_type") == "map_value":
        _delete(fields[head].map_value.fields, rest)


def _increment(current, by):
    """Firestore's increment: a missing or non-numeric field becomes the increment itself."""
    kind = current.WhichOneof("value_type") if current is not None else None
    step = by.WhichOneof("value_type")
    if kind not in ("integer_value", "double_value"):
        return by
    if kind == step == "integer_value":
        return _Value(integer_value=current.integer_value + by.integer_value)
    return _Value(double_value=float(getattr(current, kind)) + float(getattr(by, step)))


class FakeFirestore:
    """The `_firestore_api` object of `self.client`, storing documents in memory."""

    def __init__(self, project: str = PROJECT) -> None:
        self.client = firestore.Client(project=project, credentials=google.auth.credentials.AnonymousCredentials())
        # The library's `_firestore_api` builds a GAPIC client only while this is None.
        self.client._firestore_api_internal = self
        self._prefix = self.client._database_string + "/documents/"
        self._lock = threading.RLock()
        self._docs: dict[str, Any] = {}
        # Torn commits: documents whose stored version reads are not shown yet -> what they show.
        self._hidden: dict[str, Any] = {}
        # The documents the torn commit in progress keeps from reads.
        self._torn: set[str] = set()
        self._clock = 0
        # How many more calls fail as unavailable, and of which kinds ("read", "commit").
        self._down = 0
        self._down_kinds: frozenset[str] = frozenset()
        self._before: list[Callable[[], None]] = []
        self._armed: Optional[tuple] = None
        # Commits held past their deadline (raw requests), to be released or dropped.
        self.held: list[Any] = []
        # Calls received (whatever became of them), and commits applied (`put` included).
        self.reads = 0
        self.commits = 0
        self.landed = 0
        # How many writes each commit received held, in order.
        self.sizes: list[int] = []

    # -- inspection and seeding ------------------------------------------------------------

    def name(self, path: str) -> str:
        return path if path.startswith(self._prefix) else self._prefix + path

    def doc(self, path: str) -> Optional[dict[str, Any]]:
        """The stored document at `path` (e.g. "users_credits/ann") as python values, or None."""
        with self._lock:
            doc = self._docs.get(self.name(path))
            return None if doc is None else _helpers.decode_dict(doc.fields, self.client)

    def docs(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every stored document of a top-level collection, by path."""
        start = self._prefix + collection + "/"
        with self._lock:
            names = [name for name in self._docs if name.startswith(start) and "/" not in name[len(start):]]
        return {name[len(self._prefix):]: self.doc(name) for name in sorted(names)}

    def names(self, collection: str) -> list[str]:
        """The paths of the stored documents of a top-level collection, in the order they were
        first stored (nothing is decoded, so a caller can decode only the ones it has not seen)."""
        start = self._prefix + collection + "/"
        with self._lock:
            return [name[len(self._prefix):] for name in self._docs
                    if name.startswith(start) and "/" not in name[len(start):]]

    def update_time(self, path: str) -> Optional[DatetimeWithNanoseconds]:
        with self._lock:
            doc = self._docs.get(self.name(path))
            return None if doc is None else DatetimeWithNanoseconds.from_timestamp_pb(doc.update_time)

    def put(self, path: str, data: dict[str, Any]) -> None:
        """Store `data` at `path` directly, as one commit of its own (no fault applies)."""
        self._apply([write_types.Write.pb(_helpers.pbs_for_set_no_merge(self.name(path), data)[0])])

    # -- faults --------------------------------------------------------------------------

    def unavailable(self, times: Optional[int] = 1, reads: bool = True, commits: bool = True) -> None:
        """The next `times` calls among reads and/or commits (None: all until `recover()`) raise ServiceUnavailable."""
        with self._lock:
            self._down = 10**12 if times is None else times
            self._down_kinds = frozenset(kind for kind, chosen in (("read", reads), ("commit", commits)) if chosen)

    def recover(self) -> None:
        with self._lock:
            self._down = 0

    def before_next_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback()` when the next commit arrives, before it is checked or applied."""
        with self._lock:
            self._before.append(callback)

    def tear_next_commit(self, after_writes: int, during: Callable[[], None]) -> None:
        """The next commit lands whole, but reads see only its first `after_writes` writes while `during()` runs."""
        self._arm(("tear", after_writes, during))

    def lose_reply_of_next_commit(self, error: type[gexc.GoogleAPICallError] = gexc.DeadlineExceeded) -> None:
        """The next commit is applied, then `error` is raised in place of its reply."""
        self._arm(("lose", error))

    def disarm(self) -> None:
        """Forget a fault (or a `before_next_commit` callback) armed for a next commit that never came."""
        with self._lock:
            self._armed = None
            self._before = []

    def hold_next_commit(self) -> None:
        self._arm(("hold",))

    def release_held(self) -> list[Any]:
        """Send every held commit now: for each, its `CommitResponse`, or the error Firestore gives."""
        with self._lock:
            held, self.held = self.held, []
        outcomes: list[Any] = []
        for request in held:
            try:
                outcomes.append(self._apply(list(request.writes)))
            except gexc.GoogleAPICallError as exc:
                outcomes.append(exc)
        return outcomes

    def drop_held(self) -> None:
        with self._lock:
            self.held = []

    def _arm(self, mode: tuple) -> None:
        with self._lock:
            if self._armed is not None:
                raise RuntimeError("a fault is already armed for the next commit")
            self._armed = mode

    def _fail_if_unavailable(self, kind: str) -> None:
        with self._lock:
            if self._down > 0 and kind in self._down_kinds:
                self._down -= 1
                raise gexc.ServiceUnavailable(f"fake Firestore is unavailable ({kind})")

    # -- the API -------------------------------------------------------------------------

    def batch_get_documents(self, request=None, metadata=None, retry=None, timeout=None, **_: Any) -> Iterator[Any]:
        request = _raw(request, firestore_types.BatchGetDocumentsRequest)
        with self._lock:
            self.reads += 1
        self._fail_if_unavailable("read")
        with self._lock:
            read_time = _timestamp(self._tick())
            replies = []
            for name in dict.fromkeys(request.documents):
                doc = self._hidden[name] if name in self._hidden else self._docs.get(name)
                if doc is None:
                    replies.append(_BatchGetResponse(missing=name, read_time=read_time))
                else:
                    replies.append(_BatchGetResponse(found=_copy(doc), read_time=read_time))
        # A stream, as the API's is: the library's single-document `get` takes `next()` of it.
        return iter([firestore_types.BatchGetDocumentsResponse.wrap(reply) for reply in replies])

    def commit(self, request=None, metadata=None, retry=None, timeout=None, **_: Any):
        request = _raw(request, firestore_types.CommitRequest)
        if request.transaction:
            raise NotImplementedError("transactions are not part of the fake")
        with self._lock:
            self.commits += 1
            self.sizes.append(len(request.writes))
        self._fail_if_unavailable("commit")
        with self._lock:
            # Taken before the callback runs, so commits made inside it are plain ones.
            before, self._before = self._before, []
            mode, self._armed = self._armed, None
        for callback in before:
            callback()
        writes = list(request.writes)
        if mode is None:
            return self._apply(writes)
        if mode[0] == "hold":
            with self._lock:
                self.held.append(request)
            raise gexc.DeadlineExceeded("fake Firestore: the commit is held past its deadline")
        if mode[0] == "lose":
            try:
                self._apply(writes)
            except gexc.GoogleAPICallError:
                pass  # its refusal is lost with the reply
            raise mode[1]("fake Firestore: the commit's reply was lost")
        _, after_writes, during = mode
        response = self._apply(writes, visible=after_writes)
        try:
            during()
        finally:
            with self._lock:
                for name in self._torn:
                    self._hidden.pop(name, None)
                self._torn = set()
        return response

    # -- applying writes -----------------------------------------------------------------

    def _tick(self) -> int:
        self._clock = max(self._clock + 1, time.time_ns() // 1000)
        return self._clock

    def _apply(self, writes: Iterable[Any], visible: Optional[int] = None):
        """Check and apply `writes` atomically; with `visible`, only that many are seen by reads yet."""
        writes = list(writes)
        with self._lock:
            now = self._tick()
            stamp = _timestamp(now)
            work: dict[str, Any] = {}
            results = []
            for write in writes:
                name = self._name_of(write)
                current = work[name] if name in work else self._docs.get(name)
                self._check(write, name, current)
                after = self._written(write, current, stamp)
                work[name] = after
                result = _WriteResult()
                if after is not None:
                    result.update_time.CopyFrom(after.update_time)
                results.append(result)
            shown = {}
            if visible is not None:
                early = {self._name_of(write) for write in writes[:visible]}
                for write in writes[visible:]:
                    name = self._name_of(write)
                    if name not in early and name not in shown:
                        shown[name] = _copy(self._docs.get(name))
            for name, after in work.items():
                self._hidden.pop(name, None)
                if after is None:
                    self._docs.pop(name, None)
                else:
                    self._docs[name] = after
            if visible is not None:
                self._hidden.update(shown)
                self._torn = set(shown)
            self.landed += 1
            return firestore_types.CommitResponse.wrap(_CommitResponse(write_results=results, commit_time=stamp))

    @staticmethod
    def _name_of(write) -> str:
        return write.delete if write.WhichOneof("operation") == "delete" else write.update.name

    @staticmethod
    def _check(write, name: str, current) -> None:
        if not write.HasField("current_document"):
            return
        condition = write.current_document
        if condition.WhichOneof("condition_type") == "exists":
            if condition.exists and current is None:
                raise gexc.NotFound(f"No document to update: {name}")
            if not condition.exists and current is not None:
                raise gexc.AlreadyExists(f"Document already exists: {name}")
        elif condition.WhichOneof("condition_type") == "update_time":
            if current is None or current.update_time != condition.update_time:
                raise gexc.FailedPrecondition(f"the stored version does not match the required base version: {name}")

    @staticmethod
    def _written(write, current, stamp):
        """The document `write` leaves (None: none), given the one before it."""
        kind = write.WhichOneof("operation")
        if kind == "delete":
            return None
        if kind != "update":
            raise NotImplementedError(f"a {kind} write is not part of the fake")
        after = _Document(name=write.update.name)
        if write.HasField("update_mask"):
            if current is not None:
                after.fields.MergeFrom(current.fields)
            for path in write.update_mask.field_paths:
                parts = _parts(path)
                value = _get(write.update.fields, parts)
                if value is None:
                    _delete(after.fields, parts)
                else:
                    _set(after.fields, parts, value)
        else:
            after.fields.MergeFrom(write.update.fields)
        for transform in write.update_transforms:
            parts = _parts(transform.field_path)
            kind = transform.WhichOneof("transform_type")
            if kind == "increment":
                _set(after.fields, parts, _increment(_get(after.fields, parts), transform.increment))
            elif kind == "set_to_server_value" and transform.set_to_server_value == _REQUEST_TIME:
                _set(after.fields, parts, _Value(timestamp_value=stamp))
            else:
                raise NotImplementedError(f"the {kind} transform is not part of the fake")
        if current is not None and dict(current.fields) == dict(after.fields):
            return _copy(current)  # nothing changed: Firestore keeps the document's version
        after.create_time.CopyFrom(current.create_time if current is not None else stamp)
        after.update_time.CopyFrom(stamp)
        return after


def install(fake: FakeFirestore, monkeypatch) -> FakeFirestore:
    """Make `fake.client` the store's client (`shared.store.client.client()`) until the test ends."""
    # The cached `client()` builds `firestore.Client(...)`: built here, it is the fake's client,
    # and stays so after any `settings.reset()` within the test.
    monkeypatch.setattr(store_client, "firestore", SimpleNamespace(Client=lambda *args, **kwargs: fake.client))
    settings.reset()
    assert store_client.client() is fake.client
    return fake
