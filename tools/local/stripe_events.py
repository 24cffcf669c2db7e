"""Stripe events for the tests and the local run, built from the structures Stripe wrote
(`tests/fixtures/stripe/`).

Each builder copies a fixture object as is and replaces only the values a test needs (ids,
metadata, prices, periods, statuses), so the shape of every event is Stripe's own. Invoices
come in both shapes: `current` (2026-07-29.dahlia: `parent.subscription_details`, line
`parent.subscription_item_details` and `pricing.price_details`) and `old` (2025-02-24.acacia:
`subscription`, `subscription_details`, line `price`). Signatures are real HMAC-SHA256.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
# A copy of the Stripe-written fixture objects, kept as they were (see its README for sources).
FIXTURES = ROOT / "tests" / "fixtures" / "stripe"
SHAPES = {"current": "2026-07-29.dahlia", "old": "2025-02-24.acacia"}
NEW_PRICE_DETAILS = "docs-api-reference/invoice_line_item.json"

DAY = 86_400
PERIOD = 30 * DAY
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, the start of the first period in the scenarios

_ids = itertools.count(1)


def fresh_id(prefix: str) -> str:
    return f"{prefix}_test{next(_ids):06d}{int(time.time() * 1000) % 1_000_000:06d}"


@lru_cache(maxsize=None)
def _fixture(relative: str) -> str:
    return (FIXTURES / relative).read_text()


def fixture(relative: str) -> dict[str, Any]:
    return json.loads(_fixture(relative))


def period(n: int) -> dict[str, int]:
    """The n-th monthly period of the scenarios (1-based)."""
    return {"start": T0 + (n - 1) * PERIOD, "end": T0 + n * PERIOD}


def invoice_line(
    shape: str,
    price: str,
    line_period: dict[str, int],
    subscription: str,
    amount: int = 1000,
    quantity: int = 1,
    proration: bool = False,
) -> dict[str, Any]:
    line = fixture(f"{SHAPES[shape]}/invoice_line_item.json")
    line.update(id=fresh_id("il"), amount=amount, quantity=quantity, period=dict(line_period), description=f"{quantity} x {price}")
    if shape == "current":
        details = fixture(NEW_PRICE_DETAILS)["pricing"]
        details["price_details"] = {"price": price, "product": f"prod_for_{price}"}
        line["pricing"] = details
        line["parent"] = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": f"si_for_{subscription}",
            },
            "type": "subscription_item_details",
        }
        line["subscription"] = None
    else:
        line["price"] = {**line["price"], "id": price, "type": "recurring", "recurring": {"interval": "month", "interval_count": 1}}
        line.update(type="subscription", subscription=subscription, proration=proration, invoice_item=None)
    return line


def invoice(
    shape: str,
    billing_reason: str,
    lines: Sequence[dict[str, Any]],
    subscription: str,
    customer: str,
    user_id: Optional[str],
    invoice_id: Optional[str] = None,
) -> dict[str, Any]:
    obj = fixture(f"{SHAPES[shape]}/invoice.json")
    invoice_id = invoice_id or fresh_id("in")
    total = sum(line["amount"] for line in lines)
    metadata = {"user_id": user_id} if user_id is not None else {}
    obj.update(
        id=invoice_id,
        billing_reason=billing_reason,
        customer=customer,
        status="paid",
        amount_due=total,
        amount_paid=total,
        amount_remaining=0,
        period_start=min(line["period"]["start"] for line in lines),
        period_end=max(line["period"]["end"] for line in lines),
    )
    obj["lines"] = {**obj["lines"], "data": [dict(line, invoice=invoice_id) for line in lines],
                    "url": f"/v1/invoices/{invoice_id}/lines"}
    if shape == "current":
        obj["parent"] = {
            "quote_details": None,
            "subscription_details": {"metadata": metadata, "subscription": subscription},
            "type": "subscription_details",
        }
    else:
        obj["subscription"] = subscription
        obj["subscription_details"] = {"metadata": metadata}
        obj["paid"] = True
    return obj


def checkout_session(
    mode: str,
    payment_status: str,
    customer: Optional[str],
    client_reference_id: Optional[str] = None,
    metadata_user_id: Optional[str] = None,
    session_id: Optional[str] = None,
    subscription: Optional[str] = None,
    payment_intent: Optional[str] = None,
) -> dict[str, Any]:
    obj = fixture(f"{SHAPES['current']}/checkout_session.json")
    obj.update(
        id=session_id or fresh_id("cs_test"),
        mode=mode,
        payment_status=payment_status,
        status="complete",
        customer=customer,
        client_reference_id=client_reference_id,
        metadata={"user_id": metadata_user_id} if metadata_user_id else {},
        subscription=subscription,
        payment_intent=(payment_intent or fresh_id("pi")) if mode == "payment" else None,
    )
    return obj


def charge(
    charge_id: str,
    payment_intent: Optional[str],
    amount: int,
    amount_refunded: int,
    customer: Optional[str],
    invoice: Optional[str] = None,
    shape: str = "current",
) -> dict[str, Any]:
    """A Charge as `charge.refunded` carries it; `invoice` only exists before 2025-03-31."""
    obj = fixture(f"{SHAPES[shape]}/charge.json")
    obj.update(id=charge_id, payment_intent=payment_intent, amount=amount, amount_captured=amount,
               amount_refunded=amount_refunded, refunded=amount_refunded == amount, customer=customer,
               captured=True, paid=True, status="succeeded")
    if shape == "old":
        obj["invoice"] = invoice
    return obj


def dispute(dispute_id: str, charge_id: str, payment_intent: Optional[str], amount: int, status: str) -> dict[str, Any]:
    obj = fixture(f"{SHAPES['current']}/dispute.json")
    obj.update(id=dispute_id, charge=charge_id, payment_intent=payment_intent, amount=amount, status=status,
               is_charge_refundable=False)
    return obj


def subscription(sub_id: str, customer: str, user_id: Optional[str], ended_at: Optional[int], price: str,
                 status: str = "canceled") -> dict[str, Any]:
    obj = fixture(f"{SHAPES['current']}/subscription.json")
    obj.update(id=sub_id, customer=customer, status=status, ended_at=ended_at, canceled_at=ended_at,
               cancel_at_period_end=False, metadata={"user_id": user_id} if user_id else {})
    item = obj["items"]["data"][0]
    item.update(subscription=sub_id, price={**item["price"], "id": price})
    return obj


def checkout_line_item(price: str, quantity: int) -> dict[str, Any]:
    item = fixture(f"{SHAPES['current']}/checkout_session_line_item.json")
    item.update(id=fresh_id("li"), quantity=quantity, description=price,
                price={**item["price"], "id": price, "type": "one_time", "recurring": None})
    return item


def event(event_type: str, obj: dict[str, Any], event_id: Optional[str] = None, shape: str = "current") -> dict[str, Any]:
    envelope = fixture(f"{SHAPES[shape]}/event.json")
    envelope.update(
        id=event_id or fresh_id("evt"),
        type=event_type,
        api_version=SHAPES[shape],
        created=int(time.time()),
        data={"object": copy.deepcopy(obj)},
        pending_webhooks=1,
    )
    return envelope


def redelivered(evt: dict[str, Any]) -> dict[str, Any]:
    """The same event content under a fresh event id, as Stripe sends for a re-created event."""
    return {**copy.deepcopy(evt), "id": fresh_id("evt")}


def sign(payload: str, secret: str, timestamp: Optional[int] = None) -> str:
    """A Stripe-Signature header: `t=<timestamp>,v1=<HMAC-SHA256 of "t.payload">`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(payload, secret, timestamp)}"


def signature(payload: str, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
