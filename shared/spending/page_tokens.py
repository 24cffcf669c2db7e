"""Page tokens of the transaction history: opaque to callers, bound to the listing that issued them.

Rules enforced here:
- a token carries the last record's `created_at` and id, and a tag over them and the user;
- a token edited, truncated, or issued for another user's listing is `InvalidRequest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from ..common.errors import InvalidRequest

_TOKEN_CONTEXT = b"two-pool-credits/transactions-page/v1"


def encode(user_id: str, created_at: datetime, transaction_id: str) -> str:
    payload = json.dumps([user_id, created_at.isoformat(), transaction_id], separators=(",", ":")).encode()
    tag = hmac.new(_TOKEN_CONTEXT, payload, hashlib.sha256).hexdigest()[:24]
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + tag


def decode(user_id: str, token: str) -> tuple[datetime, str]:
    """The cursor a token carries, or InvalidRequest if this API did not issue it for `user_id`."""
    invalid = InvalidRequest("page_token is not one this API issued", fields=["page_token"])
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        expected = hmac.new(_TOKEN_CONTEXT, payload, hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(tag, expected):
            raise invalid
        owner, created_at, transaction_id = json.loads(payload)
        if owner != user_id:
            raise invalid
        return datetime.fromisoformat(created_at), transaction_id
    except (ValueError, TypeError):
        raise invalid from None
