"""What this instance last saw of its users' documents: a bounded cache of versions, and the
stand-in a commit is conditioned on when it did not read.

Rules enforced here:
- an entry is a user document's data and the update time Firestore gave that exact data (read
  from a snapshot, or taken from the write result of the commit that wrote it), so a commit
  conditioned on that update time lands only if the document is still exactly that data;
- an entry never goes back in time: an older version does not replace a newer one;
- the cache is only a guess: it never answers a read, and it never stands for a document's
  absence (only documents that existed are kept); a refused commit drops the entry;
- it is bounded (least recently used out first) and per instance; `settings.reset()` empties it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from google.cloud import firestore

from ..common import settings

# How long a user whose known version was just refused is read before deciding.
CONTENDED_S = 0.5
MAX_USERS = 20_000


@dataclass(frozen=True)
class Version:
    """A user document as a commit's precondition sees it: where, and which version (None: absent).

    Stands in for a snapshot in `pipeline.stage`, so a commit needs no read to be conditioned.
    """

    reference: Any
    update_time: Optional[Any]

    @property
    def exists(self) -> bool:
        return self.update_time is not None


@dataclass(frozen=True)
class Known:
    """A user document's data and the update time of exactly that data."""

    data: dict[str, Any]
    update_time: Any


class KnownUsers:
    """A bounded, thread-safe map of user document path -> `Known`."""

    def __init__(self, max_users: int = MAX_USERS) -> None:
        self._entries: OrderedDict[str, Known] = OrderedDict()
        # When a version of a path was last refused by a commit: a user others are writing now.
        self._refused: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_users

    def get(self, path: str) -> Optional[Known]:
        with self._lock:
            refused_at = self._refused.get(path)
            if refused_at is not None and time.monotonic() - refused_at < CONTENDED_S:
                # Deciding from a version that others keep moving only adds a refused commit.
                return None
            known = self._entries.get(path)
            if known is not None:
                self._entries.move_to_end(path)
            return known

    def put(self, path: str, data: Optional[Mapping[str, Any]], update_time: Any) -> None:
        """Remember `data` as the version written at `update_time` (an absent document is forgotten)."""
        if data is None or update_time is None:
            self.drop(path)
            return
        with self._lock:
            current = self._entries.get(path)
            # Two threads may finish out of order: the newer version wins.
            if current is not None and current.update_time > update_time:
                return
            self._entries[path] = Known(dict(data), update_time)
            self._entries.move_to_end(path)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def refused(self, path: str) -> None:
        """A commit from the known version of `path` was refused: read it for a while instead."""
        with self._lock:
            self._refused[path] = time.monotonic()
            self._refused.move_to_end(path)
            while len(self._refused) > self._max:
                self._refused.popitem(last=False)

    def drop(self, path: str, update_time: Any = None) -> None:
        """Forget `path` (only if it is still at `update_time`, when given)."""
        with self._lock:
            current = self._entries.get(path)
            if current is not None and (update_time is None or current.update_time == update_time):
                del self._entries[path]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@settings.cached
def known_users() -> KnownUsers:
    """The cache of this instance."""
    return KnownUsers()


def after_update(stored: Optional[Mapping[str, Any]], written: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The document an `update` (or a `create`, with `stored` None) of `written` leaves, or None
    if it cannot be told without a read (a field path or a transform other than a delete)."""
    data = dict(stored or {})
    for name, value in written.items():
        if "." in name or "`" in name:
            return None
        if value is firestore.DELETE_FIELD:
            data.pop(name, None)
        elif _has_sentinel(value):
            return None
        else:
            data[name] = value
    return data


def _has_sentinel(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_sentinel(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_sentinel(v) for v in value)
    # Sentinels (server timestamps, increments, array unions, deletes) are computed by Firestore.
    return type(value).__module__.startswith("google.cloud.firestore")
