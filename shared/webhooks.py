"""The service behind `stripe_webhook`: apply each verified Stripe event exactly once.

Rules enforced here:
- every change is one `store.change_user` commit holding the pools, the records, the
  subscription state and the marker that makes it happen once:
  `webhook_applied/invoice:{invoice_id}` for every invoice, plus
  `webhook_applied/period:{subscription_id}:{period_start}` for a renewal (once per period even
  if Stripe issued two invoices for it), `webhook_applied/session:{session_id}` for an add-on
  checkout, `webhook_applied/ended:{subscription_id}` for a cancellation. Redeliveries, fresh
  event ids included, find the marker and answer `duplicate`;
- the state of each subscription lives on the user document, field `stripe_subscriptions`
  (a map by subscription id: `price_id`, `period_start`/`period_end` of the last period renewed,
  `granted` for that period, `canceled_at`), so it moves in the same conditioned commit as the
  pools it decides about; the pure rules in `renewals` read and return it;
- the user is `metadata.user_id` of the subscription (on the invoice), `client_reference_id` or
  `metadata.user_id` of a Checkout Session, or else the user linked to the Stripe customer
  (`stripe_customers/{customer_id}`, learned from every event that names both);
- an event that cannot be applied (unknown user, no catalog price, an object that cannot be
  read, a Stripe API refusal) is kept in `webhook_unapplied/{event_id}` with its reason and
  raw body, answered `unapplied`, and applied by a redelivery or by `replay_unapplied` once the
  cause is fixed; the record is dropped once the event has any other outcome;
- a transient fault (Firestore, Stripe API) raises before anything is written, so Stripe's
  retry applies the event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from pydantic import TypeAdapter, ValidationError

from . import catalog, core, ledger, log, renewals, store, stripe_api, stripe_events
from .errors import CreditsError, StripeRefused
from .renewals import APPLIED, DUPLICATE, IGNORED, UNAPPLIED, Decision, SubscriptionState
from .stripe_events import Event, UnreadableEvent
from .validation import UserId

SUBSCRIPTIONS_FIELD = "stripe_subscriptions"
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


class _Unapplied(Exception):
    def __init__(self, reason: str, user_id: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason, self.user_id = reason, user_id


def handle(body: dict[str, Any], raw: str) -> Outcome:
    """Apply one verified event (decoded `body`, exact `raw` text) and say what became of it."""
    event = stripe_events.envelope(body)
    handler = _HANDLERS.get(event.type)
    customer_id = _customer_of(event)
    try:
        if handler is None:
            outcome = Outcome(event.id, event.type, IGNORED, reason="not an event type that changes credits")
        else:
            outcome = handler(event)
    except (_Unapplied, UnreadableEvent, StripeRefused) as exc:
        reason = exc.reason if isinstance(exc, _Unapplied) else (exc.message if isinstance(exc, CreditsError) else str(exc))
        user_id = exc.user_id if isinstance(exc, _Unapplied) else None
        store.record_unapplied(
            event.id,
            {"event_type": event.type, "reason": reason, "raw": raw, "customer_id": customer_id, "user_id": user_id},
        )
        outcome = Outcome(event.id, event.type, UNAPPLIED, user_id, reason)
    log.log(
        "WARNING" if outcome.outcome == UNAPPLIED else "INFO",
        "stripe event " + outcome.outcome,
        event_id=event.id,
        event_type=event.type,
        user_id=outcome.user_id,
        outcome=outcome.outcome,
        reason=outcome.reason or None,
        customer_id=customer_id,
    )
    return outcome


def replay_unapplied(event_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Apply stored unapplied events again: all of them, or the one with `event_id`.

    Each is applied at most once however often it is replayed (its markers see to that).
    Returns one dict per stored event tried, in order: `event_id`, `event_type`, `outcome`
    (`applied`, `duplicate`, `stale`, `ignored`, `unapplied`, or `failed` for a transient fault,
    which leaves the record for the next replay), `user_id` and `reason`. An event that ends in
    anything but `unapplied` or `failed` is removed from `webhook_unapplied`.
    """
    results = []
    for record in store.unapplied_events(event_id):
        raw = record.get("raw") or ""
        try:
            outcome = handle(json.loads(raw), raw)
        except CreditsError as exc:
            if not exc.transient:
                raise
            outcome = Outcome(record["event_id"], record.get("event_type") or "", "failed", reason=exc.message)
        if outcome.outcome not in (UNAPPLIED, "failed"):
            store.forget_unapplied(outcome.event_id)
        results.append(outcome.as_dict())
    return results


# --- resolution ------------------------------------------------------------------------------


def _customer_of(event: Event) -> Optional[str]:
    customer = event.object.get("customer")
    return customer if isinstance(customer, str) and customer else None


def _resolve_user(user_id: Optional[str], customer_id: Optional[str]) -> str:
    if user_id is not None:
        try:
            return _USER_ID.validate_python(user_id)
        except ValidationError:
            raise _Unapplied(f"metadata user_id {user_id[:140]!r} is not a usable user id") from None
    linked = store.customer_user(customer_id) if customer_id else None
    if linked:
        return linked
    raise _Unapplied(
        f"unknown user: no metadata.user_id and no user linked to customer {customer_id}"
        if customer_id
        else "unknown user: no metadata.user_id and no customer"
    )


# --- applying one change ---------------------------------------------------------------------


Rule = Callable[[core.Account, Optional[SubscriptionState]], Decision]


def _apply(
    event: Event,
    user_id: str,
    source: str,
    markers: list[str],
    rule: Rule,
    customer_id: Optional[str] = None,
    subscription_id: Optional[str] = None,
) -> Outcome:
    """Run `rule` on the user's account and subscription state, and commit its decision once."""
    link_path = store.customer_link_path(customer_id) if customer_id else None
    unapplied_path = store.unapplied_path(event.id)
    reads = markers + [unapplied_path] + ([link_path] if link_path else [])

    def decide(snap: store.Snapshot) -> store.Change[tuple[Decision, bool]]:
        was_unapplied = snap.markers[unapplied_path] is not None
        duplicate = store.Change(result=(Decision(DUPLICATE, reason="already applied"), was_unapplied))
        # The first marker is the source's own (this invoice, session, subscription end).
        if snap.markers[markers[0]] is not None:
            return duplicate
        subscriptions = dict((snap.user_data or {}).get(SUBSCRIPTIONS_FIELD) or {})
        state = renewals.state_of(subscriptions, subscription_id) if subscription_id else None
        # A legacy document is migrated in the same commit as its first change.
        account, migration = core.migrate(snap.account)
        decision = rule(account, state)
        if decision.outcome not in (APPLIED, IGNORED) or (not decision.entries and decision.state is None):
            return store.Change(result=(decision, was_unapplied))
        # Any further marker guards a wider key (a subscription's period, whichever invoice).
        if any(snap.markers[path] is not None for path in markers[1:]):
            return duplicate
        entries = list(decision.entries)
        user_fields = {}
        if decision.state is not None and subscription_id:
            subscriptions[subscription_id] = decision.state.to_dict()
            user_fields[SUBSCRIPTIONS_FIELD] = subscriptions
        marker = {
            "event_id": event.id,
            "event_type": event.type,
            "user_id": user_id,
            "outcome": decision.outcome,
            "created_at": snap.now,
        }
        overwrite = {}
        if link_path and (snap.markers[link_path] or {}).get("user_id") != user_id:
            overwrite[link_path] = store.customer_link(customer_id, user_id, event.id, snap.now)
        # The kept unapplied copy goes in the same commit that finally applies the event.
        return store.Change(
            result=(decision, False),
            account=core.apply(account, entries),
            records=ledger.records(user_id, migration + entries, source, snap.now),
            create={path: marker for path in markers},
            overwrite=overwrite,
            delete=[unapplied_path] if was_unapplied else [],
            user_fields=user_fields,
        )

    decision, was_unapplied = store.change_user(user_id, decide, markers=reads, operation=f"stripe:{event.type}")
    if was_unapplied:
        store.forget_unapplied(event.id)
    return Outcome(event.id, event.type, decision.outcome, user_id, decision.reason)


# --- one handler per event type --------------------------------------------------------------


def _invoice_paid(event: Event) -> Outcome:
    invoice = stripe_events.invoice(event.object)
    reason = invoice.billing_reason
    if reason not in RENEWAL_REASONS and reason != UPGRADE_REASON:
        return Outcome(event.id, event.type, IGNORED, reason=f"billing_reason {reason} grants no credits")
    plans = catalog.get()
    pair = renewals.upgrade_line(invoice.lines, plans) if reason == UPGRADE_REASON else renewals.renewal_line(invoice.lines, plans)
    if pair is None:
        prices = renewals.unknown_prices(invoice.lines)
        raise _Unapplied(f"no line of invoice {invoice.invoice_id} has a catalog plan price (prices: {', '.join(prices) or 'none'})")
    if invoice.subscription_id is None:
        raise _Unapplied(f"invoice {invoice.invoice_id} names no subscription")
    user_id = _resolve_user(invoice.user_id, invoice.customer_id)
    line, plan = pair
    period = line.period
    markers = [store.applied_marker_path("invoice", invoice.invoice_id)]
    if reason == UPGRADE_REASON:

        def rule(account: core.Account, state: Optional[SubscriptionState]) -> Decision:
            return renewals.upgrade(state, plan, line.quantity, period)

    else:
        markers.append(store.applied_marker_path("period", f"{invoice.subscription_id}:{period.start}"))

        def rule(account: core.Account, state: Optional[SubscriptionState]) -> Decision:
            return renewals.renew(account.monthly, state, plan, line.quantity, period)

    return _apply(event, user_id, invoice.invoice_id, markers, rule, invoice.customer_id, invoice.subscription_id)


def _invoice_payment_succeeded(event: Event) -> Outcome:
    return Outcome(event.id, event.type, IGNORED, reason="invoice.paid carries this invoice")


def _checkout_session(event: Event) -> Outcome:
    session = stripe_events.checkout_session(event.object)
    if session.mode != "payment" or session.payment_status != "paid":
        # Nothing to grant yet (or ever), but the session still says whose customer this is.
        if session.customer_id and session.user_id:
            store.link_customer(session.customer_id, _resolve_user(session.user_id, None), event.id)
        why = (
            f"mode {session.mode} grants no credits here"
            if session.mode != "payment"
            else f"payment_status {session.payment_status}: nothing until it is paid"
        )
        return Outcome(event.id, event.type, IGNORED, session.user_id, why)
    user_id = _resolve_user(session.user_id, session.customer_id)
    marker = store.applied_marker_path("session", session.session_id)
    # A repeat costs one read instead of a call to the Stripe API.
    if store.read_document(marker) is not None:
        if store.read_document(store.unapplied_path(event.id)) is not None:
            store.forget_unapplied(event.id)
        return Outcome(event.id, event.type, DUPLICATE, user_id, "already applied")
    items = stripe_events.line_items(stripe_api.checkout_line_items(session.session_id))
    entries, others = renewals.addon_entries(items, catalog.get())
    if not entries:
        raise _Unapplied(
            f"no line item of session {session.session_id} is a catalog add-on (prices: {', '.join(others) or 'none'})",
            user_id,
        )
    if others:
        log.warning("line items without credits", event_id=event.id, user_id=user_id, prices=others)

    def rule(account: core.Account, state: Optional[SubscriptionState]) -> Decision:
        return Decision(APPLIED, entries)

    return _apply(event, user_id, session.session_id, [marker], rule, session.customer_id)


def _subscription_deleted(event: Event) -> Outcome:
    subscription = stripe_events.subscription(event.object)
    user_id = _resolve_user(subscription.user_id, subscription.customer_id)
    ended_at = subscription.ended_at or event.created

    def rule(account: core.Account, state: Optional[SubscriptionState]) -> Decision:
        return renewals.cancel(account.monthly, state, ended_at)

    marker = store.applied_marker_path("ended", subscription.subscription_id)
    # The event is the cause of the expiry, so its id is the records' source.
    return _apply(event, user_id, event.id, [marker], rule, subscription.customer_id, subscription.subscription_id)


_HANDLERS: dict[str, Callable[[Event], Outcome]] = {
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_payment_succeeded,
    "checkout.session.completed": _checkout_session,
    "checkout.session.async_payment_succeeded": _checkout_session,
    "customer.subscription.deleted": _subscription_deleted,
}
