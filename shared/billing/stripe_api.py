"""Everything that goes through the stripe library: webhook signatures and the Stripe API.

Rules enforced here:
- a signature is checked by the stripe library on the raw body, against every secret in
  `STRIPE_WEBHOOK_SECRET` (comma separated, spaces ignored, so a secret can be rolled), with
  Stripe's default tolerance of 300 s; a missing, malformed, wrong or stale one is
  `InvalidSignature`;
- Checkout Session line items are read from the Stripe API with `STRIPE_API_KEY`, at
  `STRIPE_API_BASE` (default Stripe's), every page of them; a fault that may heal (network,
  rate limit, Stripe 5xx) is `StripeUnavailable`, a refusal (unknown session, bad key) is
  `CannotApply` (the event is kept for replay);
- settings are read and validated once per instance; the API client is built on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import stripe

from ..common import settings as common_settings
from ..common.errors import CannotApply, ConfigurationError, InvalidSignature, StripeUnavailable

DEFAULT_API_BASE = "https://api.stripe.com"
TOLERANCE_S = stripe.Webhook.DEFAULT_TOLERANCE
API_TIMEOUT_S = 10.0
# One retry absorbs a dropped connection; Stripe's own webhook retries cover longer outages.
API_RETRIES = 1


@dataclass(frozen=True)
class Settings:
    secrets: tuple[str, ...]
    api_key: Optional[str]
    api_base: str


def _secrets(raw: str) -> tuple[str, ...]:
    secrets = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not secrets:
        raise ConfigurationError("STRIPE_WEBHOOK_SECRET is not set; it must hold the endpoint's whsec_... secret(s)")
    for position, secret in enumerate(secrets, 1):
        if not secret.startswith("whsec_") or " " in secret:
            raise ConfigurationError(f"STRIPE_WEBHOOK_SECRET: secret #{position} is not a whsec_... signing secret")
    return secrets


def _api_base(raw: str) -> str:
    base = raw.strip().rstrip("/") or DEFAULT_API_BASE
    if not base.startswith(("https://", "http://")):
        raise ConfigurationError(f"STRIPE_API_BASE={raw!r} is not an http(s) URL")
    return base


@common_settings.cached
def settings() -> Settings:
    """The Stripe settings of this instance, validated on first use."""
    return Settings(
        secrets=_secrets(os.environ.get("STRIPE_WEBHOOK_SECRET", "")),
        api_key=os.environ.get("STRIPE_API_KEY", "").strip() or None,
        api_base=_api_base(os.environ.get("STRIPE_API_BASE", "")),
    )


def verify_signature(payload: Union[bytes, str], header: Optional[str]) -> None:
    """Accept the body if any configured secret signed it within the tolerance."""
    problem = "no Stripe-Signature header"
    for secret in settings().secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_S)
            return
        except stripe.SignatureVerificationError as exc:
            problem = str(exc).split(".")[0]
        except UnicodeDecodeError:
            raise InvalidSignature("the body is not UTF-8, so it cannot carry a valid signature") from None
        except TypeError:
            # The library compares signatures with `hmac.compare_digest`, which refuses non-ASCII
            # text: a header no secret can have signed, from anyone, on a public endpoint.
            raise InvalidSignature("the Stripe-Signature holds a character a signature cannot hold") from None
    raise InvalidSignature(f"the Stripe-Signature does not verify: {problem}")


@common_settings.cached
def _api() -> stripe.StripeClient:
    # Only the key and base: reading line items (a replay from the operator command included)
    # needs no webhook secret.
    current = Settings(
        secrets=(),
        api_key=os.environ.get("STRIPE_API_KEY", "").strip() or None,
        api_base=_api_base(os.environ.get("STRIPE_API_BASE", "")),
    )
    if current.api_key is None:
        raise CannotApply("STRIPE_API_KEY is not set, so line items cannot be read")
    return stripe.StripeClient(
        current.api_key,
        base_addresses={"api": current.api_base},
        max_network_retries=API_RETRIES,
        http_client=stripe.RequestsClient(timeout=API_TIMEOUT_S),
    )


def checkout_line_items(session_id: str) -> list[dict[str, Any]]:
    """Every line item of a Checkout Session, as plain dictionaries."""
    try:
        page = _api().v1.checkout.sessions.line_items.list(session_id, {"limit": 100})
        return [item.to_dict() for item in page.auto_paging_iter()]
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeUnavailable(f"the Stripe API could not be reached ({type(exc).__name__})") from exc
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if status >= 500 or status in (409, 429):
            raise StripeUnavailable(f"the Stripe API failed ({status})") from exc
        raise CannotApply(f"the Stripe API refused the line items of {session_id} ({status}: {exc.user_message or exc})") from exc
