"""One handler per Stripe event type: read the event, find the user, and say what it asks.

Rules enforced here:
- a handler either answers at once (`ignored`, or `duplicate` found cheaply) or returns the
  `EventChange` that the service commits through `decisions.decide_event`;
- the user is `metadata.user_id` of the subscription (on the invoice), `client_reference_id` or
  `metadata.user_id` of a Checkout Session, or else the user linked to the Stripe customer;
- an event that cannot be applied (unknown user, no catalog price, an object that cannot be
  read, a Stripe API refusal) raises `CannotApply`;
- a type without a handler is `ignored`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Union

from pydantic import TypeAdapter, ValidationError

from ..common import log
from ..common.errors import CannotApply
from ..common.validation import UserId, text_problem
from ..ledger.accounts import Account
from ..store import collections, documents
from . import addons, catalog, customers, events, stripe_api, subscriptions, unapplied
from .decisions import EventChange
from .events import Event
from .subscriptions import APPLIED, DUPLICATE, IGNORED, Decision, SubscriptionState

RENEWAL_REASONS = ("subscription_create", "subscription_cycle")
UPGRADE_REASON = "subscription_update"

_USER_ID = TypeAdapter(UserId)


@dataclass(frozen=True)
class Outcome:
    """What became of one event: `applied`, `duplicate`, `stale`, `ignored` or `unapplied`."""

    event_id: str
    event_type: str
    outcome: str
    user_id: Optional[str] = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answered:
    """A handler's answer that needs no commit, and whether it knows of a kept unapplied copy."""

    outcome: Outcome
    kept_copy: bool = False


Handled = Union[Answered, EventChange]


def customer_of(event: Event) -> Optional[str]:
    """The event object's customer id, if it is usable text (for logs and the kept record)."""
    customer = event.object.get("customer")
    return customer if isinstance(customer, str) and customer and not text_problem(customer) else None


def resolve_user(user_id: Optional[str], customer_id: Optional[str]) -> str:
    if user_id is not None:
        try:
            return _USER_ID.validate_python(user_id)
        except ValidationError:
            raise CannotApply(f"metadata user_id {user_id[:140]!r} is not a usable user id") from None
    linked = customers.user_of(customer_id) if customer_id else None
    if linked:
        return linked
    raise CannotApply(
        f"unknown user: no metadata.user_id and no user linked to customer {customer_id}"
        if customer_id
        else "unknown user: no metadata.user_id and no customer"
    )


def _change(event: Event, user_id: str, source: str, markers: list[str], rule, customer_id=None,
            subscription_id=None) -> EventChange:
    return EventChange(
        event_id=event.id,
        event_type=event.type,
        user_id=user_id,
        source=source,
        markers=tuple(markers),
        rule=rule,
        unapplied_path=unapplied.path(event.id),
        customer_id=customer_id,
        link_path=collections.customer_link(customer_id) if customer_id else None,
        subscription_id=subscription_id,
    )


def _ignored(event: Event, reason: str, user_id: Optional[str] = None) -> Answered:
    return Answered(Outcome(event.id, event.type, IGNORED, user_id, reason))


def invoice_paid(event: Event) -> Handled:
    invoice = events.invoice(event.object)
    reason = invoice.billing_reason
    if reason not in RENEWAL_REASONS and reason != UPGRADE_REASON:
        return _ignored(event, f"billing_reason {reason} grants no credits")
    plans = catalog.get()
    pair = (
        subscriptions.upgrade_line(invoice.lines, plans)
        if reason == UPGRADE_REASON
        else subscriptions.renewal_line(invoice.lines, plans)
    )
    if pair is None:
        prices = subscriptions.unknown_prices(invoice.lines)
        raise CannotApply(
            f"no line of invoice {invoice.invoice_id} has a catalog plan price (prices: {', '.join(prices) or 'none'})"
        )
    if invoice.subscription_id is None:
        raise CannotApply(f"invoice {invoice.invoice_id} names no subscription")
    user_id = resolve_user(invoice.user_id, invoice.customer_id)
    line, plan = pair
    period = line.period
    markers = [collections.applied_marker("invoice", invoice.invoice_id)]
    if reason == UPGRADE_REASON:

        def rule(account: Account, state: Optional[SubscriptionState]) -> Decision:
            return subscriptions.upgrade(state, plan, line.quantity, period)

    else:
        markers.append(collections.applied_marker("period", f"{invoice.subscription_id}:{period.start}"))

        def rule(account: Account, state: Optional[SubscriptionState]) -> Decision:
            return subscriptions.renew(account.monthly, state, plan, line.quantity, period)

    return _change(event, user_id, invoice.invoice_id, markers, rule, invoice.customer_id, invoice.subscription_id)


def invoice_payment_succeeded(event: Event) -> Handled:
    return _ignored(event, "invoice.paid carries this invoice")


def checkout_session(event: Event) -> Handled:
    session = events.checkout_session(event.object)
    if session.mode != "payment" or session.payment_status != "paid":
        # Nothing to grant yet (or ever), but the session still says whose customer this is.
        if session.customer_id and session.user_id:
            customers.link(session.customer_id, resolve_user(session.user_id, None), event.id)
        why = (
            f"mode {session.mode} grants no credits here"
            if session.mode != "payment"
            else f"payment_status {session.payment_status}: nothing until it is paid"
        )
        return _ignored(event, why, session.user_id)
    user_id = resolve_user(session.user_id, session.customer_id)
    marker = collections.applied_marker("session", session.session_id)
    # A repeat costs one read instead of a call to the Stripe API.
    if documents.read(marker) is not None:
        return Answered(Outcome(event.id, event.type, DUPLICATE, user_id, "already applied"),
                        kept_copy=unapplied.is_kept(event.id))
    items = events.line_items(stripe_api.checkout_line_items(session.session_id))
    entries, others = addons.addon_entries(items, catalog.get())
    if not entries:
        raise CannotApply(
            f"no line item of session {session.session_id} is a catalog add-on (prices: {', '.join(others) or 'none'})",
            user_id,
        )
    if others:
        log.warning("line items without credits", event_id=event.id, user_id=user_id, prices=others)

    def rule(account: Account, state: Optional[SubscriptionState]) -> Decision:
        return Decision(APPLIED, entries)

    return _change(event, user_id, session.session_id, [marker], rule, session.customer_id)


def subscription_deleted(event: Event) -> Handled:
    subscription = events.subscription(event.object)
    user_id = resolve_user(subscription.user_id, subscription.customer_id)
    ended_at = subscription.ended_at or event.created

    def rule(account: Account, state: Optional[SubscriptionState]) -> Decision:
        return subscriptions.cancel(account.monthly, state, ended_at)

    marker = collections.applied_marker("ended", subscription.subscription_id)
    # The event is the cause of the expiry, so its id is the records' source.
    return _change(event, user_id, event.id, [marker], rule, subscription.customer_id, subscription.subscription_id)


HANDLERS: dict[str, Callable[[Event], Handled]] = {
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_payment_succeeded,
    "checkout.session.completed": checkout_session,
    "checkout.session.async_payment_succeeded": checkout_session,
    "customer.subscription.deleted": subscription_deleted,
}
