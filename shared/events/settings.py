"""The events feature's settings (CONTRACT section 1): the topic and the low-balance threshold.

Rules enforced here:
- `CREDITS_EVENTS_TOPIC` is a topic name in this project (default `credits-events`) or a full
  `projects/.../topics/...` path;
- `CREDITS_LOW_BALANCE` is a non-negative integer; unset or 0 means no `balance.low` events;
  anything else fails loudly at first use.
"""

from __future__ import annotations

import os

from ..common.errors import ConfigurationError

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
