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
from .outcomes import Outcome

APPLIED, DUPLICATE, STALE, IGNORED, UNAPPLIED = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE, Outcome.IGNORED,
                                                 Outcome.UNAPPLIED)


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
    # What this subscription's end (a pause or cancellation, at `end_took_at`) took from the pool
    # while no other subscription was known to hold it. Another subscription renewed for a period
    # that began before that end held the pool in creation order: its renewal, when it arrives,
    # rolls these credits over as if the end had come after it.
    end_took: int = 0
    end_took_at: Optional[int] = None
    # The rollover cap of the plan last renewed: how much a late first invoice of a subscription
    # this one replaced may still add to what this renewal rolled over.
    rollover_cap: int = 0

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
    # The user's other subscriptions whose state this decision changes (by id).
    others: Optional[dict[str, SubscriptionState]] = None

    @property
    def writes(self) -> bool:
        return bool(self.entries or self.state is not None or self.documents or self.others)


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def allowance(plan: Plan, quantity: int) -> int:
    return plan.monthly_credits * max(quantity, 1)


def renew(monthly: int, state: Optional[SubscriptionState], plan: Plan, quantity: int, period: Period,
          others: Optional[Mapping[str, SubscriptionState]] = None) -> Decision:
    """Reset (or roll over up to the cap) the monthly pool for a new period of the plan.

    `others` are the user's other subscriptions: one renewed for a later period holds the pool;
    one that ended after this period began, and took the pool because this renewal was not known
    yet, gives what it took back to the pool this renewal rolls over.
    """
    state = state or SubscriptionState()
    others = others or {}
    later = later_other(others, period.start)
    if later is not None:
        return _into_later(monthly, state, plan, quantity, period, later, others[later])
    if state.canceled_at is not None and period.start < state.canceled_at:
        return _before_end(state, plan, quantity, period, state.canceled_at, STALE)
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
        return _before_end(state, plan, quantity, period, state.paused_at, IGNORED)
    # Ends of other subscriptions that came after this period began took, in their delivery,
    # what in creation order this renewal found in the pool.
    giving_back = {sid: other for sid, other in others.items()
                   if other.end_took > 0 and other.end_took_at is not None and other.end_took_at >= period.start}
    restored = sum(other.end_took for other in giving_back.values())
    kept = min(monthly + restored, plan.rollover_cap)
    entries = []
    if kept > monthly:
        entries.append(Entry(
            TransactionType.SUBSCRIPTION_GRANT, CreditPool.MONTHLY, kept - monthly,
            f"Monthly credits of {', '.join(sorted(giving_back))} rolled over: "
            "it ended after this period began, so the renewal holds them"))
    elif monthly > kept:
        entries.append(Entry(
            TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -(monthly - kept),
            f"Monthly credits expired at renewal ({kept} rolled over, cap {plan.rollover_cap})"))
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
        rolled_over=kept, rollover_cap=plan.rollover_cap,
    )
    gave_back = {sid: replace(other, end_took=0) for sid, other in giving_back.items()}
    return Decision(APPLIED, tuple(entries), new_state, resets_monthly=True, others=gave_back or None)


def _into_later(monthly: int, state: SubscriptionState, plan: Plan, quantity: int, period: Period, later_id: str,
                later: SubscriptionState) -> Decision:
    """A renewal older than another subscription's last renewal, which holds the pool.

    If this subscription was still running when the later one renewed, this renewal came first
    in creation order: it reset the pool (keeping up to its own cap) and the later renewal then
    rolled that over, up to its cap. The later renewal kept `r` of the pool, so the pool it found
    was `r` (or at least its cap, when `r` is the cap); what it would have kept instead is
    `min(min(r, own cap) + allowance, its cap)`, and the difference moves now. A renewal older
    than one of its own subscription's is `stale` (what a skipped period would have rolled over
    is not recomputed), and so is one of a subscription that ended before the later one renewed.
    """
    if state.period_start is not None and period.start <= state.period_start:
        if period.start == state.period_start:
            return Decision(DUPLICATE, reason="this period was already renewed")
        return Decision(STALE, reason="a later period was already renewed")
    ended = state.canceled_at if state.canceled_at is not None else state.paused_at
    if ended is not None and ended < later.period_start:
        return Decision(STALE, reason=f"subscription {later_id} was renewed for a later period, after this one ended")
    grant = allowance(plan, quantity)
    kept = min(min(later.rolled_over, plan.rollover_cap) + grant, later.rollover_cap)
    new_state = replace(state, price_id=plan.price_id, period_start=period.start, period_end=period.end, granted=grant,
                        rolled_over=0, rollover_cap=plan.rollover_cap)
    # The pool may have been spent since: an expiry takes at most what is left.
    moved = max(kept - later.rolled_over, -max(monthly, 0))
    reason = f"subscription {later_id} renewed after this period began: it holds the pool and rolls this period over"
    if moved == 0:
        return Decision(IGNORED, (), new_state, reason=reason)
    if moved > 0:
        entry = Entry(TransactionType.SUBSCRIPTION_GRANT, CreditPool.MONTHLY, moved,
                      f"Monthly credits for {plan.price_id}, period {_day(period.start)} to {_day(period.end)}, "
                      f"rolled over into {later_id}, which renewed after it")
    else:
        entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, moved,
                      f"Monthly credits expired at the renewal of {plan.price_id} for {_day(period.start)}, "
                      f"before {later_id} rolled the pool over")
    return Decision(APPLIED, (entry,), new_state, others={later_id: replace(later, rolled_over=kept)}, reason=reason)


def _before_end(state: SubscriptionState, plan: Plan, quantity: int, period: Period, ended_at: int,
                outcome: Outcome) -> Decision:
    """A renewal of a period that began before the subscription's pause or end, arriving after it.

    In creation order the renewal came first and the end then emptied the pool: the pool stays as
    it is (`outcome`: `stale` after a cancellation, as section 4 says, `ignored` after a pause),
    and what the end would have taken is remembered (`end_took`), for a subscription that replaced
    this one and renewed before the end to roll over when it arrives.
    """
    if state.period_start is not None and period.start <= state.period_start:
        if outcome == STALE or period.start < state.period_start:
            return Decision(STALE, reason="a later period was already renewed")
        return Decision(DUPLICATE, reason="this period was already renewed")
    grant = allowance(plan, quantity)
    took = min(state.end_took, plan.rollover_cap) + grant if state.end_took_at == ended_at else state.end_took
    return Decision(outcome, (), replace(state, price_id=plan.price_id, period_start=period.start,
                                         period_end=period.end, granted=grant, rolled_over=0, end_took=took),
                    reason="the period began before the subscription was paused or ended, which took its credits")


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
    """Another subscription that is active and renewed for a period that holds `at`, if any."""
    for subscription_id in sorted(others):
        other = others[subscription_id]
        if (other.canceled_at is None and not other.paused and other.period_start is not None
                and other.period_start <= at and other.period_end is not None and other.period_end > at):
            return subscription_id
    return None


def _renewed_after(state: SubscriptionState, others: Mapping[str, SubscriptionState], at: int) -> Optional[str]:
    """The subscription (this one, as "", or another) last renewed for a period that began after `at`."""
    candidates = {"": state, **others}
    after = [(candidate.period_start, sid) for sid, candidate in candidates.items()
             if candidate.period_start is not None and candidate.period_start > at]
    return max(after)[1] if after else None


def _end(monthly: int, state: SubscriptionState, at: int, others: Mapping[str, SubscriptionState],
         new_state: SubscriptionState, what: str) -> Decision:
    """Empty the monthly pool for a pause or cancellation at `at`, as creation order would have.

    A subscription active and renewed over `at` holds the pool: nothing changes. A renewal of a
    period that began after `at` (of this or another subscription) reset the pool since: only
    what it rolled over from before is the end's to take. Otherwise the end takes the pool, and
    remembers what it took (`end_took`) for a renewal that began before it and arrives later.
    """
    holder = active_other(others, at)
    if holder is not None:
        return Decision(
            IGNORED, (), new_state,
            reason=f"subscription {holder} is active and renewed: the monthly pool holds its credits, none change",
        )
    since = _renewed_after(state, others, at)
    if since is not None:
        renewal = new_state if since == "" else others[since]
        take = min(renewal.rolled_over, monthly)
        rolled = replace(renewal, rolled_over=renewal.rolled_over - take)
        changed_others = None
        if since == "":
            new_state = rolled
        else:
            changed_others = {since: rolled}
        if take <= 0:
            return Decision(IGNORED, (), new_state, reason="a period paid since holds the pool",
                            others=changed_others)
        entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -take,
                      f"Subscription {what}: monthly credits rolled over from before it expired")
        return Decision(APPLIED, (entry,), new_state, others=changed_others)
    new_state = replace(new_state, end_took=max(monthly, 0), end_took_at=at)
    if monthly <= 0:
        return Decision(IGNORED, (), new_state, reason="the monthly pool was already empty", resets_monthly=True)
    entry = Entry(TransactionType.MONTHLY_EXPIRED, CreditPool.MONTHLY, -monthly,
                  f"Subscription {what}: monthly credits expired")
    return Decision(APPLIED, (entry,), new_state, resets_monthly=True)


def cancel(monthly: int, state: Optional[SubscriptionState], ended_at: int,
           others: Optional[Mapping[str, SubscriptionState]] = None) -> Decision:
    """Empty the monthly pool when the subscription ends, and remember when it ended.

    `others` are the user's other subscriptions: one that is active and renewed holds the pool.
    """
    state = state or SubscriptionState()
    if state.canceled_at is not None:
        return Decision(DUPLICATE, reason="the subscription's end was already applied")
    return _end(monthly, state, ended_at, others or {}, replace(state, canceled_at=ended_at), "ended")


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
    return _end(monthly, state, paused_at, others or {}, replace(state, paused_at=paused_at), "paused")


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
