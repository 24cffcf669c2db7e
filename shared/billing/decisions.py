"""The one pure decision every credit-changing Stripe event goes through (no I/O).

Rules enforced here:
- an event changes credits once per source: its first marker is the source's own (this
  invoice, session, subscription end) and any further marker guards a wider key (a
  subscription's period, whichever invoice carries it); any marker present is `duplicate`;
- the rule sees the account (a legacy one migrated first, in the same commit) and the state of
  the event's subscription, which lives on the user document (`stripe_subscriptions`, a map by
  subscription id) and so moves in the same conditioned commit as the pools it decides about;
- an applied change creates every marker, writes the records with the event's source, learns
  the customer-to-user link, and drops a kept unapplied copy of the event, all in one commit;
- a change that resets the monthly pool records when (`monthly_reset_at` on the user document).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..ledger import accounts, codec, records
from ..ledger.accounts import Account
from ..store.change import Change, Snapshot
from .customers import link_document
from .subscriptions import APPLIED, DUPLICATE, IGNORED, Decision, SubscriptionState, state_of

SUBSCRIPTIONS_FIELD = "stripe_subscriptions"

Rule = Callable[[Account, Optional[SubscriptionState]], Decision]


@dataclass(frozen=True)
class EventChange:
    """What one event asks of one user: the rule to run and the documents that make it happen once."""

    event_id: str
    event_type: str
    user_id: str
    source: str
    markers: tuple[str, ...]
    rule: Rule
    unapplied_path: str
    customer_id: Optional[str] = None
    link_path: Optional[str] = None
    subscription_id: Optional[str] = None

    @property
    def reads(self) -> list[str]:
        return list(self.markers) + [self.unapplied_path] + ([self.link_path] if self.link_path else [])


@dataclass(frozen=True)
class Decided:
    decision: Decision
    # A kept unapplied copy that this change did not delete in its own commit.
    kept_copy: bool


def decide_event(snap: Snapshot, spec: EventChange) -> Change[Decided]:
    """Run the event's rule on the user's account and subscription state, once per source."""
    was_unapplied = snap.documents[spec.unapplied_path] is not None
    duplicate = Change(result=Decided(Decision(DUPLICATE, reason="already applied"), was_unapplied))
    if snap.documents[spec.markers[0]] is not None:
        return duplicate
    subscriptions = dict((snap.user_data or {}).get(SUBSCRIPTIONS_FIELD) or {})
    state = state_of(subscriptions, spec.subscription_id) if spec.subscription_id else None
    account, migration = accounts.migrate(snap.account)
    decision = spec.rule(account, state)
    if decision.outcome not in (APPLIED, IGNORED) or (not decision.entries and decision.state is None):
        return Change(result=Decided(decision, was_unapplied))
    if any(snap.documents[path] is not None for path in spec.markers[1:]):
        return duplicate
    entries = list(decision.entries)
    user_fields = {}
    if decision.state is not None and spec.subscription_id:
        subscriptions[spec.subscription_id] = decision.state.to_dict()
        user_fields[SUBSCRIPTIONS_FIELD] = subscriptions
    if decision.resets_monthly:
        user_fields[codec.MONTHLY_RESET_AT] = snap.now
    marker = {
        "event_id": spec.event_id,
        "event_type": spec.event_type,
        "user_id": spec.user_id,
        "outcome": decision.outcome,
        "created_at": snap.now,
    }
    overwrite = {}
    if spec.link_path and spec.customer_id and (snap.documents[spec.link_path] or {}).get("user_id") != spec.user_id:
        overwrite[spec.link_path] = link_document(spec.customer_id, spec.user_id, spec.event_id, snap.now)
    return Change(
        result=Decided(decision, kept_copy=False),
        account=accounts.apply(account, entries),
        records=records.records(spec.user_id, migration + entries, spec.source, snap.now),
        create={path: marker for path in spec.markers},
        overwrite=overwrite,
        # The kept unapplied copy goes in the same commit that finally applies the event.
        delete=[spec.unapplied_path] if was_unapplied else [],
        user_fields=user_fields,
    )
