"""Reading Stripe events as plain JSON dictionaries: no stripe import, no I/O.

Rules enforced here:
- the webhook endpoint's API version decides the payload's shape, so both invoice shapes are
  read by the same code: the current one (`parent.subscription_details` on the invoice,
  `parent.subscription_item_details` and `pricing.price_details.price` on a line) and the one
  before 2025-03-31 (`subscription`, `subscription_details`, line `price`/`plan`, `proration`);
- a Charge names its payment (`payment_intent`), its `amount` and the cumulative
  `amount_refunded`; a charge that names an `invoice` (API versions before 2025-03-31) pays a
  subscription; a Dispute names its `charge`, `payment_intent` and `status`;
- a field that may be expanded (a price, a subscription) is read as an id or as an object's `id`;
- ids are taken as sent (never stripped); an id that is not usable text (a control character, a
  lone surrogate), an id that becomes a map key (a subscription, charge or dispute id) that
  Firestore cannot store as one (`__x__`, over 1,500 bytes), and a number outside what Stripe can send (a time before 1970 or after 9999, a
  quantity over a million, an amount beyond 2**53) make the event `CannotApply`, kept with the
  reason, instead of reaching a document;
- an envelope that is not a Stripe event is `InvalidPayload`; an event of a handled type whose
  object cannot be read is `CannotApply`, kept for review instead of being refused;
- values come out as small frozen dataclasses; credits and times are `int`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..common.errors import CannotApply, InvalidPayload
from ..common.validation import map_key_problem, text_problem


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: int
    api_version: Optional[str]
    object: Mapping[str, Any]


@dataclass(frozen=True)
class Period:
    start: int
    end: int


@dataclass(frozen=True)
class InvoiceLine:
    line_id: Optional[str]
    price_id: Optional[str]
    quantity: int
    amount: int
    period: Optional[Period]
    proration: bool


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    billing_reason: Optional[str]
    customer_id: Optional[str]
    subscription_id: Optional[str]
    user_id: Optional[str]
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True)
class CheckoutSession:
    session_id: str
    mode: Optional[str]
    payment_status: Optional[str]
    customer_id: Optional[str]
    subscription_id: Optional[str]
    user_id: Optional[str]
    payment_intent: Optional[str] = None


@dataclass(frozen=True)
class Charge:
    charge_id: str
    payment_intent: Optional[str]
    amount: int
    amount_refunded: int
    customer_id: Optional[str]
    invoice_id: Optional[str]


@dataclass(frozen=True)
class Dispute:
    dispute_id: str
    charge_id: Optional[str]
    payment_intent: Optional[str]
    status: Optional[str]


@dataclass(frozen=True)
class PaymentIntent:
    """A PaymentIntent as `payment_intent.succeeded` and `.payment_failed` carry it."""

    payment_intent: str
    status: Optional[str]
    customer_id: Optional[str]
    user_id: Optional[str]
    # `metadata.topup_attempt_id`: an auto top-up's charge (None: some other payment).
    attempt_id: Optional[str]
    client_secret: Optional[str]
    error_code: Optional[str] = None
    decline_code: Optional[str] = None
    advice_code: Optional[str] = None


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    customer_id: Optional[str]
    user_id: Optional[str]
    ended_at: Optional[int]


@dataclass(frozen=True)
class LineItem:
    """One Checkout Session line item, as the Stripe API lists it."""

    price_id: Optional[str]
    quantity: int


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# The latest instant a Unix timestamp may name (9999-12-31T23:59:59Z); Stripe's are far below.
MAX_TIMESTAMP = 253_402_300_799
MAX_QUANTITY = 1_000_000
MAX_MINOR_UNITS = 2**53


def _str(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value:
        return None
    problem = text_problem(value)
    if problem:
        raise CannotApply(f"the event names an id that {problem}: {value[:60]!r}")
    return value


def _key(value: Optional[str]) -> Optional[str]:
    """An id that becomes a map key (a subscription on the user document, a charge or dispute in
    what is owed and claimed): one Firestore cannot store would fail the commit, so the event is
    kept instead."""
    problem = map_key_problem(value) if value is not None else None
    if problem:
        raise CannotApply(f"the event names an id that {problem}: {value[:60]!r}")
    return value


def _int(value: Any) -> Optional[int]:
    return value if type(value) is int else None


def _bounded(value: Any, low: int, high: int, what: str) -> Optional[int]:
    """An integer field within what Stripe can send; CannotApply if it is out of range."""
    number = _int(value)
    if number is not None and not low <= number <= high:
        raise CannotApply(f"{what} {number} is out of range")
    return number


def _timestamp(value: Any, what: str) -> Optional[int]:
    return _bounded(value, 0, MAX_TIMESTAMP, what)


def _ref(value: Any) -> Optional[str]:
    """An expandable field: an id string, or an expanded object carrying `id`."""
    if isinstance(value, dict):
        return _str(value.get("id"))
    return _str(value)


def _user_id(metadata: Any) -> Optional[str]:
    # Taken exactly as sent: the user id rules (`validation.UserId`) judge it, not a strip.
    value = _dict(metadata).get("user_id")
    return value if isinstance(value, str) and value else None


def envelope(body: Any) -> Event:
    """The event envelope of a decoded body, or InvalidPayload if it is not a Stripe event."""
    if not isinstance(body, dict) or body.get("object") != "event":
        raise InvalidPayload("the body is not a Stripe event (no `\"object\": \"event\"`)")
    event_id, event_type = body.get("id"), body.get("type")
    event_id = event_id if isinstance(event_id, str) and event_id and not text_problem(event_id) else None
    event_type = event_type if isinstance(event_type, str) and event_type and not text_problem(event_type) else None
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if event_id is None or event_type is None or not isinstance(obj, dict):
        raise InvalidPayload("a Stripe event needs a string `id`, a string `type` and an object `data.object`")
    created = _int(body.get("created"))
    created = created if created is not None and 0 <= created <= MAX_TIMESTAMP else 0
    api_version = body.get("api_version") if isinstance(body.get("api_version"), str) else None
    return Event(event_id, event_type, created, api_version, obj)


def _period(value: Any) -> Optional[Period]:
    start = _timestamp(_dict(value).get("start"), "period.start")
    end = _timestamp(_dict(value).get("end"), "period.end")
    return Period(start, end) if start is not None and end is not None else None


def _line_price(line: Mapping[str, Any]) -> Optional[str]:
    pricing = _dict(line.get("pricing"))
    price = _ref(_dict(pricing.get("price_details")).get("price"))
    if price:
        return price
    # Before 2025-03-31: the price (or, older still, the plan) object on the line itself.
    return _ref(line.get("price")) or _ref(line.get("plan"))


def _line_proration(line: Mapping[str, Any]) -> bool:
    parent = _dict(line.get("parent"))
    if parent:
        details = _dict(parent.get(parent.get("type"))) if isinstance(parent.get("type"), str) else {}
        return details.get("proration") is True
    return line.get("proration") is True


def invoice_line(line: Any) -> InvoiceLine:
    line = _dict(line)
    quantity = _bounded(line.get("quantity"), -MAX_QUANTITY, MAX_QUANTITY, "line quantity")
    return InvoiceLine(
        line_id=_str(line.get("id")),
        price_id=_line_price(line),
        quantity=quantity if quantity is not None and quantity > 0 else 1,
        amount=_bounded(line.get("amount"), -MAX_MINOR_UNITS, MAX_MINOR_UNITS, "line amount") or 0,
        period=_period(line.get("period")),
        proration=_line_proration(line),
    )


def invoice(obj: Mapping[str, Any]) -> Invoice:
    invoice_id = _str(obj.get("id"))
    if invoice_id is None or obj.get("object") not in (None, "invoice"):
        raise CannotApply("the event's object is not an invoice with an id")
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    if details:
        subscription_id, metadata = _key(_ref(details.get("subscription"))), details.get("metadata")
    else:
        # Before 2025-03-31 the subscription and its metadata sat on the invoice itself.
        subscription_id = _key(_ref(obj.get("subscription")))
        metadata = _dict(obj.get("subscription_details")).get("metadata")
    lines = _dict(obj.get("lines")).get("data")
    return Invoice(
        invoice_id=invoice_id,
        billing_reason=_str(obj.get("billing_reason")),
        customer_id=_ref(obj.get("customer")),
        subscription_id=subscription_id,
        user_id=_user_id(metadata),
        lines=tuple(invoice_line(line) for line in lines) if isinstance(lines, list) else (),
    )


def checkout_session(obj: Mapping[str, Any]) -> CheckoutSession:
    session_id = _str(obj.get("id"))
    if session_id is None or obj.get("object") not in (None, "checkout.session"):
        raise CannotApply("the event's object is not a Checkout Session with an id")
    return CheckoutSession(
        session_id=session_id,
        mode=_str(obj.get("mode")),
        payment_status=_str(obj.get("payment_status")),
        customer_id=_ref(obj.get("customer")),
        subscription_id=_key(_ref(obj.get("subscription"))),
        user_id=_user_id({"user_id": obj.get("client_reference_id")}) or _user_id(obj.get("metadata")),
        payment_intent=_ref(obj.get("payment_intent")),
    )


def charge(obj: Mapping[str, Any]) -> Charge:
    charge_id = _key(_str(obj.get("id")))
    amount = _bounded(obj.get("amount"), 0, MAX_MINOR_UNITS, "charge amount")
    refunded = _bounded(obj.get("amount_refunded"), 0, MAX_MINOR_UNITS, "charge amount_refunded")
    if charge_id is None or obj.get("object") not in (None, "charge"):
        raise CannotApply("the event's object is not a charge with an id")
    if amount is None or refunded is None or amount < 0 or refunded < 0:
        raise CannotApply(f"charge {charge_id} has no integer amount and amount_refunded")
    return Charge(charge_id, _ref(obj.get("payment_intent")), amount, refunded, _ref(obj.get("customer")),
                  _ref(obj.get("invoice")))


def payment_intent(obj: Mapping[str, Any]) -> PaymentIntent:
    intent_id = _str(obj.get("id"))
    if intent_id is None or obj.get("object") not in (None, "payment_intent"):
        raise CannotApply("the event's object is not a payment intent with an id")
    metadata = _dict(obj.get("metadata"))
    attempt = metadata.get("topup_attempt_id")
    attempt = _str(attempt) if isinstance(attempt, str) else None
    if attempt is not None and ("/" in attempt or attempt.startswith("__") or attempt in (".", "..")):
        raise CannotApply(f"metadata.topup_attempt_id {attempt[:60]!r} is not a usable id")
    error = _dict(obj.get("last_payment_error"))
    return PaymentIntent(intent_id, _str(obj.get("status")), _ref(obj.get("customer")), _user_id(metadata), attempt,
                         _str(obj.get("client_secret")), _str(error.get("code")), _str(error.get("decline_code")),
                         _str(error.get("advice_code")))


def dispute(obj: Mapping[str, Any]) -> Dispute:
    dispute_id = _key(_str(obj.get("id")))
    if dispute_id is None or obj.get("object") not in (None, "dispute"):
        raise CannotApply("the event's object is not a dispute with an id")
    return Dispute(dispute_id, _key(_ref(obj.get("charge"))), _ref(obj.get("payment_intent")), _str(obj.get("status")))


def subscription(obj: Mapping[str, Any]) -> Subscription:
    subscription_id = _key(_str(obj.get("id")))
    if subscription_id is None or obj.get("object") not in (None, "subscription"):
        raise CannotApply("the event's object is not a subscription with an id")
    return Subscription(
        subscription_id=subscription_id,
        customer_id=_ref(obj.get("customer")),
        user_id=_user_id(obj.get("metadata")),
        ended_at=_timestamp(obj.get("ended_at"), "ended_at") or _timestamp(obj.get("canceled_at"), "canceled_at"),
    )


def line_items(items: Any) -> tuple[LineItem, ...]:
    """Checkout Session line items (the `data` of the API's list) as prices and quantities."""
    result = []
    for item in items if isinstance(items, list) else []:
        item = _dict(item)
        quantity = _bounded(item.get("quantity"), -MAX_QUANTITY, MAX_QUANTITY, "line item quantity")
        result.append(LineItem(_ref(item.get("price")), quantity if quantity is not None and quantity > 0 else 1))
    return tuple(result)
