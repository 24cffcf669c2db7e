"""The pure decisions of Stripe events: one named decision per event type, and the one commit shape.

Rules enforced here:
- each credit-changing event type has its own module-level decision, a function of plain values
  (`Facts`, and the event's typed inputs) returning a `Decision`: `decide_renewal`,
  `decide_upgrade`, `decide_cancellation`, `decide_pause`, `decide_resume`,
  `decide_pack_purchase`, `decide_refund`, `decide_dispute`, `decide_dispute_closed`; and
  `decide_remembered_fact` for a refund or dispute of a payment whose session is not applied yet;
- an event changes credits once per source: its first marker is the source's own (this invoice,
  session, subscription end) and any further marker guards a wider key (a subscription's period,
  whichever invoice carries it); any marker present is `duplicate`;
- a decision sees the account (a legacy one migrated first, in the same commit) and the state of
  every subscription of the user, which lives on the user document (`stripe_subscriptions`, a map
  by subscription id) and so moves in the same conditioned commit as the pools it decides about;
- `decide_event` turns a decision into one `Change`: the pools, the records with the event's
  source, every marker, the subscription states, the customer-to-user link, the event's journal
  entry (`webhook_events/{event_id}`, its outcome) and the removal of a kept unapplied copy, all
  in one commit. A decision that writes nothing commits nothing; its outcome is journaled after;
- a change that resets the monthly pool records when (`monthly_reset_at` on the user document);
- credits granted pay what the user owes first, in the same commit (`accounts.grant_and_collect`),
  unless the decision settled debts itself (money back: `Decision.owed_by`);
- a document a decision writes beside the user (a payment's) is read in the same batched read and
  written only over the version read, so a write outside the user's commits is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generic, Mapping, Optional, TypeVar

from ..ledger import accounts, codec, records
from ..ledger.accounts import Account, Entry
from ..ledger.change import Change, Snapshot
from ..ledger.idempotency import Once
from . import payments, subscriptions
from .catalog import Plan
from .customers import link_document
from .events import Charge, Dispute, Period
from .journal import JournalEntry, journal_document
from .outcomes import Outcome
from .payments import Payment
from .subscriptions import Decision, SubscriptionState, state_of

SUBSCRIPTIONS_FIELD = "stripe_subscriptions"

I = TypeVar("I")


@dataclass(frozen=True)
class Facts:
    """What a decision sees: the account, the event's subscription, all of the user's other
    subscriptions, and the other documents the change read (by path)."""

    account: Account
    state: Optional[SubscriptionState]
    subscriptions: Mapping[str, SubscriptionState] = field(default_factory=dict)
    documents: Mapping[str, Optional[dict[str, Any]]] = field(default_factory=dict)
    now: Any = None


# --- typed inputs, one per decision -------------------------------------------------------------


@dataclass(frozen=True)
class PlanLine:
    """An invoice line that names a catalog plan: a renewal's or an upgrade's."""

    plan: Plan
    quantity: int
    period: Period


@dataclass(frozen=True)
class SubscriptionEnd:
    """When a subscription ended, paused or resumed (Stripe's own time)."""

    at: int


@dataclass(frozen=True)
class PackPurchase:
    entries: tuple[Entry, ...]
    user_id: str
    session_id: str
    # The payment's document (`stripe_payments/{payment_intent}`), when the session names one.
    payment_intent: Optional[str] = None
    payment_path: Optional[str] = None


@dataclass(frozen=True)
class Refund:
    charge: Charge
    payment_intent: str
    payment_path: str


@dataclass(frozen=True)
class DisputeFact:
    dispute: Dispute
    payment_intent: str
    payment_path: str


# --- the decisions ----------------------------------------------------------------------------


def decide_renewal(facts: Facts, line: PlanLine) -> Decision:
    return subscriptions.renew(facts.account.monthly, facts.state, line.plan, line.quantity, line.period,
                               facts.subscriptions)


def decide_upgrade(facts: Facts, line: PlanLine) -> Decision:
    return subscriptions.upgrade(facts.state, line.plan, line.quantity, line.period)


def decide_cancellation(facts: Facts, end: SubscriptionEnd) -> Decision:
    return subscriptions.cancel(facts.account.monthly, facts.state, end.at, facts.subscriptions)


def decide_pause(facts: Facts, end: SubscriptionEnd) -> Decision:
    return subscriptions.pause(facts.account.monthly, facts.state, end.at, facts.subscriptions)


def decide_resume(facts: Facts, end: SubscriptionEnd) -> Decision:
    return subscriptions.resume(facts.state, end.at)


def decide_pack_purchase(facts: Facts, pack: PackPurchase) -> Decision:
    """Grant the pack; remember its payment, and settle refunds and disputes that came before it."""
    if pack.payment_path is None:
        return Decision(Outcome.APPLIED, pack.entries)
    payment = Payment.from_dict(pack.payment_intent, facts.documents[pack.payment_path])
    if payment.applied:
        # Another session already claimed this payment; its grant stands on its own.
        return Decision(Outcome.APPLIED, pack.entries)
    payment.user_id, payment.session_id = pack.user_id, pack.session_id
    payment.granted = sum(entry.amount for entry in pack.entries)
    after, granted = accounts.grant_and_collect(facts.account, list(pack.entries))
    after, settled = payments.settle(payment, after)
    return Decision(Outcome.APPLIED, tuple(granted + settled), owed_by=after.owed_by,
                    documents={pack.payment_path: payment.to_dict(facts.now)})


def _take_back(facts: Facts, path: str, payment: Payment, seen: str, what: str) -> Decision:
    if seen == payments.OLDER:
        return Decision(Outcome.STALE, reason=f"a later {what} of this payment was already applied")
    if seen != payments.NEW:
        return Decision(Outcome.DUPLICATE, reason=f"this {what} was already applied")
    after, entries = payments.settle(payment, facts.account)
    document = {path: payment.to_dict(facts.now)}
    if entries or after.owed_by != facts.account.owed_by:
        return Decision(Outcome.APPLIED, tuple(entries), owed_by=after.owed_by, documents=document)
    return Decision(Outcome.IGNORED, owed_by=after.owed_by, documents=document,
                    reason=f"the {what} changes no credits (claimed {payments.claimed_total(payment)} of "
                           f"{payment.granted} granted)")


def decide_refund(facts: Facts, refund: Refund) -> Decision:
    payment = Payment.from_dict(refund.payment_intent, facts.documents[refund.payment_path])
    return _take_back(facts, refund.payment_path, payment, payments.note_charge(payment, refund.charge), "refund")


def decide_dispute(facts: Facts, fact: DisputeFact) -> Decision:
    payment = Payment.from_dict(fact.payment_intent, facts.documents[fact.payment_path])
    return _take_back(facts, fact.payment_path, payment, payments.note_dispute(payment, fact.dispute, False),
                      "dispute")


def decide_dispute_closed(facts: Facts, fact: DisputeFact) -> Decision:
    payment = Payment.from_dict(fact.payment_intent, facts.documents[fact.payment_path])
    return _take_back(facts, fact.payment_path, payment, payments.note_dispute(payment, fact.dispute, True),
                      "dispute's close")


def decide_remembered_fact(payment: Payment, fact: Refund | DisputeFact, closed: bool = False) -> bool:
    """Note a refund or dispute on a payment whose session is not applied yet; True if it is new.

    Mutates `payment`. The session's grant settles what is noted, in its own commit.
    """
    if isinstance(fact, Refund):
        return payments.note_charge(payment, fact.charge) == payments.NEW
    return payments.note_dispute(payment, fact.dispute, closed) == payments.NEW


# --- one commit shape for every decision --------------------------------------------------------


@dataclass(frozen=True)
class EventChange(Generic[I]):
    """What one event asks of one user: the named decision and its inputs, and the documents that
    make it happen once."""

    journal: JournalEntry
    user_id: str
    source: str
    markers: tuple[Once, ...]
    decide: Callable[[Facts, I], Decision]
    inputs: I
    unapplied_path: str
    customer_id: Optional[str] = None
    link_path: Optional[str] = None
    subscription_id: Optional[str] = None
    # Other documents the decision reads and may write (a payment's); written over the version read.
    documents: tuple[str, ...] = ()

    @property
    def reads(self) -> list[str]:
        return ([marker.path for marker in self.markers] + [self.unapplied_path, self.journal.path]
                + ([self.link_path] if self.link_path else []) + list(self.documents))


@dataclass(frozen=True)
class Decided:
    decision: Decision
    # Whether the commit journaled the event itself (else it is journaled after).
    journaled: bool


def decide_event(snap: Snapshot, spec: EventChange) -> Change[Decided]:
    """Run the event's decision on the user's account and subscriptions, once per source."""
    nothing = Change(result=Decided(Decision(Outcome.DUPLICATE, reason="already applied"), journaled=False))
    if spec.markers[0].ran(snap.documents[spec.markers[0].path]):
        return nothing
    stored = dict((snap.user_data or {}).get(SUBSCRIPTIONS_FIELD) or {})
    state = state_of(stored, spec.subscription_id) if spec.subscription_id else None
    others = {sid: other for sid in stored
              if sid != spec.subscription_id and (other := state_of(stored, sid)) is not None}
    account, migration = accounts.migrate(snap.account)
    facts = Facts(account, state, others, {path: snap.documents[path] for path in spec.documents}, snap.now)
    decision = spec.decide(facts, spec.inputs)
    moves_debts = decision.owed_by is not None and decision.owed_by != account.owed_by
    if decision.outcome not in (Outcome.APPLIED, Outcome.IGNORED, Outcome.STALE) or not (decision.writes or moves_debts):
        return Change(result=Decided(decision, journaled=False))
    if any(marker.ran(snap.documents[marker.path]) for marker in spec.markers[1:]):
        return nothing
    if decision.owed_by is None:
        after, entries = accounts.grant_and_collect(account, list(decision.entries))
    else:
        entries = list(decision.entries)
        after = replace(accounts.apply(account, entries), owed_by=decision.owed_by)
    user_fields = {}
    if decision.state is not None and spec.subscription_id or decision.others:
        if decision.state is not None and spec.subscription_id:
            stored[spec.subscription_id] = decision.state.to_dict()
        for sid, other in (decision.others or {}).items():
            stored[sid] = other.to_dict()
        user_fields[SUBSCRIPTIONS_FIELD] = stored
    if decision.resets_monthly:
        user_fields[codec.MONTHLY_RESET_AT] = snap.now
    overwrite = {spec.journal.path: journal_document(spec.journal, decision.outcome, decision.reason, spec.user_id,
                                                     snap.documents[spec.journal.path], snap.now)}
    if spec.link_path and spec.customer_id and (snap.documents[spec.link_path] or {}).get("user_id") != spec.user_id:
        overwrite[spec.link_path] = link_document(spec.customer_id, spec.user_id, spec.journal.event_id, snap.now)
    # A stale fact that still teaches the subscription's state creates no marker: a redelivery
    # is judged stale again by that state, never `duplicate` of something that was not applied.
    markers = spec.markers if decision.outcome != Outcome.STALE else ()
    return Change(
        result=Decided(decision, journaled=True),
        account=after,
        records=records.records(spec.user_id, migration + entries, spec.source, snap.now, at=snap.position),
        create={marker.path: marker.record(snap.now, event_id=spec.journal.event_id,
                                           event_type=spec.journal.event_type, user_id=spec.user_id,
                                           outcome=str(decision.outcome))
                for marker in markers},
        overwrite={**overwrite, **(decision.documents or {})},
        # The kept unapplied copy goes in the same commit that finally applies the event.
        delete=(spec.unapplied_path,) if snap.documents[spec.unapplied_path] is not None else (),
        user_fields=user_fields,
    )
