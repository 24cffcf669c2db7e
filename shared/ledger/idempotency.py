"""One idempotency record for everything that must happen at most once.

A caller's keyed request (a spend, hold, refund or adjustment) and a Stripe fact (an invoice, a
period, a session, a refund, a dispute, a subscription's end, pause or resume) are both a `Once`:
a namespace and a key, the document that records it, and, for a request, the fingerprint of its
input. Records whose ids are derived from their source (promo grants, migrations, corrections;
`common.ids`) are their own record of the same kind: the create-only write of a derived id.

Rules enforced here:
- the record is created (never overwritten) in the same commit as the change it marks, and
  holds `namespace`, `key`, the request's `fingerprint`, the `response` given (for a request),
  and `created_at`, with whatever the feature adds (who, what it drew, the outcome);
- the same key with the same input replays the stored response and changes nothing;
- the same key with any other input is `IdempotencyConflict` and changes nothing; a fact has
  no fingerprint: every delivery of it is the same request;
- a refused request (insufficient credits, a bad request) writes nothing, so its key is not
  remembered and may be used again;
- a record written before records carried `namespace` and `key` counts the same: only its
  existence and fingerprint are ever compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Optional

from ..common.errors import IdempotencyConflict
from ..common.ids import fingerprint


@dataclass(frozen=True)
class Once:
    """Something that happens at most once: its namespace and key, where its record lives, and
    the fingerprint of the request that makes it (None for a fact)."""

    namespace: str
    key: str
    path: str
    fingerprint: Optional[str] = None
    # What the caller calls the key in errors and in the record (`idempotency_key`, `hold_id`, ...).
    key_name: str = "idempotency_key"

    @classmethod
    def command(cls, namespace: str, key: Optional[str], path_of: Callable[[str], str], *inputs: Any,
                key_name: str = "idempotency_key") -> Optional["Once"]:
        """A caller's keyed request (None without a key): its record at `path_of(key)`, its
        fingerprint over `inputs`."""
        if key is None:
            return None
        return cls(namespace, key, path_of(key), fingerprint(*inputs), key_name)

    @classmethod
    def fact(cls, namespace: str, key: str, path: str) -> "Once":
        """Something from outside that is applied once however often it is delivered."""
        return cls(namespace, key, path, None, "key")

    def ran(self, record: Optional[Mapping[str, Any]]) -> bool:
        """Whether it already happened with this input; IdempotencyConflict if with another."""
        if record is None:
            return False
        if self.fingerprint is not None and record.get("fingerprint") != self.fingerprint:
            raise IdempotencyConflict(
                f"this {self.key_name} was already used with a different request", **{self.key_name: self.key}
            )
        return True

    def replay(self, record: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
        """The stored response if it already happened with this input, None if it never did.

        Raises IdempotencyConflict if the key was used with another input.
        """
        if not self.ran(record):
            return None
        return json.loads(record["response"])

    def record(self, now: datetime, response: Optional[Mapping[str, Any]] = None, **fields: Any) -> dict[str, Any]:
        """The record to create in the commit of the change it marks."""
        data: dict[str, Any] = {"namespace": self.namespace, "key": self.key}
        if self.key_name != "key":
            data[self.key_name] = self.key
        data.update(fields)
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        if response is not None:
            data["response"] = json.dumps(response, separators=(",", ":"))
        data["created_at"] = now
        return data
