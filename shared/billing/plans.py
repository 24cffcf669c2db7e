"""Planning a Stripe event: what it needs before its decision, and what to do once that is gathered.

Rules enforced here (all pure: no I/O):
- `plan(event)` reads the event's object (`events`) and names, for its type, the decision to
  run, its typed inputs, its source and markers, and what must be gathered first: the user
  (`metadata.user_id`, a session's `client_reference_id`, or the customer's link), a session's
  line items (from the Stripe API), or a payment's document (whose user a refund or dispute is);
  an event that needs no decision is answered at once (`Answer`);
- `build(plan, gathered)` turns a plan and what was gathered into one of three things to
  commit: an `EventChange` (one user's conditioned commit), a `RememberFact` (a refund or dispute
  of a payment whose session is not applied yet, written to the payment over the version read),
  or an `Answer` (nothing to change);
- the user is `metadata.user_id` of the subscription (on the invoice), `client_reference_id` or
  `metadata.user_id` of a Checkout Session, or else the user linked to the Stripe customer; a
  refund or dispute goes to the user of its payment (`stripe_payments/{payment_intent}`);
- an event that cannot be applied (unknown user, no catalog price, an object that cannot be
  read) raises `CannotApply`; a charge naming an invoice pays a subscription: `ignored`;
- `payment_intent.succeeded` and `.payment_failed` carrying `metadata.topup_attempt_id` settle
  that auto top-up attempt (`decide_topup`, reading the attempt and, on success, the payment's
  document); without it they are `ignored`;
- a type without a planner is `ignored`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from ..common.errors import CannotApply
from ..common.validation import text_problem
from ..ledger import autotopup, collections
from ..ledger.idempotency import Once
from . import addons, decisions, events, subscriptions
from .catalog import Catalog
from .decisions import DisputeFact, EventChange, PackPurchase, PlanLine, Refund, SubscriptionEnd, TopupResult
from .events import Event
from .journal import JournalEntry
from .outcomes import Outcome
from .payments import Payment

RENEWAL_REASONS = ("subscription_create", "subscription_cycle")
UPGRADE_REASON = "subscription_update"


@dataclass(frozen=True)
class Answer:
    """An outcome that needs no user's commit, and a customer-to-user link it teaches, if any."""

    outcome: Outcome
    reason: str
    user_id: Optional[str] = None
    link: Optional[tuple[str, str]] = None


@dataclass(frozen=True)
class Plan:
    """What an event's decision needs: the decision and its inputs, and what to gather first."""

    journal: JournalEntry
    decide: Callable[..., Any]
    inputs: Any
    source: str
    markers: tuple[Once, ...]
    # The user named by the event (validated when gathered), else the customer's link decides.
    user_hint: Optional[str] = None
    customer_id: Optional[str] = None
    subscription_id: Optional[str] = None
    # A pack: its session's line items are read from the Stripe API (unless its marker is there).
    session_id: Optional[str] = None
    # Money back: the payment's document says whose it is.
    payment_intent: Optional[str] = None
    # A dispute's close (the remembered fact's kind).
    closed: bool = False


@dataclass(frozen=True)
class Gathered:
    """What `gather` read for a plan: all of the event's I/O before its commit."""

    user_id: Optional[str] = None
    line_items: tuple[events.LineItem, ...] = ()
    already_applied: bool = False
    payment: Optional[dict[str, Any]] = None
    payment_version: Any = None
    catalog: Optional[Catalog] = None


@dataclass(frozen=True)
class RememberFact:
    """A refund or dispute of a payment not applied yet: the payment document to write over `version`."""

    path: str
    payment: Payment
    version: Any
    reason: str


Planned = Union[Plan, Answer]
Built = Union[EventChange, RememberFact, Answer]


def applied(kind: str, key: str) -> Once:
    """The record that a Stripe fact of `kind` (an invoice, a period, a session...) was applied."""
    return Once.fact(f"stripe:{kind}", key, collections.applied_marker(kind, key))


def payment_path(payment_intent: str) -> str:
    if "/" in payment_intent or payment_intent.startswith("__") or payment_intent in (".", ".."):
        raise CannotApply(f"payment intent {payment_intent[:140]!r} is not a usable id")
    return collections.stripe_payment(payment_intent)


def customer_of(event: Event) -> Optional[str]:
    """The event object's customer id, if it is usable text (for logs and the journal)."""
    customer = event.object.get("customer")
    return customer if isinstance(customer, str) and customer and not text_problem(customer) else None


def journal_entry(event: Event, raw: str) -> JournalEntry:
    return JournalEntry(event.id, event.type, event.created, event.api_version, customer_of(event), raw)


# --- one planner per event type ------------------------------------------------------------------


def _invoice_paid(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    invoice = events.invoice(event.object)
    reason = invoice.billing_reason
    if reason not in RENEWAL_REASONS and reason != UPGRADE_REASON:
        return Answer(Outcome.IGNORED, f"billing_reason {reason} grants no credits", invoice.user_id)
    pair = (subscriptions.upgrade_line(invoice.lines, catalog) if reason == UPGRADE_REASON
            else subscriptions.renewal_line(invoice.lines, catalog))
    if pair is None:
        prices = subscriptions.unknown_prices(invoice.lines)
        raise CannotApply(
            f"no line of invoice {invoice.invoice_id} has a catalog plan price (prices: {', '.join(prices) or 'none'})"
        )
    if invoice.subscription_id is None:
        raise CannotApply(f"invoice {invoice.invoice_id} names no subscription")
    line, plan = pair
    markers = [applied("invoice", invoice.invoice_id)]
    if reason == UPGRADE_REASON:
        decide = decisions.decide_upgrade
        inputs = PlanLine(plan, line.quantity, line.period, invoice.subscription_id, invoice.invoice_id)
    else:
        decide = decisions.decide_renewal
        key = f"{invoice.subscription_id}:{line.period.start}"
        inputs = PlanLine(plan, line.quantity, line.period, invoice.subscription_id, key)
        markers.append(applied("period", key))
    return Plan(journal, decide, inputs, invoice.invoice_id, tuple(markers), invoice.user_id, invoice.customer_id,
                invoice.subscription_id)


def _invoice_payment_succeeded(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return Answer(Outcome.IGNORED, "invoice.paid carries this invoice")


def _checkout_session(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    session = events.checkout_session(event.object)
    if session.mode != "payment" or session.payment_status != "paid":
        why = (f"mode {session.mode} grants no credits here" if session.mode != "payment"
               else f"payment_status {session.payment_status}: nothing until it is paid")
        # Nothing to grant yet (or ever), but the session still says whose customer this is.
        link = (session.customer_id, session.user_id) if session.customer_id and session.user_id else None
        return Answer(Outcome.IGNORED, why, session.user_id, link)
    return Plan(journal, decisions.decide_pack_purchase, None, session.session_id,
                (applied("session", session.session_id),), session.user_id, session.customer_id,
                session_id=session.session_id, payment_intent=session.payment_intent)


def _charge_refunded(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    charge = events.charge(event.object)
    if charge.invoice_id is not None:
        return Answer(Outcome.IGNORED, f"charge {charge.charge_id} pays invoice {charge.invoice_id}: a subscription payment")
    if charge.payment_intent is None:
        return Answer(Outcome.IGNORED, f"charge {charge.charge_id} has no payment intent: not an add-on payment")
    path = payment_path(charge.payment_intent)
    return Plan(journal, decisions.decide_refund, Refund(charge, charge.payment_intent, path), charge.charge_id,
                (applied("refunded", f"{charge.charge_id}:{charge.amount_refunded}"),),
                payment_intent=charge.payment_intent)


def _dispute(event: Event, journal: JournalEntry, closed: bool) -> Planned:
    dispute = events.dispute(event.object)
    if dispute.payment_intent is None:
        return Answer(Outcome.IGNORED, f"dispute {dispute.dispute_id} names no payment intent: not an add-on payment")
    kind = "dispute_closed" if closed else "dispute"
    decide = decisions.decide_dispute_closed if closed else decisions.decide_dispute
    path = payment_path(dispute.payment_intent)
    return Plan(journal, decide, DisputeFact(dispute, dispute.payment_intent, path), dispute.dispute_id,
                (applied(kind, dispute.dispute_id),), payment_intent=dispute.payment_intent, closed=closed)


def _dispute_created(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return _dispute(event, journal, closed=False)


def _dispute_closed(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return _dispute(event, journal, closed=True)


def _payment_intent(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    intent = events.payment_intent(event.object)
    if intent.attempt_id is None:
        return Answer(Outcome.IGNORED, f"payment intent {intent.payment_intent} is not an auto top-up's")
    if event.type == "payment_intent.succeeded":
        outcome = autotopup.ChargeOutcome(autotopup.SUCCEEDED, payment_intent=intent.payment_intent)
    else:
        outcome = autotopup.outcome_of_error(intent.error_code, intent.decline_code, intent.advice_code,
                                             intent.payment_intent)
    if intent.user_id is None:
        raise CannotApply(f"payment intent {intent.payment_intent} names no metadata.user_id")
    result = TopupResult(intent.attempt_id, outcome, intent.client_secret)
    return Plan(journal, decisions.decide_topup, result, intent.payment_intent,
                (applied("payment_intent", f"{intent.payment_intent}:{event.type}"),), intent.user_id)


def _subscription_event(event: Event, journal: JournalEntry, decide, marker_kind: str, ended: bool = False) -> Planned:
    subscription = events.subscription(event.object)
    if ended:
        # One end per subscription, at the time Stripe says it ended.
        at, key = subscription.ended_at or event.created, subscription.subscription_id
    else:
        at, key = event.created, f"{subscription.subscription_id}:{event.created}"
    # The event is the cause of the expiry, so its id is the records' source.
    return Plan(journal, decide, SubscriptionEnd(at, subscription.subscription_id, key), event.id,
                (applied(marker_kind, key),), subscription.user_id,
                subscription.customer_id, subscription.subscription_id)


def _subscription_deleted(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return _subscription_event(event, journal, decisions.decide_cancellation, "ended", ended=True)


def _subscription_paused(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return _subscription_event(event, journal, decisions.decide_pause, "paused")


def _subscription_resumed(event: Event, journal: JournalEntry, catalog: Catalog) -> Planned:
    return _subscription_event(event, journal, decisions.decide_resume, "resumed")


PLANNERS: dict[str, Callable[[Event, JournalEntry, Catalog], Planned]] = {
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_payment_succeeded,
    "checkout.session.completed": _checkout_session,
    "checkout.session.async_payment_succeeded": _checkout_session,
    "customer.subscription.deleted": _subscription_deleted,
    "customer.subscription.paused": _subscription_paused,
    "customer.subscription.resumed": _subscription_resumed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
}


def plan(event: Event, raw: str, catalog: Catalog) -> Planned:
    """What the event needs: a plan to gather and decide, or an answer at once."""
    planner = PLANNERS.get(event.type)
    if planner is None:
        return Answer(Outcome.IGNORED, "not an event type that changes credits")
    return planner(event, journal_entry(event, raw), catalog)


# --- from what was gathered to what to commit -----------------------------------------------------


def _change(plan_: Plan, user_id: str, inputs: Any, documents: tuple[str, ...] = ()) -> EventChange:
    return EventChange(
        journal=plan_.journal,
        user_id=user_id,
        source=plan_.source,
        markers=plan_.markers,
        decide=plan_.decide,
        inputs=inputs,
        unapplied_path=collections.unapplied_event(plan_.journal.event_id),
        customer_id=plan_.customer_id,
        link_path=collections.customer_link(plan_.customer_id) if plan_.customer_id else None,
        subscription_id=plan_.subscription_id,
        documents=documents,
    )


def build(plan_: Plan, gathered: Gathered) -> Built:
    """What to commit for a plan, given what was gathered for it."""
    if plan_.session_id is not None:
        return _pack(plan_, gathered)
    if isinstance(plan_.inputs, TopupResult):
        return _change(plan_, gathered.user_id, plan_.inputs, plan_.inputs.documents)
    if plan_.payment_intent is not None:
        return _money_back(plan_, gathered)
    return _change(plan_, gathered.user_id, plan_.inputs)


def _pack(plan_: Plan, gathered: Gathered) -> Built:
    if gathered.already_applied:
        return Answer(Outcome.DUPLICATE, "already applied", gathered.user_id)
    entries, others = addons.addon_entries(gathered.line_items, gathered.catalog)
    if not entries:
        raise CannotApply(
            f"no line item of session {plan_.session_id} is a catalog add-on (prices: {', '.join(others) or 'none'})",
            gathered.user_id,
        )
    path = payment_path(plan_.payment_intent) if plan_.payment_intent else None
    pack = PackPurchase(entries, gathered.user_id, plan_.session_id, plan_.payment_intent, path)
    return _change(plan_, gathered.user_id, pack, (path,) if path else ())


def _money_back(plan_: Plan, gathered: Gathered) -> Built:
    fact = plan_.inputs
    payment = Payment.from_dict(plan_.payment_intent, gathered.payment)
    if payment.applied:
        return _change(plan_, payment.user_id, fact, (fact.payment_path,))
    what = "dispute's close" if plan_.closed else ("dispute" if isinstance(fact, DisputeFact) else "refund")
    if not decisions.decide_remembered_fact(payment, fact, plan_.closed):
        return Answer(Outcome.IGNORED,
                      f"payment {plan_.payment_intent} is not an applied add-on payment; this {what} is already remembered")
    return RememberFact(
        fact.payment_path, payment, gathered.payment_version,
        f"payment {plan_.payment_intent} is not an applied add-on payment: the {what} is remembered, and a pack "
        "session for it settles it when applied (a subscription payment changes no credits)",
    )
