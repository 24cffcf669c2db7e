"""Plain HTTP plumbing shared by the HTTP functions, free of any web framework.

Rules enforced here:
- every error body is `{"error": {"code", "message", ...}}`, whatever the status;
- a request body is read only up to its size limit, so an oversized one is refused whole.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from .errors import CreditsError, PayloadTooLarge, Unavailable

JSON = {"Content-Type": "application/json"}
RETRY_AFTER_S = 1


def respond(body: Any, status: int = 200, headers: Optional[Mapping[str, str]] = None):
    return json.dumps(body, separators=(",", ":")), status, {**JSON, **(headers or {})}


def error_response(err: CreditsError):
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(err, Unavailable) else None
    return respond(err.body(), err.status, headers)


def read_body(request, limit: int) -> bytes:
    """The raw request body, refused with 413 when over `limit` bytes, declared or not."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    # One byte past the limit is enough to know the body is too large without reading it all.
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    return raw
