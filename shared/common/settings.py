"""Settings read from the environment (CONTRACT section 1), and the one lazy-cache idiom.

Rules enforced here:
- whatever is costly or validated (a client, a parsed file, a setting) is built on first use,
  never at import, through `cached`, and kept for the instance's life;
- `reset()` forgets every cached value at once, so the next use reads the environment again;
- a bad value fails loudly at first use rather than silently falling back to a default.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

DEFAULT_PROJECT = "demo-credits"

_forgetters: list[Callable[[], None]] = []


def cached(build: Callable[[], T]) -> Callable[[], T]:
    """`build()` once, on first call, under a lock; later calls return the same value."""
    lock = threading.Lock()
    box: list[T] = []

    @functools.wraps(build)
    def get() -> T:
        if not box:
            with lock:
                if not box:
                    box.append(build())
        return box[0]

    def forget() -> None:
        with lock:
            box.clear()

    _forgetters.append(forget)
    return get


def reset() -> None:
    """Forget every cached client, file and setting."""
    for forget in _forgetters:
        forget()


def project() -> Optional[str]:
    """The project id; on the emulator a `demo-` id, in Google Cloud whatever the runtime says."""
    explicit = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    if explicit:
        return explicit
    return DEFAULT_PROJECT if os.environ.get("FIRESTORE_EMULATOR_HOST") else None
