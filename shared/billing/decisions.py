"""The pure decisions of Stripe events: one named decision per event type, and the one commit shape.

Rules enforced here:
- each credit-changing event type has its own module-level decision, a function of plain values
  (`Facts`, and the event's typed inputs) returning a `Decision`: `decide_renewal`,
  `decide_upgrade`, `decide_cancellation`, `decide_pause`, `decide_resume`,
  `decide_pack_purchase`, `decide_refund`, `decide_dispute`, `decide_dispute_closed`,
  `decide_topup` (an auto top-up charge's outcome, from the charge's answer or from
  `payment_intent.succeeded` / `.payment_failed`); and `decide_remembered_fact` for a refund or
  dispute of a payment whose session is not applied yet;
- an auto top-up attempt settles once, whichever of the charge's answer and the webhook comes
  first: the attempt document, read in the commit, says whether it is still pending (or waits
  for action, which only that PaymentIntent's success ends); its credits are one `auto_topup`
  record (`source` the PaymentIntent), its payment is remembered like a pack's, and the
  setting's state moves by `autotopup.settle_setting`, all in one commit; a refund or dispute
  of a top-up payment disables the setting (`payment_reversed`) in its own commit;
- an event changes credits once per source: its first marker is the source's own (this invoice,
  session, subscription end) and any further marker guards a wider key (a subscription's period,
  whichever invoice carries it); any marker present is `duplicate`;
- a decision sees the account (a legacy one migrated first, in the same commit) and the user's
  subscription timeline (`timeline`: every subscription fact with Stripe's time, and the monthly
  pool's movements between them), which lives on the user document and so moves in the same
  conditioned commit as the pools it decides about; a subscription decision adds its fact and
  moves the pool by what replaying the facts in creation order gives (`stripe_subscriptions`
  shows each subscription as that replay leaves it);
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
from datetime import datetime, timezone
from typing import Any, Callable, Generic, Mapping, Optional, TypeVar

from ..ledger import accounts, autotopup, codec, moves, records
from ..ledger.accounts import Account, Entry
from ..ledger.models import CreditPool, TransactionType
from ..ledger.change import Change, Snapshot
from ..ledger import collections
from ..ledger.idempotency import Once
from . import payments, subscriptions
from . import timeline as timeline_
from .catalog import Plan
from .customers import link_document
from .events import Charge, Dispute, Period
from .journal import JournalEntry, journal_document
from .outcomes import Outcome
from .payments import Payment
from .subscriptions import Decision

SUBSCRIPTIONS_FIELD = "stripe_subscriptions"

I = TypeVar("I")


@dataclass(frozen=True)
class Facts:
    """What a decision sees: the account, the other documents the change read (by path), the
    time, and the user's subscription timeline."""

    account: Account
    documents: Mapping[str, Optional[dict[str, Any]]] = field(default_factory=dict)
    now: Any = None
    # The user's subscription facts and the monthly pool's movements between them.
    timeline: timeline_.Timeline = field(default_factory=timeline_.Timeline)
    # The user document as read (the auto top-up setting lives there).
    user_data: Optional[Mapping[str, Any]] = None


# --- typed inputs, one per decision -------------------------------------------------------------


@dataclass(frozen=True)
class PlanLine:
    """An invoice line that names a catalog plan: a renewal's or an upgrade's."""

    plan: Plan
    quantity: int
    period: Period
    subscription_id: str = ""
    # The fact's key: `{subscription_id}:{period_start}` for a renewal, the invoice id for an upgrade.
    key: str = ""


@dataclass(frozen=True)
class SubscriptionEnd:
    """When a subscription ended, paused or resumed (Stripe's own time), and the fact's key."""

    at: int
    subscription_id: str = ""
    key: str = ""


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


@dataclass(frozen=True)
class TopupResult:
    """An auto top-up charge's outcome, for its attempt (and its payment's document on success)."""

    attempt_id: str
    outcome: autotopup.ChargeOutcome
    client_secret: Optional[str] = None

    @property
    def attempt_path(self) -> str:
        return collections.topup_attempt(self.attempt_id)

    @property
    def payment_path(self) -> Optional[str]:
        intent = self.outcome.payment_intent
        if self.outcome.kind != autotopup.SUCCEEDED or not intent:
            return None
        return collections.stripe_payment(intent)

    @property
    def documents(self) -> tuple[str, ...]:
        return (self.attempt_path,) + ((self.payment_path,) if self.payment_path else ())


# --- the decisions ----------------------------------------------------------------------------


def _entry(amount: int, description: str) -> tuple[Entry, ...]:
    if amount > 0:
        return (Entry(TransactionType.SUBSCRIPTION_GRANT, CreditPool.MONTHLY, amount, description),)
    if amount < 0:
        return (Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, amount, description),)
    return ()


def _record(facts: Facts, fact: timeline_.Fact, unchanged: Outcome, why: str) -> Decision:
    """Add `fact` to the timeline and move the monthly pool as creation order says.

    In creation order (the fact comes after every fact known) the pool moves from what it holds
    now, by the contract's rule for the fact; a fact that arrives late moves it by the difference
    its place in the timeline makes. Either way the pool never goes below 0.
    """
    monthly = facts.account.monthly
    effect, grown = timeline_.effect(facts.timeline, fact)
    before_subs = timeline_.replay(facts.timeline)[1]
    sub_before = before_subs.get(fact.subscription_id, timeline_.Sub())
    sub_after = effect.subs.get(fact.subscription_id, timeline_.Sub())
    renewed = fact.kind == timeline_.RENEWAL and sub_after.period_start == fact.at != sub_before.period_start
    entries: tuple[Entry, ...] = ()
    if effect.latest and renewed:
        kept = min(monthly, fact.cap)
        entries = _entry(kept - monthly, f"Monthly credits expired at renewal ({kept} rolled over, cap {fact.cap})")
        entries += _entry(fact.grant, f"Monthly credits for {fact.price_id}, period {_day(fact.at)} to {_day(fact.period_end)}")
    elif effect.latest:
        target, _ = timeline_._apply(monthly, sub_before, fact, before_subs)
        entries = _entry(target - monthly, _describe(fact))
    else:
        entries = _entry(max(effect.delta, -monthly), _describe(fact) + " (delivered late: placed by Stripe's time)")
    fields = {**grown.to_fields(), moves.EPOCH: grown.epoch, SUBSCRIPTIONS_FIELD: timeline_.states(effect.subs)}
    resets = fact.kind in (timeline_.RENEWAL, timeline_.PAUSE, timeline_.END) and (bool(entries) or effect.latest)
    outcome = Outcome.APPLIED if entries else unchanged
    return Decision(outcome, entries, reason="" if entries else why, resets_monthly=resets, user_fields=fields)


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def _describe(fact: timeline_.Fact) -> str:
    if fact.kind == timeline_.RENEWAL:
        return f"Monthly credits for {fact.price_id}, period {_day(fact.at)} to {_day(fact.period_end)}"
    if fact.kind == timeline_.UPGRADE:
        return f"Upgrade to {fact.price_id}: {fact.grant} monthly credits"
    if fact.kind == timeline_.PAUSE:
        return "Subscription paused: monthly credits expired"
    if fact.kind == timeline_.END:
        return "Subscription ended: monthly credits expired"
    return "Subscription resumed"


def _late(facts: Facts, fact: timeline_.Fact) -> bool:
    return not facts.timeline.is_latest(fact)


def decide_renewal(facts: Facts, line: PlanLine) -> Decision:
    fact = timeline_.Fact(timeline_.RENEWAL, line.subscription_id, line.period.start, line.key,
                          grant=subscriptions.allowance(line.plan, line.quantity), cap=line.plan.rollover_cap,
                          period_end=line.period.end, price_id=line.plan.price_id)
    if any(at > fact.at for at in timeline_.known_periods(facts.timeline, line.subscription_id)):
        return Decision(Outcome.STALE, reason="a later period was already renewed")
    if facts.timeline.knows(fact.kind, fact.key):
        return Decision(Outcome.DUPLICATE, reason="this period was already renewed")
    return _record(facts, fact, Outcome.STALE if _late(facts, fact) else Outcome.IGNORED,
                   "the period began before the subscription was paused or ended, or another renewal holds the pool")


def decide_upgrade(facts: Facts, line: PlanLine) -> Decision:
    fact = timeline_.Fact(timeline_.UPGRADE, line.subscription_id, line.period.start, line.key,
                          grant=subscriptions.allowance(line.plan, line.quantity), period_end=line.period.end,
                          price_id=line.plan.price_id)
    if facts.timeline.knows(fact.kind, fact.key):
        return Decision(Outcome.DUPLICATE, reason="this change was already applied")
    if any(at >= fact.period_end for at in timeline_.known_periods(facts.timeline, line.subscription_id)):
        return Decision(Outcome.STALE, reason="the change belongs to a period before the one last renewed")
    sub = timeline_.replay(facts.timeline)[1].get(line.subscription_id, timeline_.Sub())
    if (sub.period_start is not None and sub.period_start <= fact.at < (sub.period_end or 0)
            and fact.grant <= sub.granted):
        # Its period's renewal is known and grants as much: nothing inserted later can raise
        # what this change adds above nothing, so it is not kept.
        return Decision(Outcome.IGNORED, reason="not an upgrade: a smaller or equal allowance waits for the renewal")
    return _record(facts, fact, Outcome.STALE if _late(facts, fact) else Outcome.IGNORED,
                   "not an upgrade (a smaller or equal allowance waits for the renewal), or its period's renewal "
                   "is not known yet")


def _ended_by(facts: Facts, subscription_id: str, at: int) -> bool:
    """Whether the subscription's end is known and came at or before `at`."""
    ended = timeline_.replay(facts.timeline)[1].get(subscription_id, timeline_.Sub()).canceled_at
    return ended is not None and ended <= at


def decide_cancellation(facts: Facts, end: SubscriptionEnd) -> Decision:
    if facts.timeline.knows(timeline_.END, end.key):
        return Decision(Outcome.DUPLICATE, reason="the subscription's end was already applied")
    fact = timeline_.Fact(timeline_.END, end.subscription_id, end.at, end.key)
    return _record(facts, fact, Outcome.IGNORED,
                   "another subscription is active and renewed, or the pool was already empty: no credits change")


def decide_pause(facts: Facts, end: SubscriptionEnd) -> Decision:
    if facts.timeline.knows(timeline_.PAUSE, end.key):
        return Decision(Outcome.DUPLICATE, reason="this pause was already applied")
    if _ended_by(facts, end.subscription_id, end.at):
        return Decision(Outcome.STALE, reason="the subscription has ended")
    fact = timeline_.Fact(timeline_.PAUSE, end.subscription_id, end.at, end.key)
    return _record(facts, fact, Outcome.IGNORED,
                   "another subscription is active and renewed, or the pool was already empty: no credits change")


def decide_resume(facts: Facts, end: SubscriptionEnd) -> Decision:
    if facts.timeline.knows(timeline_.RESUME, end.key):
        return Decision(Outcome.DUPLICATE, reason="this resume was already applied")
    fact = timeline_.Fact(timeline_.RESUME, end.subscription_id, end.at, end.key)
    return _record(facts, fact, Outcome.IGNORED, "resumed: the next paid renewal fills the monthly pool")


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


def _take_back(facts: Facts, path: str, payment: Payment, seen: str, what: str, reverses: bool = True) -> Decision:
    decision = _taken_back(facts, path, payment, seen, what)
    # A top-up's payment taken back stops the setting, so it never charges again for those credits.
    if reverses and seen == payments.NEW and payment.topup_attempt is not None:
        return replace(decision, disables_topup=True)
    return decision


def _taken_back(facts: Facts, path: str, payment: Payment, seen: str, what: str) -> Decision:
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
                      "dispute's close", reverses=False)


def decide_topup(facts: Facts, result: TopupResult) -> Decision:
    """Settle an auto top-up attempt by its charge's outcome, once (see the module's rules)."""
    attempt = facts.documents.get(result.attempt_path)
    outcome = result.outcome
    if attempt is None:
        return Decision(Outcome.IGNORED, reason=f"no auto top-up attempt {result.attempt_id}")
    if not autotopup.settles(attempt, outcome):
        return Decision(Outcome.DUPLICATE, reason=f"the attempt is already {attempt.get('status')}")
    status = autotopup.attempt_status(outcome)
    setting = autotopup.settle_setting(autotopup.setting_of(facts.user_data), result.attempt_id, outcome,
                                       attempt.get("created_at") or facts.now, facts.now,
                                       was_canceled=attempt.get("status") == autotopup.CANCELED)
    settled = {**attempt, "status": status, "settled_at": facts.now,
               "payment_intent": outcome.payment_intent or attempt.get("payment_intent"),
               "reason": None if status == autotopup.SUCCEEDED else (outcome.decline_code or outcome.kind),
               "client_secret": result.client_secret if status == autotopup.ACTION_REQUIRED else None}
    documents = {result.attempt_path: settled}
    if status != autotopup.SUCCEEDED:
        fields = {autotopup.FIELD: setting.to_dict()} if setting is not None else {}
        return Decision(Outcome.APPLIED, documents=documents, user_fields=fields)
    credits = int(attempt["credits"])
    entries = [Entry(TransactionType.AUTO_TOPUP, CreditPool.PERMANENT, credits,
                     f"Auto top-up: {attempt.get('price_id')} x {attempt.get('quantity')} ({credits} credits)")]
    payment = Payment.from_dict(outcome.payment_intent, facts.documents.get(result.payment_path))
    payment.user_id, payment.granted, payment.topup_attempt = attempt["user_id"], credits, result.attempt_id
    after, granted = accounts.grant_and_collect(facts.account, entries)
    after, taken = payments.settle(payment, after)
    documents[result.payment_path] = payment.to_dict(facts.now)
    if taken and setting is not None:
        # A refund or dispute that came before the charge's answer stops the setting too.
        setting = autotopup.reversed_payment(setting)
    fields = {autotopup.FIELD: setting.to_dict()} if setting is not None else {}
    return Decision(Outcome.APPLIED, tuple(granted + taken), owed_by=after.owed_by, documents=documents,
                    user_fields=fields)


def topup_change(snap: Snapshot, result: TopupResult) -> Change[Decision]:
    """The commit of a charge's answer (function `auto_topup`): `decide_topup` on the user's
    account and documents, with no webhook journal or marker (the attempt is its own marker)."""
    account, migration = accounts.migrate(snap.account)
    facts = Facts(account, {path: snap.documents[path] for path in result.documents}, snap.now,
                  user_data=snap.user_data)
    decision = decide_topup(facts, result)
    if decision.outcome != Outcome.APPLIED:
        return Change(result=decision)
    entries = list(decision.entries)
    after = replace(accounts.apply(account, entries), owed_by=decision.owed_by) if decision.owed_by is not None \
        else account
    source = result.outcome.payment_intent or result.attempt_id
    return Change(result=decision, account=after,
                  records=records.records(account.user_id, migration + entries, source, snap.now, at=snap.position),
                  overwrite=decision.documents or {}, user_fields=decision.user_fields or {})


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
    account, migration = accounts.migrate(snap.account)
    # Expired holds given back in this commit moved the monthly pool before the fact: a movement
    # the timeline must place before it (the kernel records none for a change that records a fact).
    stored_monthly = codec.read_account(spec.user_id, snap.user_data).monthly
    before_fact = moves.recorded(snap.user_data, stored_monthly, account.monthly, {})
    user_data = snap.user_data if before_fact is None else {**(snap.user_data or {}), moves.MOVES: before_fact}
    timeline = timeline_.load(user_data, account.monthly, moves.MOVES, moves.EPOCH)
    facts = Facts(account, {path: snap.documents[path] for path in spec.documents}, snap.now, timeline,
                  snap.user_data)
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
    if decision.user_fields:
        user_fields.update(decision.user_fields)
        # Only a subscription fact keeps the pool's movements itself (an auto top-up's fields do not).
        if before_fact is not None and moves.EPOCH in decision.user_fields:
            user_fields[moves.MOVES] = before_fact
    if decision.resets_monthly:
        user_fields[codec.MONTHLY_RESET_AT] = snap.now
    reversed_setting = autotopup.reversed_payment(autotopup.setting_of(snap.user_data)) \
        if decision.disables_topup else None
    if reversed_setting is not None:
        user_fields[autotopup.FIELD] = reversed_setting.to_dict()
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
