"""One Stripe customer's events, in either invoice shape, and a comparable view of a ledger."""

from __future__ import annotations

from typing import Any, Optional

from tools.local import stripe_events as sf
from tests.support.ledger import records_of, user_doc


class Customer:
    """Builds the events Stripe sends for one user's subscription and packs."""

    def __init__(self, user_id: str, shape: str = "current", metadata: bool = True, tag: Optional[str] = None) -> None:
        tag = tag or user_id
        self.user_id = user_id
        self.shape = shape
        self.customer = f"cus_{tag}"
        self.subscription = f"sub_{tag}"
        self.metadata_user = user_id if metadata else None
        self.tag = tag

    def _invoice(self, reason: str, lines: list[dict[str, Any]], invoice_id: Optional[str]) -> dict[str, Any]:
        obj = sf.invoice(self.shape, reason, lines, self.subscription, self.customer, self.metadata_user, invoice_id)
        return sf.event("invoice.paid", obj, shape=self.shape)

    def renewal(self, n: int, price: str, invoice_id: Optional[str] = None, extra_lines=()) -> dict[str, Any]:
        """`invoice.paid` for period n: `subscription_create` for the first, then `subscription_cycle`."""
        line = sf.invoice_line(self.shape, price, sf.period(n), self.subscription)
        reason = "subscription_create" if n == 1 else "subscription_cycle"
        return self._invoice(reason, [*extra_lines, line], invoice_id or f"in_{self.tag}_p{n}")

    def first_invoice_from(self, start: int, price: str, invoice_id: Optional[str] = None) -> dict[str, Any]:
        """`invoice.paid` `subscription_create` for a subscription whose first period begins at `start`."""
        line = sf.invoice_line(self.shape, price, {"start": start, "end": start + sf.PERIOD}, self.subscription)
        return self._invoice("subscription_create", [line], invoice_id or f"in_{self.tag}_{self.subscription}_first")

    def renewal_from(self, start: int, price: str, invoice_id: Optional[str] = None) -> dict[str, Any]:
        """`invoice.paid` `subscription_cycle` for a period that begins at `start` (a cycle off the scenarios' grid)."""
        line = sf.invoice_line(self.shape, price, {"start": start, "end": start + sf.PERIOD}, self.subscription)
        return self._invoice("subscription_cycle", [line], invoice_id or f"in_{self.tag}_{self.subscription}_{start}")

    def change(self, n: int, old_price: str, new_price: str, day: int = 10, invoice_id: Optional[str] = None) -> dict[str, Any]:
        """`invoice.paid` `subscription_update` for a plan change `day` days into period n."""
        span = {"start": sf.period(n)["start"] + day * sf.DAY, "end": sf.period(n)["end"]}
        unused = sf.invoice_line(self.shape, old_price, span, self.subscription, amount=-600, proration=True)
        remaining = sf.invoice_line(self.shape, new_price, span, self.subscription, amount=1600, proration=True)
        return self._invoice("subscription_update", [unused, remaining], invoice_id or f"in_{self.tag}_change{n}_{new_price}")

    def payment_succeeded(self, invoice_event: dict[str, Any]) -> dict[str, Any]:
        return sf.event("invoice.payment_succeeded", invoice_event["data"]["object"], shape=self.shape)

    def subscription_checkout(self) -> dict[str, Any]:
        session = sf.checkout_session("subscription", "paid", self.customer, client_reference_id=self.user_id,
                                      session_id=f"cs_test_{self.tag}_subscribe", subscription=self.subscription)
        return sf.event("checkout.session.completed", session)

    def pack_checkout(self, session_id: str, paid: bool, event_type: str = "checkout.session.completed") -> dict[str, Any]:
        session = sf.checkout_session("payment", "paid" if paid else "unpaid", self.customer,
                                      client_reference_id=self.user_id, session_id=session_id,
                                      payment_intent=payment_of(session_id))
        return sf.event(event_type, session)

    def refund(self, session_id: str, amount_refunded: int, amount: int = 1000) -> dict[str, Any]:
        """`charge.refunded` for the pack paid by `session_id`: cumulative `amount_refunded` of `amount`."""
        obj = sf.charge(charge_of(session_id), payment_of(session_id), amount, amount_refunded, self.customer)
        return sf.event("charge.refunded", obj)

    def subscription_refund(self, invoice_id: str, amount_refunded: int, shape: str = "old") -> dict[str, Any]:
        """`charge.refunded` for a subscription invoice's charge (the older shape names the invoice)."""
        obj = sf.charge(f"ch_for_{invoice_id}", f"pi_for_{invoice_id}", 2000, amount_refunded, self.customer,
                        invoice=invoice_id, shape=shape)
        return sf.event("charge.refunded", obj, shape=shape)

    def dispute(self, session_id: str, dispute_id: str, status: Optional[str] = None, amount: int = 1000) -> dict[str, Any]:
        """`charge.dispute.created`, or `charge.dispute.closed` with `status`, on the pack's charge."""
        obj = sf.dispute(dispute_id, charge_of(session_id), payment_of(session_id), amount, status or "needs_response")
        return sf.event("charge.dispute.closed" if status else "charge.dispute.created", obj)

    def paused(self, at: int, price: str = "price_pro_monthly") -> dict[str, Any]:
        obj = sf.subscription(self.subscription, self.customer, self.metadata_user, None, price, status="paused")
        return dict(sf.event("customer.subscription.paused", obj), created=at)

    def resumed(self, at: int, price: str = "price_pro_monthly") -> dict[str, Any]:
        obj = sf.subscription(self.subscription, self.customer, self.metadata_user, None, price, status="active")
        return dict(sf.event("customer.subscription.resumed", obj), created=at)

    def with_subscription(self, subscription: str) -> "Customer":
        """The same user and customer with another subscription (a second Checkout)."""
        other = Customer(self.user_id, self.shape, self.metadata_user is not None, self.tag)
        other.subscription = subscription
        return other

    def cancellation(self, ended_at: int, price: str = "price_pro_monthly") -> dict[str, Any]:
        obj = sf.subscription(self.subscription, self.customer, self.metadata_user, ended_at, price)
        return sf.event("customer.subscription.deleted", obj)


def payment_of(session_id: str) -> str:
    return f"pi_for_{session_id}"


def charge_of(session_id: str) -> str:
    return f"ch_for_{session_id}"


def ledger_view(db, user_id: str) -> tuple[dict[str, Any], list[tuple]]:
    """The user's pools and totals, and every record without its random id and time."""
    doc = user_doc(db, user_id) or {}
    pools = {k: doc.get(k, 0) for k in ("credits_monthly", "credits_permanent", "total_earned", "total_spent")}
    records = sorted(
        (r["type"], r["pool"], r["amount"], r["source"] or "", r["description"]) for r in records_of(db, user_id)
    )
    return pools, records
