"""The service behind `stripe_webhook`: every verified Stripe event, applied at most once, journaled.

One linear path per event: parse (`events.envelope`), plan (`plans.plan`: the named decision,
its typed inputs, what it needs), gather (all I/O before the commit: the customer's link, the
Stripe API's line items, a payment's document), build (`plans.build`, pure), commit, journal.

Rules enforced here:
- every change is one `change_user` commit holding the pools, the records, the subscription
  states, the journal entry and the markers that make it happen once (`webhook_applied/invoice:{id}`,
  plus `period:{subscription_id}:{period_start}` for a renewal, `session:{session_id}` for an
  add-on checkout, `ended:{subscription_id}` for a cancellation, `paused:`/`resumed:{subscription_id}:{created}`,
  `refunded:{charge_id}:{amount_refunded}`, `dispute:`/`dispute_closed:{dispute_id}`); redeliveries,
  fresh event ids included, find the marker (or the payment's own record of the fact) and answer
  `duplicate`;
- every event is journaled (`webhook_events/{event_id}`) with its outcome: in its commit when it
  changes anything, else by one batched write after the decision, which also drops a kept
  unapplied copy (any outcome but `unapplied`), teaches a customer-to-user link, or keeps the
  event as unapplied; a fault in that write is a 503 with nothing written;
- an event that cannot be applied is kept with its reason and raw body in `webhook_unapplied`
  and answered `unapplied`; a redelivery or `replay_unapplied` applies it once the cause is fixed;
- a transient fault (Firestore, Stripe API) raises before anything is written, so Stripe's
  retry applies the event.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Optional

from pydantic import TypeAdapter, ValidationError

from ..common import log
from ..common.errors import CannotApply, CreditsError, Unavailable
from ..common.validation import UserId, storable
from ..ledger import collections
from ..store import documents
from ..store.client import utcnow
from ..store.commit import change_user
from ..store.documents import Write
from . import catalog, customers, events, plans, stripe_api, unapplied
from .customers import link_document
from .decisions import decide_event
from .journal import JournalEntry, journal_fields
from .outcomes import EventResult, Outcome
from .plans import Answer, EventChange, Gathered, Plan, RememberFact

# How often a payment's document is re-read when another write raced the one remembering a fact.
PENDING_ATTEMPTS = 8

_USER_ID = TypeAdapter(UserId)


def handle(body: dict[str, Any], raw: str, kept_copy: bool = False) -> EventResult:
    """Apply one verified event (decoded `body`, exact `raw` text) and say what became of it.

    `kept_copy` says the caller is replaying the kept unapplied copy.
    """
    event = events.envelope(body)
    journal = plans.journal_entry(event, raw)
    writes: list[Write] = []
    journaled = False
    try:
        planned = plans.plan(event, raw, catalog.get())
        if isinstance(planned, Answer):
            result = _answer(journal, planned, writes)
        else:
            result, journaled = _run(planned)
    except CannotApply as exc:
        result = EventResult(event.id, event.type, Outcome.UNAPPLIED, exc.user_id, exc.reason)
        writes.append(_keep(journal, exc, kept_copy))
    if not journaled:
        documents_written = documents.write_all(_journal_writes(journal, result) + writes)
        if not documents_written:
            raise Unavailable("the event's journal entry could not be written; retry later")
    log.log(
        "WARNING" if result.outcome == Outcome.UNAPPLIED else "INFO",
        "stripe event " + result.outcome,
        event_id=event.id,
        event_type=event.type,
        user_id=result.user_id,
        outcome=str(result.outcome),
        reason=result.reason or None,
        customer_id=journal.customer_id,
    )
    return result


def resolve_user(user_id: Optional[str], customer_id: Optional[str]) -> str:
    """The event's user: its own `user_id` if usable, else the user linked to its customer."""
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


def gather(plan: Plan) -> Gathered:
    """Everything the plan needs read before its commit: the only I/O before it."""
    if plan.payment_intent is not None and plan.session_id is None:
        found = documents.read_versioned(plans.payment_path(plan.payment_intent))
        data, version = found if found else (None, None)
        return Gathered(payment=data, payment_version=version)
    user_id = resolve_user(plan.user_hint, plan.customer_id)
    if plan.session_id is None:
        return Gathered(user_id)
    # A repeat costs one read instead of a call to the Stripe API.
    if documents.read(plan.markers[0].path) is not None:
        return Gathered(user_id, already_applied=True)
    items = events.line_items(stripe_api.checkout_line_items(plan.session_id))
    return Gathered(user_id, items, catalog=catalog.get())


def _run(plan: Plan) -> tuple[EventResult, bool]:
    """Gather, build and commit; the result and whether its commit journaled it."""
    journal = plan.journal
    for _ in range(PENDING_ATTEMPTS):
        built = plans.build(plan, gather(plan))
        if isinstance(built, Answer):
            return _result(journal, built.outcome, built.user_id, built.reason), False
        if isinstance(built, EventChange):
            decided = change_user(built.user_id, partial(decide_event, spec=built), reads=built.reads,
                                  operation=f"stripe:{journal.event_type}")
            decision = decided.decision
            return _result(journal, decision.outcome, built.user_id, decision.reason), decided.journaled
        result = _result(journal, Outcome.IGNORED, None, built.reason)
        if documents.write_all([_remembered(built)] + _journal_writes(journal, result)):
            return result, True
    raise Unavailable(f"payment {plan.payment_intent} kept changing; retry later")


def _result(journal: JournalEntry, outcome: Outcome, user_id: Optional[str], reason: str) -> EventResult:
    return EventResult(journal.event_id, journal.event_type, outcome, user_id, reason)


def _answer(journal: JournalEntry, answer: Answer, writes: list[Write]) -> EventResult:
    if answer.link is not None:
        customer_id, user_id = answer.link
        user_id = resolve_user(user_id, None)
        writes.append(Write(collections.customer_link(customer_id),
                            link_document(customer_id, user_id, journal.event_id, utcnow())))
    return _result(journal, answer.outcome, answer.user_id, answer.reason)


def _remembered(fact: RememberFact) -> Write:
    document = fact.payment.to_dict(utcnow())
    if fact.version is None:
        return Write(fact.path, document, create=True)
    return Write(fact.path, document, version=fact.version)


def _journal_writes(journal: JournalEntry, result: EventResult) -> list[Write]:
    fields = journal_fields(journal, result.outcome, result.reason, result.user_id, utcnow())
    fields["deliveries"] = documents.increment(1)
    writes = [Write(journal.path, fields, merge=True)]
    if result.outcome not in (Outcome.UNAPPLIED, Outcome.FAILED):
        # A kept unapplied copy goes once the event has any other outcome (absent: no-op).
        writes.append(Write(unapplied.path(journal.event_id), delete=True))
    return writes


def _keep(journal: JournalEntry, exc: CannotApply, kept_copy: bool) -> Write:
    """The kept unapplied copy, refreshed: a replay's reason goes beside the first, never over it
    (the kept reason is what happened to the event; a replay's may be the replayer's setup)."""
    fields = {"event_type": journal.event_type, "raw": journal.raw, "customer_id": journal.customer_id,
              "user_id": exc.user_id, "event_id": journal.event_id,
              "last_replay_reason" if kept_copy else "reason": exc.reason}
    data = storable(fields)
    data.update(last_attempt_at=utcnow(), attempts=documents.increment(1))
    return Write(unapplied.path(journal.event_id), data, merge=True)


def replay_unapplied(event_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Apply kept unapplied events again: all of them, or the one with `event_id`.

    Each is applied at most once however often it is replayed (its markers see to that).
    Returns one dict per kept event tried, in order: `event_id`, `event_type`, `outcome`
    (`applied`, `duplicate`, `stale`, `ignored`, `unapplied`, or `failed` for a transient fault,
    which leaves the copy for the next replay), `user_id` and `reason`.
    """
    results = []
    for record in unapplied.pending(event_id):
        raw = record.get("raw") or ""
        try:
            result = handle(json.loads(raw), raw, kept_copy=True)
        except CreditsError as exc:
            if not exc.transient:
                raise
            result = EventResult(record["event_id"], record.get("event_type") or "", Outcome.FAILED, reason=exc.message)
        results.append(result.as_dict())
    return results
