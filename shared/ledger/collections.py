"""Every Firestore collection the credit system uses, and the paths of its documents.

Rules enforced here:
- a path is built only here, so no raw path string crosses a layer;
- an id taken from a caller or from Stripe goes into a path only as a valid document id: user
  ids are validated at the edge; keys are digested; Stripe and Pub/Sub ids keep their names
  when plain and are digested otherwise (`common.ids.document_id`).
"""

from __future__ import annotations

from ..common import ids

USERS = "users_credits"
TRANSACTIONS = "credits_transactions"
SPEND_KEYS = "spend_idempotency"
ADJUSTMENTS = "credit_adjustments"
PROMO_REJECTED = "promo_rejected"
WEBHOOK_APPLIED = "webhook_applied"
STRIPE_CUSTOMERS = "stripe_customers"
UNAPPLIED_EVENTS = "webhook_unapplied"
# One document per Stripe event received: what Stripe sent and what became of it (its outcome).
WEBHOOK_EVENTS = "webhook_events"
HOLDS = "credit_holds"
SPEND_REFUNDS = "spend_refunds"
# One document per add-on payment (Stripe PaymentIntent): its user, what it granted, what
# refunds and disputes took back, and events that came before its session was applied.
STRIPE_PAYMENTS = "stripe_payments"
# Bookkeeping of scheduled operations, one document each (no credit data).
OPERATIONS = "credits_operations"
# Auto top-up attempts, one document each (CONTRACT section 9).
TOPUPS = "credits_topups"
# One entry per action taken in the support console: who, when, why, what changed, its key.
AUDIT = "credits_audit"
# One witness per commit, created by it alone: how a commit whose reply was lost is known to have
# landed (store.pipeline). Kept a week, then deleted by Firestore's TTL policy.
COMMITS = "credits_commits"


def path(collection: str, doc_id: str) -> str:
    """The path of a document whose id is already a valid document id."""
    return f"{collection}/{doc_id}"


def user(user_id: str) -> str:
    return path(USERS, user_id)


def transaction(transaction_id: str) -> str:
    return path(TRANSACTIONS, transaction_id)


def spend_key(idempotency_key: str) -> str:
    """A spend key's marker: keys may hold any character, so the id is their digest."""
    return path(SPEND_KEYS, ids.spend_key_id(idempotency_key))


def hold(hold_id: str) -> str:
    """A hold's document: hold ids are caller keys, so the id is their digest."""
    return path(HOLDS, ids.spend_key_id(hold_id))


def spend_refunds(spend_key: str) -> str:
    """What has been given back of one spend (or hold) so far, by pool."""
    return path(SPEND_REFUNDS, ids.spend_key_id(spend_key))


def applied_marker(kind: str, key: str) -> str:
    """The marker of a Stripe change applied once per `kind` and key (invoice, period, session...)."""
    return path(WEBHOOK_APPLIED, ids.document_id(f"{kind}:{key}"))


def customer_link(customer_id: str) -> str:
    return path(STRIPE_CUSTOMERS, ids.document_id(customer_id))


def unapplied_event(event_id: str) -> str:
    return path(UNAPPLIED_EVENTS, ids.document_id(event_id))


def webhook_event(event_id: str) -> str:
    return path(WEBHOOK_EVENTS, ids.document_id(event_id))


def topup_attempt(attempt_id: str) -> str:
    return path(TOPUPS, ids.document_id(attempt_id))


def stripe_payment(payment_intent: str) -> str:
    """A payment's document, by its PaymentIntent id."""
    return path(STRIPE_PAYMENTS, ids.document_id(payment_intent))


def audit_entry(idempotency_key: str) -> str:
    return path(AUDIT, ids.audit_entry_id(idempotency_key))


def commit_witness(change_id: str) -> str:
    return path(COMMITS, change_id)


def reconcile_state() -> str:
    """The scheduled reconcile's cursor and the running totals of its current and last pass."""
    return path(OPERATIONS, "reconcile")


def document_id(doc_path: str) -> str:
    """The last segment of a document path."""
    return doc_path.rsplit("/", 1)[1]
