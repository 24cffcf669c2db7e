"""Every failure the credit system reports: one base class, one subclass per condition.

Each error carries the HTTP status and machine-readable code the edge answers with, so the
mapping from condition to response lives here and nowhere else. `transient` marks faults a
caller should retry (5xx for HTTP, a raise for Pub/Sub); everything else is permanent.
"""

from __future__ import annotations

from typing import Any, Optional


class CreditsError(Exception):
    """Base of every error the credit system raises on purpose."""

    status = 500
    code = "internal"
    transient = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidRequest(CreditsError):
    """The request is malformed or a field is missing or out of range."""

    status = 400
    code = "invalid_request"


class UnknownPrice(CreditsError):
    """An auto top-up setting names a price that is not an add-on of the catalog."""

    status = 400
    code = "unknown_price"


class NotFound(CreditsError):
    """No route matches the request path."""

    status = 404
    code = "not_found"


class Forbidden(CreditsError):
    """The signed-in person's role does not allow this (the support console's permission rules)."""

    status = 403
    code = "forbidden"


class MethodNotAllowed(CreditsError):
    """The route exists but not for this HTTP method."""

    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(CreditsError):
    """The request body is larger than the function accepts."""

    status = 413
    code = "payload_too_large"


class InsufficientCredits(CreditsError):
    """The pools together hold less than the amount asked for."""

    status = 402
    code = "insufficient_credits"


class IdempotencyConflict(CreditsError):
    """An idempotency key was reused with a different request."""

    status = 409
    code = "idempotency_conflict"


class SpendNotFound(CreditsError):
    """No spend with that key was made for that user."""

    status = 404
    code = "spend_not_found"


class HoldNotFound(CreditsError):
    """No hold has that id."""

    status = 404
    code = "hold_not_found"


class RefundExceedsSpend(CreditsError):
    """A refund asks for more than what remains of its spend."""

    status = 409
    code = "refund_exceeds_spend"


class CaptureExceedsHold(CreditsError):
    """A capture asks for more than the hold holds."""

    status = 409
    code = "capture_exceeds_hold"


class HoldNotOpen(CreditsError):
    """The hold is no longer held (captured, released or expired), so it cannot be settled again."""

    status = 409
    code = "hold_not_open"


class TooManyHolds(CreditsError):
    """The user already has as many open holds as one account may keep."""

    status = 409
    code = "too_many_open_holds"


class PoolUnderflow(CreditsError):
    """A change would take a pool below zero."""

    status = 409
    code = "pool_underflow"


class InvalidSignature(CreditsError):
    """A Stripe-Signature header is missing, malformed, wrong or stale."""

    status = 400
    code = "invalid_signature"


class InvalidPayload(CreditsError):
    """A body is not an event or message this system can ever read."""

    status = 400
    code = "invalid_payload"


class ConfigurationError(CreditsError):
    """An environment variable or file the function needs at start is invalid."""

    code = "misconfigured"


class CatalogError(ConfigurationError):
    """The credits catalog file is missing or has a bad entry."""

    code = "catalog_invalid"


class Unavailable(CreditsError):
    """Firestore could not be reached or the change lost too many races; retry later."""

    status = 503
    code = "unavailable"
    transient = True


class StripeUnavailable(Unavailable):
    """The Stripe API could not be reached or failed on its side; retry later."""


class CannotApply(CreditsError):
    """A genuine event or message that cannot be applied as it stands; it is kept for review and replay."""

    status = 422
    code = "cannot_apply"

    def __init__(self, reason: str, user_id: Optional[str] = None, **details: Any) -> None:
        super().__init__(reason, **details)
        self.reason = reason
        self.user_id = user_id


class PublishUnavailable(Unavailable):
    """Pub/Sub refused or timed out a publish; the change is published again on redelivery."""


class SubscriptionUnavailable(Unavailable):
    """Pub/Sub could not be reached to set up or read a subscription; nothing was acknowledged."""
