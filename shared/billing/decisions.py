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
- a change that resets the monthly pool records when (`monthly_reset_at` on the user document);
- credits granted pay what the user owes first, in the same commit (`accounts.grant_and_collect`),
  unless the rule settled debts itself (money back: `Decision.owed_by`);
- a document the rule writes beside the user (a payment's) is read in the same batched read and
  written only over the version read, so a write outside the user's commits is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional

from ..ledger import accounts, codec, records
from ..ledger.accounts import Account
from ..ledger.change import Change, Snapshot
from ..ledger.idempotency import Once
from .customers import link_document
from .subscriptions import (
    APPLIED,
    DUPLICATE,
    IGNORED,
    Decision,
    SubscriptionState,
    state_of,
)

SUBSCRIPTIONS_FIELD = "stripe_subscriptions"



@dataclass(frozen=True)
class Facts:
    """What a rule sees: the account, the event's subscription, all of the user's subscriptions,
    and the other documents the change read (by path)."""

    account: Account
    state: Optional[SubscriptionState]
    subscriptions: Mapping[str, SubscriptionState] = field(default_factory=dict)
    documents: Mapping[str, Optional[dict[str, Any]]] = field(default_factory=dict)
    now: Any = None


Rule = Callable[[Facts], Decision]


@dataclass(frozen=True)
class EventChange:
    """What one event asks of one user: the rule to run and the documents that make it happen once."""

    event_id: str
    event_type: str
    user_id: str
    source: str
    markers: tuple[Once, ...]
    rule: Rule
    unapplied_path: str
    customer_id: Optional[str] = None
    link_path: Optional[str] = None
    subscription_id: Optional[str] = None
    # Other documents the rule reads and may write (a payment's); the kernel writes them over the version read.
    documents: tuple[str, ...] = ()

    @property
    def reads(self) -> list[str]:
        return ([marker.path for marker in self.markers] + [self.unapplied_path] + ([self.link_path] if self.link_path else [])
                + list(self.documents))


@dataclass(frozen=True)
class Decided:
    decision: Decision
    # A kept unapplied copy that this change did not delete in its own commit.
    kept_copy: bool


def decide_event(snap: Snapshot, spec: EventChange) -> Change[Decided]:
    """Run the event's rule on the user's account and subscription state, once per source."""
    was_unapplied = snap.documents[spec.unapplied_path] is not None
    duplicate = Change(result=Decided(Decision(DUPLICATE, reason="already applied"), was_unapplied))
    if spec.markers[0].ran(snap.documents[spec.markers[0].path]):
        return duplicate
    subscriptions = dict((snap.user_data or {}).get(SUBSCRIPTIONS_FIELD) or {})
    state = state_of(subscriptions, spec.subscription_id) if spec.subscription_id else None
    others = {
        sid: other
        for sid in subscriptions
        if sid != spec.subscription_id and (other := state_of(subscriptions, sid)) is not None
    }
    account, migration = accounts.migrate(snap.account)
    facts = Facts(account, state, others, {path: snap.documents[path] for path in spec.documents}, snap.now)
    decision = spec.rule(facts)
    writes = bool(decision.entries or decision.state is not None or decision.documents
                  or (decision.owed_by is not None and decision.owed_by != account.owed_by))
    if decision.outcome not in (APPLIED, IGNORED) or not writes:
        return Change(result=Decided(decision, was_unapplied))
    if any(marker.ran(snap.documents[marker.path]) for marker in spec.markers[1:]):
        return duplicate
    if decision.owed_by is None:
        after, entries = accounts.grant_and_collect(account, list(decision.entries))
    else:
        entries = list(decision.entries)
        after = replace(accounts.apply(account, entries), owed_by=decision.owed_by)
    user_fields = {}
    if decision.state is not None and spec.subscription_id:
        subscriptions[spec.subscription_id] = decision.state.to_dict()
        user_fields[SUBSCRIPTIONS_FIELD] = subscriptions
    if decision.resets_monthly:
        user_fields[codec.MONTHLY_RESET_AT] = snap.now
    overwrite = {}
    if spec.link_path and spec.customer_id and (snap.documents[spec.link_path] or {}).get("user_id") != spec.user_id:
        overwrite[spec.link_path] = link_document(spec.customer_id, spec.user_id, spec.event_id, snap.now)
    return Change(
        result=Decided(decision, kept_copy=False),
        account=after,
        records=records.records(spec.user_id, migration + entries, spec.source, snap.now, at=snap.position),
        create={marker.path: marker.record(snap.now, event_id=spec.event_id, event_type=spec.event_type,
                                           user_id=spec.user_id, outcome=decision.outcome)
                for marker in spec.markers},
        overwrite={**overwrite, **(decision.documents or {})},
        # The kept unapplied copy goes in the same commit that finally applies the event.
        delete=[spec.unapplied_path] if was_unapplied else [],
        user_fields=user_fields,
    )
