"""Page tokens of the listings (history, holds): opaque to callers, bound to the listing that issued them.

Rules enforced here:
- a token carries the last record's `seq` and a digest of the listing's filters, and an
  HMAC-SHA256 tag over them and the user, keyed with `CREDITS_PAGE_TOKEN_KEY` (a secret:
  Secret Manager in Google Cloud); without it each instance makes a random key, so tokens only
  continue on the instance that issued them (enough for a local run, never for a deployment
  with several instances);
- the user id is in the tag, never in the token, so a token is short whatever the user id
  (under 100 characters), and every token the API issues fits the `page_token` limit;
- a token edited, truncated, forged, or issued for another user's listing is `InvalidRequest`,
  and so is one whose decoded fields are not a positive `seq` and a digest: a token is never
  trusted further than its tag, and never crashes the listing;
- a token used with other filters than those it was issued with is `InvalidRequest` too, with a
  message that says so: the filters are part of the listing a token continues;
- a token of another listing (`GET /holds`) carries only its cursor (a time and a document id);
  its tag binds it to that listing (user and filters), which begins with a NUL no user id holds,
  so it is refused by every other listing, the history included.
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
from typing import Any

from ..common import log, settings
from ..common.errors import InvalidRequest
from ..common.validation import text_problem

ENV = "CREDITS_PAGE_TOKEN_KEY"
# Tokens of the listing by `seq`; those of the earlier listing (by time) do not verify.
_DOMAIN = b"two-pool-credits/transactions-page/v3\0"


@settings.cached
def _key() -> bytes:
    configured = os.environ.get(ENV, "")
    if configured:
        return hashlib.sha256(_DOMAIN + configured.encode()).digest()
    log.warning("page tokens are signed with a key of this instance only", setting=ENV)
    return secrets.token_bytes(32)


def _tag(user_id: str, payload: bytes) -> str:
    # The user id is UTF-8 text without NUL (validated at the edge), so the separator is unambiguous.
    message = user_id.encode("utf-8", "surrogatepass") + b"\0" + payload
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()[:32]


def filters_digest(filters: Any) -> str:
    """A short digest of a listing's filters in canonical form (any JSON value)."""
    canonical = json.dumps(filters, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode(user_id: str, seq: int, filters: Any) -> str:
    payload = json.dumps([seq, filters_digest(filters)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _tag(user_id, payload)


def _invalid(problem: str = "not a token this API issued for this user") -> InvalidRequest:
    return InvalidRequest(f"page_token is {problem}", fields=[{"field": "page_token", "problem": problem}])


def decode(user_id: str, token: str, filters: Any) -> int:
    """The `seq` a token continues after, or InvalidRequest if this API did not issue it for
    this user's listing with these `filters`."""
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if not hmac.compare_digest(tag.encode(), _tag(user_id, payload).encode()):
            raise _invalid()
        seq, digest = json.loads(payload)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise _invalid() from None
    if type(seq) is not int or seq < 1 or not isinstance(digest, str):
        raise _invalid()
    if not hmac.compare_digest(digest.encode(), filters_digest(filters).encode()):
        raise _invalid("issued for other filters (type, pool, since, until) than these")
    return seq


# --- Cursors of other listings (`GET /holds`) ------------------------------------------------
# The listing a token belongs to (its user and filters) is bound by the tag, not carried in the
# token, so a token stays short whatever the user id: under 200 characters.
MAX_DOCUMENT_ID = 200


def listing(name: str, *binding: Any) -> str:
    """The key a listing's tokens are tagged with: a NUL, its name and what it is bound to (the
    user, the filters). No user id holds a NUL, so no history token's tag can match it."""
    return "\0" + name + "\0" + json.dumps(binding, separators=(",", ":"))


def sign(listing_key: str, cursor: list) -> str:
    """A token carrying `cursor` (JSON values) that only the listing `listing_key` accepts back."""
    payload = json.dumps(cursor, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _tag(listing_key, payload)


def cursor_of(listing_key: str, token: str) -> list:
    """The cursor a token signed for `listing_key` carries, or InvalidRequest."""
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if not hmac.compare_digest(tag.encode(), _tag(listing_key, payload).encode()):
            raise _invalid()
        cursor = json.loads(payload)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise _invalid() from None
    if not isinstance(cursor, list):
        raise _invalid()
    return cursor


def time_cursor(listing_key: str, token: str) -> tuple[datetime, str]:
    """A `[time, document id]` cursor signed for `listing_key`, checked to be exactly that."""
    cursor = cursor_of(listing_key, token)
    try:
        moment_text, doc_id = cursor
        moment = datetime.fromisoformat(moment_text)
        if moment.tzinfo is None or not isinstance(doc_id, str) or not 0 < len(doc_id) <= MAX_DOCUMENT_ID:
            raise _invalid()
        if text_problem(doc_id) or "/" in doc_id:
            raise _invalid()
        # A UTC offset near the ends of the calendar overflows when moved to UTC.
        return moment.astimezone(timezone.utc), doc_id
    except (ValueError, TypeError, OverflowError):
        raise _invalid() from None
