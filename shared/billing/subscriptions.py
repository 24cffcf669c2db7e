"""The pure rules of subscription credits: renewals, upgrades, cancellations.

Rules enforced here:
- a renewal makes the monthly pool the plan's allowance plus what is left of the old pool up
  to the plan's `rollover_cap`; the forfeited remainder is one `monthly_expired` entry and the
  allowance one `subscription_grant` entry;
- a subscription is renewed at most once per period; an invoice for a period that began before
  the last one applied, or before the subscription ended, is `stale` and changes nothing; so is
  one for a period that began before another subscription of the user's last renewed period
  (the pool holds that one's credits, as delivery in creation order would have left it: a
  replaced subscription's late first invoice does not reset the pool to the old plan);
- an upgrade adds the new allowance less what was granted for the period last renewed, if that
  is positive; a downgrade (or no change) waits for the next renewal (`ignored`); an upgrade
  delivered before its subscription's first invoice counts as if it came after: that invoice
  then adds only what its plan grants beyond the upgrade, and resets nothing;
- a cancellation empties the monthly pool as one `monthly_expired` entry, unless another
  subscription of the user is active (not ended, not paused) and renewed for a period that
  goes past the end: that subscription's credits are in the pool, so nothing changes (`ignored`,
  the end is still remembered);
- a pause empties the monthly pool once per pause (a `monthly_expired` entry), unless another
  subscription of the user is active and renewed past the pause (a subscription the user no
  longer pays for, the cancellation's rule): then nothing changes (`ignored`, the pause is still
  remembered); a resume changes no credits, and the next paid renewal fills the pool again;
- a renewal, a pause and a cancellation reset the monthly pool (`resets_monthly`), whatever it held;
- an allowance is the plan's `monthly_credits` times the line's quantity (seats).
No I/O: these functions see numbers and return entries and the subscription's next state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence

from ..ledger.accounts import Entry
from ..ledger.models import CreditPool, TransactionType
from .catalog import Catalog, Plan
from .events import InvoiceLine, Period

APPLIED, DUPLICATE, STALE, IGNORED, UNAPPLIED = "applied", "duplicate", "stale", "ignored", "unapplied"


@dataclass(frozen=True)
class SubscriptionState:
    """What is remembered of one subscription: the last period renewed and what it granted."""

    price_id: Optional[str] = None
    period_start: Optional[int] = None
    period_end: Optional[int] = None
    granted: int = 0
    canceled_at: Optional[int] = None
    # The latest pause and resume applied (event times).
    paused_at: Optional[int] = None
    resumed_at: Optional[int] = None
    # When the last upgrade applied took effect (its line's period start).
    upgraded_at: Optional[int] = None
    # What the last renewal kept of the pool before it (rolled over, up to the plan's cap).
    rolled_over: int = 0

    @property
    def paused(self) -> bool:
        # A paid period that began after the pause shows the subscription was resumed, even
        # before the resume event arrives.
        return (self.paused_at is not None and (self.resumed_at is None or self.resumed_at < self.paused_at)
                and (self.period_start is None or self.period_start <= self.paused_at))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Optional["SubscriptionState"]:
        if not isinstance(data, dict):
            return None
        known = {name: data.get(name) for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    """An outcome, the entries that carry it out, and the subscription state to keep."""

    outcome: str
    entries: tuple[Entry, ...] = ()
    state: Optional[SubscriptionState] = None
    reason: str = ""
    # A renewal, pause or cancellation starts the monthly pool afresh: refunds of older spends'
    # monthly parts expire at once (CONTRACT 3b).
    resets_monthly: bool = False
    # Set by a rule that settles debts itself (money back): the debts after its entries, which
    # then already include any collection. None: the entries are grants that pay debts first.
    owed_by: Optional[tuple[tuple[str, int], ...]] = None
    # Documents the change writes over the version it read (a payment's document).
    documents: Optional[dict[str, dict[str, Any]]] = None


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def allowance(plan: Plan, quantity: int) -> int:
    return plan.monthly_credits * max(quantity, 1)


def renew(monthly: int, state: Optional[SubscriptionState], plan: Plan, quantity: int, period: Period,
          others: Optional[Mapping[str, SubscriptionState]] = None) -> Decision:
    """Reset (or roll over up to the cap) the monthly pool for a new period of the plan.

    `others` are the user's other subscriptions: one renewed for a later period holds the pool.
    """
    state = state or SubscriptionState()
    if state.canceled_at is not None and period.start < state.canceled_at:
        return Decision(STALE, reason="the period began before the subscription ended")
    later = later_other(others or {}, period.start)
    if later is not None:
        return Decision(STALE, reason=f"subscription {later} was renewed for a later period: the monthly pool holds its credits")
    if state.period_start is None and state.upgraded_at is not None and period.start <= state.upgraded_at < period.end:
        return _after_upgrade(state, plan, quantity, period)
    if state.period_start is not None:
        if period.start < state.period_start:
            return Decision(STALE, reason="a later period was already renewed")
        if period.start == state.period_start:
            return Decision(DUPLICATE, reason="this period was already renewed")
    grant = allowance(plan, quantity)
    if state.paused_at is not None and period.start < state.paused_at:
        # In creation order the pause came after this period began and emptied the pool: it
        # already took what this renewal would have granted.
        return Decision(IGNORED, (), replace(state, price_id=plan.price_id, period_start=period.start,
                                             period_end=period.end, granted=grant, rolled_over=0),
                        reason="the subscription was paused after this period began: the pause took its credits")
    kept = min(monthly, plan.rollover_cap)
    forfeited = monthly - kept
    entries = []
    if forfeited:
        entries.append(
            Entry(
                TransactionType.MONTHLY_EXPIRED,
                CreditPool.MONTHLY,
                -forfeited,
                f"Monthly credits expired at renewal ({kept} rolled over, cap {plan.rollover_cap})",
            )
        )
    entries.append(
        Entry(
            TransactionType.SUBSCRIPTION_GRANT,
            CreditPool.MONTHLY,
            grant,
            f"Monthly credits for {plan.price_id}, period {_day(period.start)} to {_day(period.end)}",
        )
    )
    new_state = replace(
        state, price_id=plan.price_id, period_start=period.start, period_end=period.end, granted=grant,
        rolled_over=kept,
    )
    return Decision(APPLIED, tuple(entries), new_state, resets_monthly=True)


def _after_upgrade(state: SubscriptionState, plan: Plan, quantity: int, period: Period) -> Decision:
    """The first invoice of a period whose upgrade was applied before it: in creation order the
    invoice came first and the upgrade topped it up, so the pool already holds the upgraded
    allowance; only what this plan grants beyond it is added, and nothing is reset."""
    grant = allowance(plan, quantity) - state.granted
    entries = ()
    if grant > 0:
        entries = (Entry(TransactionType.SUBSCRIPTION_GRANT, CreditPool.MONTHLY, grant,
                         f"Monthly credits for {plan.price_id}, period {_day(period.start)} to {_day(period.end)}, "
                         f"beyond the {state.granted} its upgrade granted first"),)
    new_state = replace(state, period_start=period.start, period_end=period.end,
                        granted=max(state.granted, allowance(plan, quantity)))
    return Decision(APPLIED if entries else IGNORED, entries, new_state,
                    reason="the period's upgrade was applied first: its credits stand, nothing is reset")


def upgrade(state: Optional[SubscriptionState], plan: Plan, quantity: int, period: Period) -> Decision:
    """Top up the monthly pool to a larger plan within the period last renewed."""
    state = state or SubscriptionState()
    if state.canceled_at is not None and period.start < state.canceled_at:
        return Decision(STALE, reason="the change happened before the subscription ended")
    if state.period_start is not None and period.end <= state.period_start:
        return Decision(STALE, reason="the change belongs to a period before the one last renewed")
    new_allowance = allowance(plan, quantity)
    difference = new_allowance - state.granted
    if difference <= 0:
        return Decision(IGNORED, reason="not an upgrade: a smaller or equal allowance waits for the renewal")
    if state.paused_at is not None and period.start < state.paused_at and not (
            state.period_start is not None and state.period_start > state.paused_at):
        # In creation order the pause came after the upgrade and took its credits with the rest.
        return Decision(IGNORED, (), replace(state, price_id=plan.price_id, granted=new_allowance,
                                             upgraded_at=period.start),
                        reason="the subscription was paused after this upgrade: the pause took its credits")
    entry = Entry(
        TransactionType.SUBSCRIPTION_GRANT,
        CreditPool.MONTHLY,
        difference,
        f"Upgrade to {plan.price_id}: {new_allowance} monthly credits, {state.granted} already granted",
    )
    return Decision(APPLIED, (entry,), replace(state, price_id=plan.price_id, granted=new_allowance,
                                               upgraded_at=period.start))


def later_other(others: Mapping[str, SubscriptionState], start: int) -> Optional[str]:
    """Another subscription whose last renewed period began after `start`, if any."""
    for subscription_id in sorted(others):
        other = others[subscription_id]
        if other.period_start is not None and other.period_start > start:
            return subscription_id
    return None


def active_other(others: Mapping[str, SubscriptionState], at: int) -> Optional[str]:
    """Another subscription that is active and renewed for a period ending after `at`, if any."""
    for subscription_id in sorted(others):
        other = others[subscription_id]
        if other.canceled_at is None and not other.paused and other.period_end is not None and other.period_end > at:
            return subscription_id
    return None


def cancel(monthly: int, state: Optional[SubscriptionState], ended_at: int,
           others: Optional[Mapping[str, SubscriptionState]] = None) -> Decision:
    """Empty the monthly pool when the subscription ends, and remember when it ended.

    `others` are the user's other subscriptions: one that is active and renewed holds the pool.
    """
    state = state or SubscriptionState()
    if state.canceled_at is not None:
        return Decision(DUPLICATE, reason="the subscription's end was already applied")
    new_state = replace(state, canceled_at=ended_at)
    holder = active_other(others or {}, ended_at)
    if holder is not None:
        return Decision(
            IGNORED, (), new_state,
            reason=f"subscription {holder} is active and renewed: the monthly pool holds its credits, none change",
        )
    if monthly <= 0:
        return Decision(IGNORED, (), new_state, reason="the monthly pool was already empty", resets_monthly=True)
    entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -monthly, "Subscription ended: monthly credits expired")
    return Decision(APPLIED, (entry,), new_state, resets_monthly=True)


def pause(monthly: int, state: Optional[SubscriptionState], paused_at: int,
          others: Optional[Mapping[str, SubscriptionState]] = None) -> Decision:
    """Empty the monthly pool once per pause, and remember that the subscription is paused.

    A pause delivered late (after its resume, or after a renewal of a period that began after
    it) takes what it would have taken in creation order: everything, if no period has been paid
    since, else only what the renewal since rolled over from before the pause.
    `others` are the user's other subscriptions: one that is active and renewed holds the pool.
    """
    state = state or SubscriptionState()
    if state.canceled_at is not None:
        return Decision(STALE, reason="the subscription has ended")
    if state.paused and paused_at >= state.paused_at:
        return Decision(DUPLICATE, reason="this pause was already applied")
    if state.paused_at is not None and paused_at <= state.paused_at:
        return Decision(STALE, reason="a later pause was already applied")
    if (state.paused_at is not None and state.resumed_at is not None
            and state.paused_at <= paused_at <= state.resumed_at):
        return Decision(STALE, reason="the subscription was already paused then")
    new_state = replace(state, paused_at=paused_at)
    holder = active_other(others or {}, paused_at)
    if holder is not None:
        return Decision(
            IGNORED, (), new_state,
            reason=f"subscription {holder} is active and renewed: the monthly pool holds its credits, none change",
        )
    renewed_since = state.period_start is not None and state.period_start > paused_at
    if renewed_since:
        # The renewal since reset the pool: only what it rolled over from before the pause is the
        # pause's to take; the new period's own credits stand.
        take = min(state.rolled_over, monthly)
        new_state = replace(new_state, rolled_over=state.rolled_over - take)
        if take <= 0:
            return Decision(IGNORED, (), new_state, reason="a period paid since the pause holds the pool")
        entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -take,
                      "Subscription paused: monthly credits rolled over from before the pause expired")
        return Decision(APPLIED, (entry,), new_state)
    if monthly <= 0:
        return Decision(IGNORED, (), new_state, reason="the monthly pool was already empty", resets_monthly=True)
    entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -monthly, "Subscription paused: monthly credits expired")
    return Decision(APPLIED, (entry,), new_state, resets_monthly=True)


def resume(state: Optional[SubscriptionState], resumed_at: int) -> Decision:
    """Remember the resume; the next paid renewal fills the monthly pool again."""
    state = state or SubscriptionState()
    if state.resumed_at is not None and resumed_at <= state.resumed_at:
        return Decision(DUPLICATE, reason="this resume was already applied")
    return Decision(IGNORED, (), replace(state, resumed_at=resumed_at),
                    reason="resumed: the next paid renewal fills the monthly pool")


def _latest(candidates: Sequence[tuple[InvoiceLine, Plan]]) -> Optional[tuple[InvoiceLine, Plan]]:
    if not candidates:
        return None
    return max(candidates, key=lambda pair: (pair[0].period.start, allowance(pair[1], pair[0].quantity)))


def renewal_line(lines: Sequence[InvoiceLine], catalog: Catalog) -> Optional[tuple[InvoiceLine, Plan]]:
    """The line that renews a plan: a plan price with a period, not a proration, latest first.

    A renewal invoice may also carry prorations from changes in the previous period; those
    are not the renewal.
    """
    plans = [(line, catalog.plan(line.price_id)) for line in lines if line.period and catalog.plan(line.price_id)]
    return _latest([pair for pair in plans if not pair[0].proration]) or _latest(plans)


def upgrade_line(lines: Sequence[InvoiceLine], catalog: Catalog) -> Optional[tuple[InvoiceLine, Plan]]:
    """The line charging for the new plan: a plan price that is not a credit for unused time."""
    plans = [(line, catalog.plan(line.price_id)) for line in lines if line.period and catalog.plan(line.price_id)]
    return _latest([pair for pair in plans if pair[0].amount >= 0])


def unknown_prices(lines: Sequence[InvoiceLine]) -> list[str]:
    return sorted({line.price_id or "(no price)" for line in lines})


def state_of(subscriptions: Any, subscription_id: str) -> Optional[SubscriptionState]:
    """The stored state of one subscription from the user document's map of them."""
    return SubscriptionState.from_dict(subscriptions.get(subscription_id)) if isinstance(subscriptions, Mapping) else None
