"""Single-document bookkeeping outside any user's commit: read, create once, conditional update.

Rules enforced here:
- each call is one write or one read, with the client's deadline and fault mapping;
- `create` never overwrites (False if the document exists), and `update_if_unchanged` writes
  only over the version the caller read (False if it changed or vanished), so two operators or
  two deliveries never overwrite each other's bookkeeping;
- `write_all` commits several such writes atomically (bookkeeping that must not be half done:
  an event's journal entry with the document it remembers), each with its own condition;
- no feature sees a Firestore type: counters are `increment(n)`, versions are opaque values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import firestore

from .client import client, deadline, faults


def increment(amount: int) -> Any:
    """A field value that adds `amount` to the stored one when written."""
    return firestore.Increment(amount)


def read(path: str) -> Optional[dict[str, Any]]:
    """One document by path, or None."""
    with faults("read_document"):
        snap = client().document(path).get(retry=None, timeout=deadline())
    return snap.to_dict() if snap.exists else None


def read_versioned(path: str) -> Optional[tuple[dict[str, Any], datetime]]:
    """One document and its update time (its version), or None."""
    with faults("read_document"):
        snap = client().document(path).get(retry=None, timeout=deadline())
    return (snap.to_dict(), snap.update_time) if snap.exists else None


def create(path: str, data: dict[str, Any]) -> bool:
    """Create the document; False (and nothing written) if it exists already."""
    try:
        with faults("create_document"):
            client().document(path).create(data, retry=None, timeout=deadline())
        return True
    except gexc.AlreadyExists:
        return False


def put(path: str, data: dict[str, Any], merge: bool = False) -> None:
    """Write the document whole (or merge its fields); for bookkeeping that is idempotent."""
    with faults("put_document"):
        client().document(path).set(data, merge=merge, retry=None, timeout=deadline())


def update_if_unchanged(path: str, fields: dict[str, Any], version: datetime) -> bool:
    """Update fields of the document if it is still at `version`; False if it changed or vanished."""
    try:
        with faults("update_document"):
            client().document(path).update(
                fields, option=client().write_option(last_update_time=version), retry=None, timeout=deadline()
            )
        return True
    except (gexc.FailedPrecondition, gexc.NotFound):
        return False


def delete(path: str) -> None:
    with faults("delete_document"):
        client().document(path).delete(retry=None, timeout=deadline())


def read_many(paths: list[str], chunk: int = 300) -> dict[str, Optional[dict[str, Any]]]:
    """Many documents by path, a batched read per `chunk` paths; None for a missing one."""
    found: dict[str, Optional[dict[str, Any]]] = {path: None for path in paths}
    db = client()
    for start in range(0, len(paths), chunk):
        refs = [db.document(path) for path in paths[start : start + chunk]]
        with faults("read_documents"):
            for snap in db.get_all(refs, retry=None, timeout=deadline()):
                if snap.exists:
                    found[snap.reference.path] = snap.to_dict()
    return found


@dataclass(frozen=True)
class Write:
    """One write of `write_all`: a put (whole, or merged), a create, an update over `version`, or a
    delete (of `version` only, when given)."""

    path: str
    data: Optional[dict[str, Any]] = None
    merge: bool = False
    create: bool = False
    version: Optional[datetime] = None
    delete: bool = False


def write_all(writes: Sequence[Write]) -> bool:
    """Commit `writes` together; False (nothing written) if a create found its document or an
    update found another version (or none)."""
    db = client()
    batch = db.batch()
    for write in writes:
        ref = db.document(write.path)
        if write.delete:
            # With a version: deleted only if still that version (else nothing is written).
            batch.delete(ref, option=db.write_option(last_update_time=write.version) if write.version else None)
        elif write.create:
            batch.create(ref, write.data)
        elif write.version is not None:
            batch.update(ref, write.data, option=db.write_option(last_update_time=write.version))
        else:
            batch.set(ref, write.data, merge=write.merge)
    try:
        with faults("write_documents"):
            batch.commit(retry=None, timeout=deadline())
        return True
    except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
        return False
