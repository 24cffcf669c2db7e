"""Python client of the two-pool credits API (the `spend` function).

    from credits_client import CreditsClient, InsufficientCredits

Every route of the API is a method of `CreditsClient` (client.py), its answers are dataclasses
(models.py) and its refusals one exception per error code under `CreditsError` (errors.py).
"""

from .client import CreditsClient, HoldScope, __version__
from .errors import (BY_CODE, CaptureExceedsHold, ConnectionFault, CreditsError, HoldNotFound, HoldNotOpen,
                     IdempotencyConflict, InsufficientCredits, InvalidRequest, MethodNotAllowed, NotFound,
                     PayloadTooLarge, RefundExceedsSpend, SpendNotFound, TooManyOpenHolds, Unavailable,
                     UnexpectedResponse, UnknownPrice)
from .models import (Balance, BalanceAsOf, Hold, Page, PlacedHold, Preview, PreviewEntry, Refund, Settings,
                     Settlement, Spend, Transaction)

__all__ = [
    "CreditsClient", "HoldScope", "__version__",
    "BY_CODE", "CreditsError", "CaptureExceedsHold", "ConnectionFault", "HoldNotFound", "HoldNotOpen",
    "IdempotencyConflict", "InsufficientCredits", "InvalidRequest", "MethodNotAllowed", "NotFound",
    "PayloadTooLarge", "RefundExceedsSpend", "SpendNotFound", "TooManyOpenHolds", "Unavailable",
    "UnexpectedResponse", "UnknownPrice",
    "Balance", "BalanceAsOf", "Hold", "Page", "PlacedHold", "Preview", "PreviewEntry", "Refund", "Settings",
    "Settlement", "Spend", "Transaction",
]
