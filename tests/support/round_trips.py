"""Counting the Firestore RPCs a client makes, by method name."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Iterator

METHODS = ("batch_get_documents", "commit", "begin_transaction", "get_document", "run_query")


@contextmanager
def counted(db, methods: tuple[str, ...] = METHODS) -> Iterator[Counter]:
    """Within the block, each call of one of `methods` on `db`'s API adds one to its count."""
    counts: Counter = Counter()
    api = db._firestore_api
    originals = {name: getattr(api, name) for name in methods}
    for name, original in originals.items():
        def count(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(api, name, count)
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(api, name, original)
