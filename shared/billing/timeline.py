"""A user's subscription facts, replayed in the order Stripe created them (pure, no I/O).

This is how subscription credits converge whatever order Stripe delivers in. Rules enforced here:
- every subscription fact applied (a renewal, an upgrade, a pause, a resume, an end) is kept on
  the user document (`stripe_facts`) with the time Stripe gave it: a renewal at its line's period
  start, an upgrade at its proration line's start, a pause or resume at its event's `created`, an
  end at `canceled_at`; each has the delivery number it arrived with (`epoch`);
- the monthly pool's other movements (spends, refunds, take-backs, adjustments) are kept between
  them by the kernel (`ledger.moves`), each placed right after the facts that had arrived before it;
- `replay` runs the facts in creation order, with the movements in their places, from the pool the
  timeline started with (`base`): a renewal makes the pool its allowance plus what was left, up to
  the plan's rollover cap; an upgrade adds the new allowance less what the period it falls in
  granted (nothing until that period's renewal is known); a pause
  or end empties the pool unless another subscription is active and renewed over that time; a
  renewal of a period not after the one its subscription last renewed changes
  nothing; a movement adds its delta, never below 0;
- a new fact changes the pool by what the replay with it gives less what the replay without it
  gave: a fact that arrives in creation order changes it exactly as the contract's rules say (and
  is recorded as an expiry and a grant); a fact that arrives late moves only the difference;
- so once every fact is delivered, the monthly pool is what creation order gives, whatever the
  order of delivery (spends of credits a late pause would have taken first stay spent: the pool
  does not go below 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional

FACTS = "stripe_facts"
RENEWAL, UPGRADE, PAUSE, RESUME, END = "renewal", "upgrade", "pause", "resume", "end"
# Facts at the same second: the period's invoice first, then its upgrade, then the pause and resume.
_KIND_ORDER = {RENEWAL: 0, UPGRADE: 1, RESUME: 2, PAUSE: 3, END: 4}


@dataclass(frozen=True)
class Fact:
    kind: str
    subscription_id: str
    at: int
    key: str
    epoch: int = 0
    grant: int = 0
    cap: int = 0
    period_end: int = 0
    price_id: str = ""

    @property
    def order(self) -> tuple:
        return (self.at, _KIND_ORDER[self.kind], self.subscription_id, self.key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Fact":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class Sub:
    """One subscription as the replay leaves it."""

    price_id: Optional[str] = None
    period_start: Optional[int] = None
    period_end: Optional[int] = None
    granted: int = 0
    paused: bool = False
    canceled_at: Optional[int] = None

    def holds(self, at: int) -> bool:
        return (self.canceled_at is None and not self.paused and self.period_start is not None
                and self.period_start <= at < (self.period_end or 0))


@dataclass(frozen=True)
class Timeline:
    base: int = 0
    facts: tuple[Fact, ...] = ()
    moves: tuple[tuple[int, int], ...] = ()  # (epoch, delta)

    @property
    def epoch(self) -> int:
        return len(self.facts)

    def knows(self, kind: str, key: str) -> bool:
        return any(fact.kind == kind and fact.key == key for fact in self.facts)

    def with_fact(self, fact: Fact) -> "Timeline":
        return replace(self, facts=self.facts + (replace(fact, epoch=self.epoch),))

    def is_latest(self, fact: Fact) -> bool:
        """Whether `fact` comes after every fact known (it arrives in creation order)."""
        return all(known.order < fact.order for known in self.facts)

    def to_fields(self) -> dict[str, Any]:
        return {FACTS: {"base": self.base, "facts": [fact.to_dict() for fact in self.facts]}}


def load(user_data: Optional[Mapping[str, Any]], monthly: int, moves_field: str, epoch_field: str) -> Timeline:
    """The user's timeline; a user with none starts one from the pool as it stands."""
    data = (user_data or {}).get(FACTS)
    if not isinstance(data, Mapping):
        return Timeline(base=monthly)
    facts = tuple(Fact.from_dict(item) for item in data.get("facts") or () if isinstance(item, Mapping))
    moves = tuple((int(item.get("epoch") or 0), int(item.get("delta") or 0))
                  for item in (user_data or {}).get(moves_field) or () if isinstance(item, Mapping))
    return Timeline(base=int(data.get("base") or 0), facts=facts, moves=moves)


def _steps(timeline: Timeline) -> list[tuple[tuple, Any]]:
    """Facts in creation order, each movement right after the facts that had arrived before it."""
    steps: list[tuple[tuple, Any]] = [(fact.order + (0, 0), fact) for fact in timeline.facts]
    for index, (epoch, delta) in enumerate(timeline.moves):
        before = [fact.order for fact in timeline.facts if fact.epoch < epoch]
        anchor = max(before) if before else (float("-inf"),)
        steps.append((anchor + (1, index), delta))
    return sorted(steps, key=lambda step: step[0])


def replay(timeline: Timeline) -> tuple[int, dict[str, Sub]]:
    """The monthly pool and each subscription's state after every fact, in creation order."""
    pool, subs = timeline.base, {}
    for _, step in _steps(timeline):
        if not isinstance(step, Fact):
            pool = max(pool + step, 0)
            continue
        sub = subs.get(step.subscription_id, Sub())
        pool, subs[step.subscription_id] = _apply(pool, sub, step, subs)
    return pool, subs


def _holder(subs: Mapping[str, Sub], own: str, at: int) -> bool:
    return any(sub.holds(at) for sid, sub in subs.items() if sid != own)


def _apply(pool: int, sub: Sub, fact: Fact, subs: Mapping[str, Sub]) -> tuple[int, Sub]:
    if fact.kind == RENEWAL:
        # A period that began before the end it is replayed after is the end's to take (section 4:
        # such an invoice is stale); one that begins after it is a paid period like any other.
        if sub.period_start is not None and fact.at <= sub.period_start:
            return pool, sub
        if sub.canceled_at is not None and fact.at < sub.canceled_at:
            return pool, sub
        return min(pool, fact.cap) + fact.grant, replace(
            sub, price_id=fact.price_id, period_start=fact.at, period_end=fact.period_end, granted=fact.grant,
            paused=False)
    if fact.kind == UPGRADE:
        # An upgrade counts in the period it falls in: once that period's renewal is known.
        if sub.canceled_at is not None or sub.period_start is None or not sub.period_start <= fact.at < (sub.period_end or 0):
            return pool, sub
        if fact.grant <= sub.granted:
            return pool, sub
        return pool + fact.grant - sub.granted, replace(sub, price_id=fact.price_id, granted=fact.grant)
    if fact.kind == RESUME:
        return pool, replace(sub, paused=False)
    if sub.canceled_at is not None:
        return pool, sub
    after = replace(sub, paused=True) if fact.kind == PAUSE else replace(sub, canceled_at=fact.at)
    if _holder(subs, fact.subscription_id, fact.at):
        return pool, after
    return 0, after


def states(subs: Mapping[str, Sub]) -> dict[str, dict[str, Any]]:
    """What the user document shows of each subscription (`stripe_subscriptions`)."""
    return {sid: asdict(sub) for sid, sub in subs.items()}


def known_periods(timeline: Timeline, subscription_id: str) -> Iterable[int]:
    return [fact.at for fact in timeline.facts if fact.subscription_id == subscription_id and fact.kind == RENEWAL]


@dataclass(frozen=True)
class Effect:
    """What a new fact does: the pool's change and whether it arrived in creation order."""

    before: int
    after: int
    latest: bool
    subs: dict[str, Sub] = field(default_factory=dict)

    @property
    def delta(self) -> int:
        return self.after - self.before


def effect(timeline: Timeline, fact: Fact) -> tuple[Effect, Timeline]:
    before, _ = replay(timeline)
    grown = timeline.with_fact(fact)
    after, subs = replay(grown)
    return Effect(before, after, timeline.is_latest(fact), subs), grown
