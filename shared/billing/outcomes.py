"""What became of a Stripe event: one enum, and the answer the webhook gives.

Rules enforced here:
- an outcome is one of `Outcome`'s members, never free text: `applied` (credits changed),
  `duplicate` (this fact was applied before), `stale` (a period older than one already applied, or
  a fact an end already closed), `ignored` (nothing to change, or remembered without a change of
  credits), `unapplied` (kept with its reason for review and replay), and `failed` for a replay that
  met a transient fault (the kept copy stays);
- members are `str`, so they compare equal to the contract's words and serialize as them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Optional


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"
    UNAPPLIED = "unapplied"
    FAILED = "failed"


@dataclass(frozen=True)
class EventResult:
    """What became of one event, as the webhook answers it and the journal keeps it."""

    event_id: str
    event_type: str
    outcome: Outcome
    user_id: Optional[str] = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        return data
