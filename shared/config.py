"""Settings read from the environment (CONTRACT section 1), validated once per instance.

A bad value fails loudly at first use rather than silently falling back to a default.
"""

from __future__ import annotations

import os
from functools import lru_cache

from .core import SpendOrder
from .errors import ConfigurationError

DEFAULT_PROJECT = "demo-credits"


@lru_cache(maxsize=1)
def spend_order() -> SpendOrder:
    raw = os.environ.get("CREDITS_SPEND_ORDER", "").strip() or SpendOrder.PERMANENT_FIRST.value
    try:
        return SpendOrder(raw)
    except ValueError:
        allowed = ", ".join(order.value for order in SpendOrder)
        raise ConfigurationError(f"CREDITS_SPEND_ORDER={raw!r} is not one of {allowed}") from None


def project() -> str | None:
    """The project id; on the emulator a `demo-` id, in Google Cloud whatever the runtime says."""
    explicit = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    if explicit:
        return explicit
    return DEFAULT_PROJECT if os.environ.get("FIRESTORE_EMULATOR_HOST") else None


DEFAULT_EVENTS_TOPIC = "credits-events"


def events_topic() -> str:
    """CREDITS_EVENTS_TOPIC: a topic name in this project, or a full `projects/.../topics/...`."""
    return os.environ.get("CREDITS_EVENTS_TOPIC", "").strip() or DEFAULT_EVENTS_TOPIC


def low_balance_threshold() -> int:
    """CREDITS_LOW_BALANCE: the default threshold of `balance.low`; unset or 0 means none."""
    raw = os.environ.get("CREDITS_LOW_BALANCE", "").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"CREDITS_LOW_BALANCE={raw!r} is not an integer") from None
    if value < 0:
        raise ConfigurationError(f"CREDITS_LOW_BALANCE={raw!r} is negative")
    return value
