"""One handler per Stripe event type: read the event, find the user, and say what it asks.

Rules enforced here:
- a handler either answers at once (`ignored`, or `duplicate` found cheaply) or returns the
  `EventChange` that the service commits through `decisions.decide_event`;
- the user is `metadata.user_id` of the subscription (on the invoice), `client_reference_id` or
  `metadata.user_id` of a Checkout Session, or else the user linked to the Stripe customer;
- an event that cannot be applied (unknown user, no catalog price, an object that cannot be
  read, a Stripe API refusal) raises `CannotApply`;
- a refund or dispute goes to the user of its payment (`stripe_payments/{payment_intent}`, written
  when the add-on session is applied); one for a payment not applied yet is remembered there,
  outside any user's commit and only over the version read, and answered `ignored` (it may be a
  subscription payment, which changes no credits; a pack's session settles it when applied);
  a charge naming an invoice pays a subscription: `ignored`;
- a type without a handler is `ignored`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Union

from pydantic import TypeAdapter, ValidationError

from ..common import log
from ..common.errors import CannotApply, Unavailable
from ..common.validation import UserId, text_problem
from ..ledger import accounts, collections
from ..ledger.idempotency import Once
from ..store import documents
from ..store.client import utcnow
from . import (
    addons,
    catalog,
    customers,
    events,
    payments,
    stripe_api,
    subscriptions,
    unapplied,
)
from .decisions import EventChange, Facts
from .events import Event
from .payments import Payment
from .subscriptions import APPLIED, DUPLICATE, IGNORED, STALE, Decision

# How often a pending payment fact is re-read and re-written when another write raced it.
PENDING_ATTEMPTS = 8

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


def applied(kind: str, key: str) -> Once:
    """The record that a Stripe fact of `kind` (an invoice, a period, a session...) was applied."""
    return Once.fact(f"stripe:{kind}", key, collections.applied_marker(kind, key))


def _change(event: Event, user_id: str, source: str, markers: list[Once], rule, customer_id=None,
            subscription_id=None, documents_=()) -> EventChange:
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
        documents=tuple(documents_),
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
    markers = [applied("invoice", invoice.invoice_id)]
    if reason == UPGRADE_REASON:

        def rule(facts: Facts) -> Decision:
            return subscriptions.upgrade(facts.state, plan, line.quantity, period)

    else:
        markers.append(applied("period", f"{invoice.subscription_id}:{period.start}"))

        def rule(facts: Facts) -> Decision:
            return subscriptions.renew(facts.account.monthly, facts.state, plan, line.quantity, period,
                                       facts.subscriptions)

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
    marker = applied("session", session.session_id)
    # A repeat costs one read instead of a call to the Stripe API.
    if documents.read(marker.path) is not None:
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

    payment_intent = session.payment_intent
    if payment_intent is None:
        log.warning("paid add-on session without a payment intent: refunds cannot be matched",
                    event_id=event.id, user_id=user_id, source=session.session_id)
        return _change(event, user_id, session.session_id, [marker], lambda facts: Decision(APPLIED, entries),
                       session.customer_id)
    path = _payment_path(payment_intent)

    def rule(facts: Facts) -> Decision:
        payment = Payment.from_dict(payment_intent, facts.documents[path])
        if payment.applied:
            # Another session already claimed this payment; its grant stands on its own.
            return Decision(APPLIED, entries)
        payment.user_id, payment.session_id = user_id, session.session_id
        payment.granted = sum(entry.amount for entry in entries)
        after, granted = accounts.grant_and_collect(facts.account, list(entries))
        # Refunds and disputes that came before the session are settled in the grant's commit.
        after, settled = payments.settle(payment, after)
        return Decision(APPLIED, tuple(granted + settled), owed_by=after.owed_by,
                        documents={path: payment.to_dict(facts.now)})

    return _change(event, user_id, session.session_id, [marker], rule, session.customer_id, documents_=[path])


def _payment_path(payment_intent: str) -> str:
    if "/" in payment_intent or payment_intent.startswith("__") or payment_intent in (".", ".."):
        raise CannotApply(f"payment intent {payment_intent[:140]!r} is not a usable id")
    return collections.stripe_payment(payment_intent)


def _money_back(event: Event, payment_intent: str, source: str, marker: Once, note, what: str) -> Handled:
    """Route a refund or dispute fact to its payment's user, or remember it until the session comes.

    `note(payment)` records the fact on a Payment and says whether it is new (`payments.NEW`).
    """
    path = _payment_path(payment_intent)
    for _ in range(PENDING_ATTEMPTS):
        found = documents.read_versioned(path)
        data, version = found if found else (None, None)
        payment = Payment.from_dict(payment_intent, data)
        if payment.applied:
            return _change(event, payment.user_id, source, [marker], _money_back_rule(payment_intent, path, note, what),
                           documents_=[path])
        if note(payment) != payments.NEW:
            return _ignored(event, f"payment {payment_intent} is not an applied add-on payment; this {what} is already remembered")
        document = payment.to_dict(utcnow())
        written = documents.create(path, document) if version is None else documents.update_if_unchanged(path, document, version)
        if written:
            return _ignored(
                event,
                f"payment {payment_intent} is not an applied add-on payment: the {what} is remembered, and a pack "
                "session for it settles it when applied (a subscription payment changes no credits)",
            )
    raise Unavailable(f"payment {payment_intent} kept changing; retry later")


def _money_back_rule(payment_intent: str, path: str, note, what: str):
    def rule(facts: Facts) -> Decision:
        payment = Payment.from_dict(payment_intent, facts.documents[path])
        seen = note(payment)
        if seen == payments.OLDER:
            return Decision(STALE, reason=f"a later {what} of this payment was already applied")
        if seen != payments.NEW:
            return Decision(DUPLICATE, reason=f"this {what} was already applied")
        after, entries = payments.settle(payment, facts.account)
        document = {path: payment.to_dict(facts.now)}
        if entries or after.owed_by != facts.account.owed_by:
            return Decision(APPLIED, tuple(entries), owed_by=after.owed_by, documents=document)
        return Decision(IGNORED, owed_by=after.owed_by, documents=document,
                        reason=f"the {what} changes no credits (claimed {payments.claimed_total(payment)} of "
                               f"{payment.granted} granted)")

    return rule


def charge_refunded(event: Event) -> Handled:
    charge = events.charge(event.object)
    if charge.invoice_id is not None:
        return _ignored(event, f"charge {charge.charge_id} pays invoice {charge.invoice_id}: a subscription payment")
    if charge.payment_intent is None:
        return _ignored(event, f"charge {charge.charge_id} has no payment intent: not an add-on payment")
    marker = applied("refunded", f"{charge.charge_id}:{charge.amount_refunded}")
    return _money_back(event, charge.payment_intent, charge.charge_id, marker,
                       lambda payment: payments.note_charge(payment, charge), "refund")


def _dispute_event(event: Event, closed: bool) -> Handled:
    dispute = events.dispute(event.object)
    if dispute.payment_intent is None:
        return _ignored(event, f"dispute {dispute.dispute_id} names no payment intent: not an add-on payment")
    kind = "dispute_closed" if closed else "dispute"
    marker = applied(kind, dispute.dispute_id)
    return _money_back(event, dispute.payment_intent, dispute.dispute_id, marker,
                       lambda payment: payments.note_dispute(payment, dispute, closed),
                       "dispute's close" if closed else "dispute")


def dispute_created(event: Event) -> Handled:
    return _dispute_event(event, closed=False)


def dispute_closed(event: Event) -> Handled:
    return _dispute_event(event, closed=True)


def subscription_deleted(event: Event) -> Handled:
    subscription = events.subscription(event.object)
    user_id = resolve_user(subscription.user_id, subscription.customer_id)
    ended_at = subscription.ended_at or event.created

    def rule(facts: Facts) -> Decision:
        return subscriptions.cancel(facts.account.monthly, facts.state, ended_at, facts.subscriptions)

    marker = applied("ended", subscription.subscription_id)
    # The event is the cause of the expiry, so its id is the records' source.
    return _change(event, user_id, event.id, [marker], rule, subscription.customer_id, subscription.subscription_id)


def subscription_paused(event: Event) -> Handled:
    subscription = events.subscription(event.object)
    user_id = resolve_user(subscription.user_id, subscription.customer_id)

    def rule(facts: Facts) -> Decision:
        return subscriptions.pause(facts.account.monthly, facts.state, event.created, facts.subscriptions)

    marker = applied("paused", f"{subscription.subscription_id}:{event.created}")
    return _change(event, user_id, event.id, [marker], rule, subscription.customer_id, subscription.subscription_id)


def subscription_resumed(event: Event) -> Handled:
    subscription = events.subscription(event.object)
    user_id = resolve_user(subscription.user_id, subscription.customer_id)

    def rule(facts: Facts) -> Decision:
        return subscriptions.resume(facts.state, event.created)

    marker = applied("resumed", f"{subscription.subscription_id}:{event.created}")
    return _change(event, user_id, event.id, [marker], rule, subscription.customer_id, subscription.subscription_id)


HANDLERS: dict[str, Callable[[Event], Handled]] = {
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_payment_succeeded,
    "checkout.session.completed": checkout_session,
    "checkout.session.async_payment_succeeded": checkout_session,
    "customer.subscription.deleted": subscription_deleted,
    "customer.subscription.paused": subscription_paused,
    "customer.subscription.resumed": subscription_resumed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
    "charge.dispute.closed": dispute_closed,
}
