"""Page tokens of the listings (history, holds): opaque to callers, bound to the listing that issued them.

Rules enforced here:
- a token carries the last record's `created_at` and id, and an HMAC-SHA256 tag over them and
  the user, keyed with `CREDITS_PAGE_TOKEN_KEY` (a secret: Secret Manager in Google Cloud);
  without it each instance makes a random key, so tokens only continue on the instance that
  issued them (enough for a local run, never for a deployment with several instances);
- a token edited, truncated, forged, or issued for another user's listing is `InvalidRequest`,
  and so is one whose decoded fields are not a real time and a plain record id: a token is
  never trusted further than its tag, and never crashes the listing;
- a token of another listing (`GET /holds`) carries only its cursor; the tag binds it to its
  listing (user and filters), so it stays well within the API's length limit for any user id,
  and a token of one listing is refused by every other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from datetime import datetime, timezone

from ..common import log, settings
from ..common.errors import InvalidRequest
from ..common.validation import text_problem

ENV = "CREDITS_PAGE_TOKEN_KEY"
MAX_RECORD_ID = 200


@settings.cached
def _key() -> bytes:
    configured = os.environ.get(ENV, "")
    if configured:
        return hashlib.sha256(b"two-pool-credits/transactions-page/v2\0" + configured.encode()).digest()
    log.warning("page tokens are signed with a key of this instance only", setting=ENV)
    return secrets.token_bytes(32)


def _tag(payload: bytes) -> str:
    return hmac.new(_key(), payload, hashlib.sha256).hexdigest()[:32]


def encode(user_id: str, created_at: datetime, transaction_id: str) -> str:
    payload = json.dumps([user_id, created_at.isoformat(), transaction_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _tag(payload)


def _invalid() -> InvalidRequest:
    return InvalidRequest(
        "page_token is not one this API issued",
        fields=[{"field": "page_token", "problem": "not a token this API issued for this user"}],
    )


def decode(user_id: str, token: str) -> tuple[datetime, str]:
    """The cursor a token carries, or InvalidRequest if this API did not issue it for `user_id`."""
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if not hmac.compare_digest(tag.encode(), _tag(payload).encode()):
            raise _invalid()
        owner, created_at, transaction_id = json.loads(payload)
        moment = datetime.fromisoformat(created_at)
        valid = (
            owner == user_id
            and moment.tzinfo is not None
            and isinstance(transaction_id, str)
            and 0 < len(transaction_id) <= MAX_RECORD_ID
            and not text_problem(transaction_id)
        )
        if not valid:
            raise _invalid()
        # A UTC offset near the ends of the calendar overflows when moved to UTC.
        return moment.astimezone(timezone.utc), transaction_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError):
        raise _invalid() from None


# --- Cursors of other listings (`GET /holds`) ------------------------------------------------
# The listing a token belongs to (its user and filters) is bound by the tag, not carried in the
# token, so a token stays short whatever the user id: about 180 characters.


def sign(listing: str, cursor: list) -> str:
    """A token carrying `cursor` (JSON values) that only `listing` accepts back."""
    payload = json.dumps(cursor, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _listing_tag(listing, payload)


def _listing_tag(listing: str, payload: bytes) -> str:
    return _tag(listing.encode("utf-8", "surrogatepass") + b"\0" + payload)


def cursor_of(listing: str, token: str) -> list:
    """The cursor a token signed for `listing` carries, or InvalidRequest."""
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if not hmac.compare_digest(tag.encode(), _listing_tag(listing, payload).encode()):
            raise _invalid()
        cursor = json.loads(payload)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise _invalid() from None
    if not isinstance(cursor, list):
        raise _invalid()
    return cursor


def time_cursor(listing: str, token: str) -> tuple[datetime, str]:
    """A `[time, document id]` cursor signed for `listing`, checked to be exactly that."""
    cursor = cursor_of(listing, token)
    try:
        moment_text, doc_id = cursor
        moment = datetime.fromisoformat(moment_text)
        if moment.tzinfo is None or not isinstance(doc_id, str) or not 0 < len(doc_id) <= MAX_RECORD_ID:
            raise _invalid()
        if text_problem(doc_id) or "/" in doc_id:
            raise _invalid()
        return moment.astimezone(timezone.utc), doc_id
    except (ValueError, TypeError, OverflowError):
        raise _invalid() from None
