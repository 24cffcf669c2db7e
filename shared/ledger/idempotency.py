"""Keyed commands: a request that carries a caller's key happens at most once.

Rules enforced here:
- a keyed command's marker document is created (never overwritten) in the same commit as the
  change it marks, and stores the input's fingerprint and the response given;
- the same key with the same input replays the stored response, and changes nothing;
- the same key with any other input is `IdempotencyConflict`, and changes nothing;
- a refused command (insufficient credits, a bad request) writes nothing, so its key is not
  remembered and may be used again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional

from ..common.errors import IdempotencyConflict
from ..common.ids import fingerprint


@dataclass(frozen=True)
class KeyedCommand:
    """One request under a caller's key: where its marker lives and what its input was."""

    key: str
    marker_path: str
    fingerprint: str
    # What the caller calls the key in errors (`idempotency_key`, `hold_id`, ...).
    key_name: str = "idempotency_key"

    @classmethod
    def under(cls, key: Optional[str], marker_path, *inputs: Any, key_name: str = "idempotency_key"
              ) -> Optional["KeyedCommand"]:
        """The command for `key` (None without one), its marker at `marker_path(key)`, its
        fingerprint over `inputs`."""
        if key is None:
            return None
        return cls(key=key, marker_path=marker_path(key), fingerprint=fingerprint(*inputs), key_name=key_name)

    def replay(self, marker: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
        """The stored response if the command already ran with this input, None if it never ran.

        Raises IdempotencyConflict if the key ran with another input.
        """
        if not self.ran(marker):
            return None
        return json.loads(marker["response"])

    def ran(self, marker: Optional[Mapping[str, Any]]) -> bool:
        """Whether the command already ran with this input; IdempotencyConflict if with another."""
        if marker is None:
            return False
        if marker.get("fingerprint") != self.fingerprint:
            raise IdempotencyConflict(
                f"this {self.key_name} was already used with a different request", **{self.key_name: self.key}
            )
        return True

    def marker(self, response: Mapping[str, Any], now: datetime, **fields: Any) -> dict[str, Any]:
        """The marker document to create in the command's commit."""
        return {
            self.key_name: self.key,
            **fields,
            "fingerprint": self.fingerprint,
            "response": json.dumps(response, separators=(",", ":")),
            "created_at": now,
        }
