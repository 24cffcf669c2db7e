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
- auto top-up reads a price (`GET /v1/prices/{id}`) and a customer's default payment method
  (`GET /v1/customers/{id}`), and creates a PaymentIntent off-session (`POST /v1/payment_intents`)
  with the attempt id as Stripe's `Idempotency-Key`, so a repeated call is answered with the same
  PaymentIntent; Stripe's refusal of a charge (a card error, or another 4xx) is an answer in
  plain values (`IntentAnswer`: code, decline code, advice code, the PaymentIntent), while a
  connection fault, a rate limit or a Stripe 5xx is `StripeUnavailable`, so the trigger is
  delivered again and the same key makes the same charge;
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


@dataclass(frozen=True)
class Price:
    unit_amount: int
    currency: str


@dataclass(frozen=True)
class IntentAnswer:
    """What a PaymentIntent create call answered: the PaymentIntent, or Stripe's refusal."""

    payment_intent: Optional[str]
    status: Optional[str] = None
    client_secret: Optional[str] = None
    # Set when Stripe refused the call (`error_type`: `card_error`, `invalid_request_error`...).
    error_type: Optional[str] = None
    code: Optional[str] = None
    decline_code: Optional[str] = None
    advice_code: Optional[str] = None


def _transient(exc: Exception) -> bool:
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return True
    status = getattr(exc, "http_status", None) or 0
    return status >= 500 or status in (409, 429)


def _missing(exc: Exception) -> bool:
    error = (getattr(exc, "json_body", None) or {}).get("error") or {}
    return getattr(exc, "http_status", None) == 404 or error.get("code") == "resource_missing"


def price(price_id: str) -> Optional[Price]:
    """A price's unit amount and currency (None: Stripe has no such price, or it has no unit amount)."""
    try:
        found = _api().v1.prices.retrieve(price_id).to_dict()
    except stripe.StripeError as exc:
        if _transient(exc):
            raise StripeUnavailable(f"the Stripe API could not be reached or failed ({type(exc).__name__})") from exc
        if _missing(exc):
            return None
        raise CannotApply(f"the Stripe API refused price {price_id} ({exc.http_status})") from exc
    if not isinstance(found.get("unit_amount"), int):
        return None
    return Price(found["unit_amount"], str(found.get("currency") or "usd"))


def default_payment_method(customer_id: str) -> tuple[bool, Optional[str]]:
    """(whether the customer exists, its `invoice_settings.default_payment_method` or None)."""
    try:
        found = _api().v1.customers.retrieve(customer_id).to_dict()
    except stripe.StripeError as exc:
        if _transient(exc):
            raise StripeUnavailable(f"the Stripe API could not be reached or failed ({type(exc).__name__})") from exc
        if _missing(exc):
            return False, None
        raise CannotApply(f"the Stripe API refused customer {customer_id} ({exc.http_status})") from exc
    if found.get("deleted"):
        return False, None
    method = (found.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    return True, method if isinstance(method, str) and method else None


def create_payment_intent(idempotency_key: str, amount: int, currency: str, customer: str, payment_method: str,
                          metadata: dict[str, str]) -> IntentAnswer:
    """Charge off-session now; Stripe answers a repeat of `idempotency_key` with the first answer."""
    params = {"amount": amount, "currency": currency, "customer": customer, "payment_method": payment_method,
              "off_session": True, "confirm": True, "metadata": metadata}
    try:
        intent = _api().v1.payment_intents.create(params, {"idempotency_key": idempotency_key}).to_dict()
    except stripe.StripeError as exc:
        if _transient(exc):
            raise StripeUnavailable(f"the Stripe API could not be reached or failed ({type(exc).__name__})") from exc
        error = (exc.json_body or {}).get("error") or {}
        intent = error.get("payment_intent") or {}
        return IntentAnswer(intent.get("id"), intent.get("status"), intent.get("client_secret"),
                            error.get("type") or "api_error", error.get("code"), error.get("decline_code"),
                            error.get("advice_code"))
    return IntentAnswer(intent.get("id"), intent.get("status"), intent.get("client_secret"))


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
