"""The service behind `stripe_webhook`: apply each verified Stripe event exactly once.

Rules enforced here:
- every change is one `change_user` commit holding the pools, the records, the subscription
  state and the markers that make it happen once (`webhook_applied/invoice:{invoice_id}`, plus
  `period:{subscription_id}:{period_start}` for a renewal, `session:{session_id}` for an add-on
  checkout, `ended:{subscription_id}` for a cancellation, `paused:`/`resumed:{subscription_id}:{created}`,
  `refunded:{charge_id}:{amount_refunded}`, `dispute:`/`dispute_closed:{dispute_id}`); redeliveries,
  fresh event ids included, find the marker (or the payment's own record of the fact) and answer
  `duplicate`;
- an event that cannot be applied is kept with its reason and raw body and answered
  `unapplied`; a redelivery or `replay_unapplied` applies it once the cause is fixed, and its
  kept copy goes once it has any other outcome (`unapplied.settle`);
- a transient fault (Firestore, Stripe API) raises before anything is written, so Stripe's
  retry applies the event.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..common import log
from ..common.errors import CannotApply, CreditsError
from ..store.commit import change_user
from . import events, unapplied
from .decisions import EventChange, decide_event
from .handlers import HANDLERS, Answered, Outcome, customer_of
from .subscriptions import IGNORED, UNAPPLIED


def handle(body: dict[str, Any], raw: str, kept_copy: bool = False) -> Outcome:
    """Apply one verified event (decoded `body`, exact `raw` text) and say what became of it.

    `kept_copy` says the caller knows the event is kept as unapplied (a replay).
    """
    event = events.envelope(body)
    handler = HANDLERS.get(event.type)
    customer_id = customer_of(event)
    try:
        if handler is None:
            answered = Answered(Outcome(event.id, event.type, IGNORED, reason="not an event type that changes credits"))
        else:
            handled = handler(event)
            answered = _commit(handled) if isinstance(handled, EventChange) else handled
        outcome = answered.outcome
        unapplied.settle(event.id, outcome.outcome, answered.kept_copy or kept_copy)
    except CannotApply as exc:
        fields = {"event_type": event.type, "raw": raw, "customer_id": customer_id, "user_id": exc.user_id}
        # A replay that still cannot apply says why beside the first reason, never over it: the
        # kept reason is what happened to the event, the replay's may be the replayer's setup.
        fields["last_replay_reason" if kept_copy else "reason"] = exc.reason
        unapplied.keep(event.id, fields)
        outcome = Outcome(event.id, event.type, UNAPPLIED, exc.user_id, exc.reason)
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


def _commit(spec: EventChange) -> Answered:
    decided = change_user(spec.user_id, lambda snap: decide_event(snap, spec), reads=spec.reads,
                          operation=f"stripe:{spec.event_type}")
    outcome = Outcome(spec.event_id, spec.event_type, decided.decision.outcome, spec.user_id, decided.decision.reason)
    return Answered(outcome, decided.kept_copy)


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
            outcome = handle(json.loads(raw), raw, kept_copy=True)
        except CreditsError as exc:
            if not exc.transient:
                raise
            outcome = Outcome(record["event_id"], record.get("event_type") or "", unapplied.FAILED, reason=exc.message)
        results.append(outcome.as_dict())
    return results
