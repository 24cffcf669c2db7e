"""The API's refusals as exceptions: one class per error code of the OpenAPI document.

Rules:
- every exception the client raises is a `CreditsError`; a refusal in the API's envelope
  `{"error": {"code", "message", ...}}` becomes the class registered for its `code`, with the
  envelope's other fields as attributes (`InsufficientCredits.balance`, `.requested`, ...);
- an answer without the envelope (a 401 or 403 from Cloud Run, a proxy's page) or with a code this
  client does not know is `UnexpectedResponse`, so a newer server never breaks the caller;
- a fault below HTTP that outlived every retry is `ConnectionFault`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional


class CreditsError(Exception):
    """Base of every error of the client. `code` is the API's error code (None when there is none)."""

    code: ClassVar[Optional[str]] = None
    # The envelope's fields (besides code and message) copied onto the exception, with defaults.
    details: ClassVar[dict[str, Any]] = {}

    def __init__(self, message: str, *, status: Optional[int] = None, error: Optional[dict] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error or {}
        for name, default in self.details.items():
            setattr(self, name, self.error.get(name, default))


class InvalidRequest(CreditsError):
    """400: a missing or invalid field; `fields` lists each with its problem."""

    code = "invalid_request"
    details = {"fields": []}
    fields: list


class InsufficientCredits(CreditsError):
    """402: the pools together hold less than the amount; nothing was written."""

    code = "insufficient_credits"
    details = {"balance": 0, "requested": 0}
    balance: int
    requested: int


class IdempotencyConflict(CreditsError):
    """409: the key was used before with a different request."""

    code = "idempotency_conflict"


class UnknownPrice(CreditsError):
    """400: `auto_topup.price_id` is not an add-on price of the catalog; `fields` names it."""

    code = "unknown_price"
    details = {"fields": []}
    fields: list


class RefundExceedsSpend(CreditsError):
    """409: more than what remains of the spend; `refundable` is what remains."""

    code = "refund_exceeds_spend"
    details = {"refundable": 0}
    refundable: int


class HoldNotOpen(CreditsError):
    """409: the hold is already settled; `hold_status` says how (captured, released, expired)."""

    code = "hold_not_open"
    details = {"hold_id": None}
    hold_id: Optional[str]

    def __init__(self, message: str, *, status: Optional[int] = None, error: Optional[dict] = None) -> None:
        super().__init__(message, status=status, error=error)
        # The envelope calls it `status`; here `status` is the HTTP status on every error.
        self.hold_status: Optional[str] = (error or {}).get("status")


class CaptureExceedsHold(CreditsError):
    """409: a capture of more than the hold holds; `held` is the held amount."""

    code = "capture_exceeds_hold"
    details = {"held": 0}
    held: int


class TooManyOpenHolds(CreditsError):
    """409: the user has as many open holds as allowed (`limit`)."""

    code = "too_many_open_holds"
    details = {"limit": 0}
    limit: int


class SpendNotFound(CreditsError):
    """404: no spend with that key for that user."""

    code = "spend_not_found"
    details = {"spend_key": None}
    spend_key: Optional[str]


class HoldNotFound(CreditsError):
    """404: no hold with that id."""

    code = "hold_not_found"
    details = {"hold_id": None}
    hold_id: Optional[str]


class NotFound(CreditsError):
    """404: no such route (a server older than this client)."""

    code = "not_found"


class MethodNotAllowed(CreditsError):
    """405: the route takes other methods (`allowed`)."""

    code = "method_not_allowed"
    details = {"allowed": []}
    allowed: list


class PayloadTooLarge(CreditsError):
    """413: a body over 64 KiB."""

    code = "payload_too_large"


class Unavailable(CreditsError):
    """503: nothing was written; retried by the client until its deadline, then raised.

    `retry_after` is the server's Retry-After in seconds (None when absent); `outcome` is "unknown"
    when the server could not find out whether the commit landed (retrying with the same key is
    still safe)."""

    code = "unavailable"
    details = {"outcome": None}
    outcome: Optional[str]

    def __init__(self, message: str, *, status: Optional[int] = None, error: Optional[dict] = None,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message, status=status, error=error)
        self.retry_after = retry_after


class UnexpectedResponse(CreditsError):
    """An answer outside the API's envelope or with an unknown code (e.g. Cloud Run's 401/403)."""


class ConnectionFault(CreditsError):
    """The server could not be reached, or its answer was lost, on every attempt within the deadline."""


# code -> class, for every code the OpenAPI document lists (checked by the tests).
BY_CODE: dict[str, type[CreditsError]] = {
    cls.code: cls
    for cls in (InvalidRequest, InsufficientCredits, IdempotencyConflict, RefundExceedsSpend, HoldNotOpen,
                CaptureExceedsHold, TooManyOpenHolds, SpendNotFound, HoldNotFound, NotFound,
                MethodNotAllowed, PayloadTooLarge, Unavailable, UnknownPrice)
    if cls.code
}


def error_from(status: int, body: Any, retry_after: Optional[float] = None) -> CreditsError:
    """The exception for a non-2xx answer: the class of its envelope's code, else UnexpectedResponse."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return UnexpectedResponse(f"HTTP {status} without the API's error envelope", status=status)
    message = str(error.get("message") or error["code"])
    cls = BY_CODE.get(error["code"])
    if cls is None:
        return UnexpectedResponse(message, status=status, error=error)
    if cls is Unavailable:
        return Unavailable(message, status=status, error=error, retry_after=retry_after)
    return cls(message, status=status, error=error)
