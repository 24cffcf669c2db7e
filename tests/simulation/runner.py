"""Delivering a history's plan to the credit system, and the oracle that judges every step of it.

`Runner` delivers a plan (`months.plan`) to a backend, step by step, in arrival order, on a
simulated clock that every decision reads (`SimClock`): the real services on the in-memory
Firestore (`FakeBackend`, here), or the real functions on the emulators (the backend of
`tests/e2e/test_user_months_on_emulators.py`). A step answered 503 (a stalled commit, fenced) is
delivered again later: Stripe retries within hours, Pub/Sub within minutes, the app at once.

What it checks after every step (`check_ledger`, `AppModel.check`):
- the ledger invariant: each pool is the sum of its records and never negative; the records are
  numbered 1, 2, 3... (`seq`) and each one's `balance_after` is the running sum;
  `credits_owed` is the sum of its parts; `total_spent` is what was spent less what was refunded, and `total_earned`
  what was granted net of what Stripe took back and gave back (`shared.ledger.accounts`);
- nothing applied twice: at most one grant, purchase, reinstatement or expiry per Stripe fact
  (a re-created event counts as its original), one promo grant per grant id;
- no payment loses more than it granted: what its charge and dispute took (from the pools, or
  still owed) less what was given back never exceeds what its session granted;
- a 503 wrote nothing to the ledger; a commit stalled past its deadline never lands later;
- every app answer is right for the ledger the app saw: a spend or hold is refused (402, with the
  balance) exactly when the balance before it was smaller, and otherwise draws the permanent
  pool first; a key made again answers the first response and writes nothing; a hold settles
  once (another settlement is `hold_not_open`, also once it has expired); a refund gives back at
  most what its spend has left (`refund_exceeds_spend` otherwise, `spend_not_found` for a spend
  that never happened), and its records give back exactly what it answered; an adjustment that
  would take a pool below zero is `pool_underflow`.

With auto top-up (`topups`), each attempt a step creates is triggered none to three times (late
at times), the charges' webhooks come once or twice in any order with the charge's answer, which
Stripe's double may lose, refunds of top-up payments follow, and a closing sweep charges what was
never triggered; `topups.check_step` judges every step (one pending attempt at most, none while
one is pending or the setting is stopped, the monthly limit, one PaymentIntent per attempt,
declines and refunds disabling) and `topups.check_end` the end (each succeeded payment's credits
landed exactly once).

And once the plan is delivered (`check_final`): each spend key drew once, each hold drew once
and gave back what was not captured, each refund's credits went back once, each adjustment
and promotion was applied once, each pack granted once. `judge` then compares the run with its
reference runs (see `test_user_months.py`), and `shrink` drops the facts a failing history can
fail without, the same way (its message without the numbers), to start a minimized case.
"""

from __future__ import annotations

import gc
import heapq
import json
import multiprocessing
import os
import random
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Protocol

from tests.simulation import months, topups
from tests.simulation.months import APP, PROMO, STRIPE, SWEEP, TRIGGER, Delivery, History

MONTHLY, PERMANENT = "monthly", "permanent"
# Histories are checked in this many processes at once (1: in the test's own process).
WORKERS = int(os.environ.get("CREDITS_SIM_WORKERS") or min(4, os.cpu_count() or 1))
REPLAY = "CREDITS_SIM_SEED={seed} .venv/bin/python -m pytest tests/simulation/test_user_months.py -q"
STRIPE_OUTCOMES = {"applied", "duplicate", "stale", "ignored"}
# Record types granted once per Stripe fact (or promotion) that caused them.
ONCE_PER_FACT = {"subscription_grant", "addon_purchase", "promo_grant", "addon_reinstated"}
EARNING = {"subscription_grant", "addon_purchase", "promo_grant", "adjustment", "auto_topup"}
VOLATILE = {"transaction_id", "created_at", "last_updated", "message", "settled_at"}


def when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def epoch_of(text: Any) -> Optional[float]:
    """An ISO 8601 time with a zone, as seconds (None for anything else)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


class SimClock:
    """The time every decision and read of the credit system sees (`shared.store.client.utcnow`)."""

    def __init__(self) -> None:
        self.now = when(months.T0)

    def set(self, epoch: int) -> None:
        self.now = when(epoch)

    def install(self, monkeypatch) -> "SimClock":
        from shared.store import client as store_client

        clock = self

        class _Datetime:
            @staticmethod
            def now(tz=None):
                return clock.now

        # `utcnow` reads `datetime.now` of its own module: every caller sees the simulated time.
        monkeypatch.setattr(store_client, "datetime", _Datetime)
        assert store_client.utcnow() == self.now, "the store's clock is not the simulated one"
        return self


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False

    @property
    def code(self) -> Optional[str]:
        return (self.body.get("error") or {}).get("code")


@dataclass
class Ledger:
    """A user's document and records (in ledger order, `order`), as stored."""

    user: dict[str, Any]
    records: list[dict[str, Any]]

    def pools(self) -> tuple[int, int]:
        return self.user.get("credits_monthly", 0), self.user.get("credits_permanent", 0)

    def owed(self) -> int:
        return self.user.get("credits_owed", 0) or 0

    def view(self, history: History) -> dict[str, Any]:
        """Everything two runs of the same effective order must agree on."""
        return {
            "pools": self.pools(),
            "owed": self.owed(),
            "owed_by": dict(self.user.get("credits_owed_by") or {}),
            "totals": (self.user.get("total_earned", 0), self.user.get("total_spent", 0)),
            "records": [(r.get("seq"), r["type"], r["pool"], r["amount"], history.canonical(r["source"]),
                         r["description"], r.get("balance_after")) for r in self.records],
        }


def order(record: dict[str, Any]) -> tuple:
    """A record's place in its user's ledger: its `seq` (then its time, for a record without one,
    which the ledger invariant refuses)."""
    return (record.get("seq") or 0, record["created_at"], record["transaction_id"])


class Backend(Protocol):
    """Where a plan is delivered: the credit system, on one Firestore."""

    def deliver(self, delivery: Delivery) -> Answer: ...

    def balance(self) -> dict[str, Any]: ...

    def ledger(self) -> Ledger: ...

    def spawned(self, now: int) -> list[Delivery]:
        """The deliveries the last step caused (auto top-up's triggers and webhooks), if it is live."""
        ...


@dataclass
class Step:
    delivery: Delivery
    at: int
    answer: Answer


@dataclass
class Run:
    steps: list[Step]
    ledger: Ledger
    model: "AppModel"
    backend: Any = None
    # Auto top-up's attempts once every delivery (and the last sweep) is done, before the books close.
    attempts: dict[str, Any] = field(default_factory=dict)


class Failure(AssertionError):
    pass


def fail(history: History, where: str, message: str) -> None:
    raise Failure(f"seed {history.seed}, {where}: {message}")


# -- the ledger after every step ------------------------------------------------------------------

def check_ledger(history: History, ledger: Ledger, where: str) -> None:
    user, records = ledger.user, ledger.records
    monthly, permanent = ledger.pools()
    if monthly < 0 or permanent < 0:
        fail(history, where, f"a pool is negative: {monthly}, {permanent}")
    if [r.get("seq") for r in records] != list(range(1, len(records) + 1)):
        fail(history, where, f"records are not numbered 1..n: {[r.get('seq') for r in records]}")
    running = {MONTHLY: 0, PERMANENT: 0}
    earned = spent = 0
    once: Counter = Counter()
    by_source: dict[tuple[str, Optional[str]], int] = Counter()
    for r in records:
        amount = r["amount"]
        if type(amount) is not int or amount == 0:
            fail(history, where, f"record {r['seq']} has amount {amount!r}")
        running[r["pool"]] += amount
        after = r["balance_after"]
        if (after["credits_monthly"], after["credits_permanent"]) != (running[MONTHLY], running[PERMANENT]):
            fail(history, where, f"record {r['seq']} says balance_after {after}, the running sums are {running}")
        kind, source = r["type"], history.canonical(r["source"])
        if kind in EARNING and amount > 0 or kind in ("addon_refunded", "addon_reinstated"):
            earned += amount
        if kind in ("spent", "refund"):
            spent -= amount
        if kind in ONCE_PER_FACT or kind == "monthly_expired" and source in history.stripe_ids:
            # One fact may grant or expire for two reasons (a renewal, and the rollover a late
            # cancellation took from it), each once: the description tells them apart.
            once[(kind, source, r["description"] if kind in ("subscription_grant", "monthly_expired") else "")] += 1
        by_source[(kind, source)] += amount
    if (monthly, permanent) != (running[MONTHLY], running[PERMANENT]):
        fail(history, where, f"pools {monthly}, {permanent} but records sum to {running}")
    owed_by = user.get("credits_owed_by") or {}
    if ledger.owed() != sum(owed_by.values()) or any(v < 0 for v in owed_by.values()):
        fail(history, where, f"credits_owed {ledger.owed()} is not the sum of its parts {owed_by}")
    if (user.get("total_earned", 0), user.get("total_spent", 0)) != (earned, spent) and records:
        fail(history, where, f"totals {user.get('total_earned')}, {user.get('total_spent')}; "
                             f"the records say {earned}, {spent}")
    twice = {key: n for key, n in once.items() if n > 1}
    if twice:
        fail(history, where, f"applied twice: {twice}")
    for intent, (session, charge, disputes) in history.payments.items():
        granted = by_source[("addon_purchase", session)]
        lost = sum(-by_source[("addon_refunded", source)] + owed_by.get(source, 0)
                   - by_source[("addon_reinstated", source)] for source in (charge, *disputes))
        if lost > granted or lost < 0:
            fail(history, where, f"payment {intent} lost {lost} of the {granted} it granted")


# -- the app's view: what each answer must be ------------------------------------------------------

@dataclass
class _Spent:
    """A spend or hold that took credits, as the app knows it from its answers."""

    amount: int
    drawn: dict[str, int]
    hold: bool = False
    expires_at: float = 0
    status: str = "spent"  # or held, captured, released, expired
    captured: int = 0
    refunded: int = 0
    settled: Optional[tuple[tuple, Answer]] = None

    @property
    def refundable(self) -> int:
        if not self.hold:
            return self.amount - self.refunded
        return self.captured - self.refunded if self.status == "captured" else 0


@dataclass
class AppModel:
    """What the app learned from its answers, and what it expects each next answer to be."""

    history: History
    spent: dict[str, _Spent] = field(default_factory=dict)
    # Fact key -> the first 200 answer of a call with a key: a repeat must replay it.
    first: dict[str, Answer] = field(default_factory=dict)
    unkeyed_spent: int = 0
    adjusted: dict[str, int] = field(default_factory=dict)

    def expire(self, now: int) -> None:
        for spent in self.spent.values():
            if spent.hold and spent.status == "held" and spent.expires_at <= now:
                spent.status = "expired"

    def _expect(self, ok: bool, where: str, what: str, answer: Answer) -> None:
        if not ok:
            fail(self.history, where, f"{what}; answered {answer.status} {json.dumps(answer.body)[:600]}")

    def check(self, delivery: Delivery, now: int, answer: Answer, seen: Optional[dict[str, Any]],
              before: Ledger, after: Ledger, where: str) -> None:
        op, fact = delivery.body, delivery.fact
        self.expire(now)
        new = after.records[len(before.records):]
        expect = lambda ok, what: self._expect(ok, where, what, answer)  # noqa: E731
        first = self.first.get(fact.key)
        if first is not None:
            # An adjustment's replay shows the balance as it is now, beside the first record.
            same = (strip(answer.body["transaction"]) == strip(first.body["transaction"]) if op["op"] == "adjust"
                    else strip(answer.body) == strip(first.body))
            expect(answer.status == 200 and answer.replayed and same,
                   "a call made again with its key must replay the first answer")
            expect(not new, "a replay must write nothing")
            return
        kind = op["op"]
        if kind == "settings":
            # Its commit gives expired holds back, as every change does; it writes nothing else.
            released = all(r["type"] == "refund" and (self.spent.get(r["source"]) or _Spent(0, {})).hold for r in new)
            expect(answer.status == 200 and released, "a valid setting is put, and it writes no record")
        elif op.get("concurrent"):
            self._race(op, fact, now, answer, seen, new, expect)
        elif kind in ("spend", "hold"):
            self._spend(op, fact, now, answer, seen, new, expect)
        elif kind in ("capture", "release"):
            self._settle(op, fact, answer, new, expect)
        elif kind == "refund":
            self._refund(op, fact, answer, new, expect)
        else:
            self._adjust(op, fact, answer, seen, new, expect)

    def _spend(self, op, fact, now, answer, seen, new, expect) -> None:
        amount, key = op["amount"], op.get("key") or op.get("hold_id")
        balance = seen["balance"]
        if amount > balance:
            error = answer.body.get("error") or {}
            expect(answer.status == 402 and answer.code == "insufficient_credits"
                   and error.get("balance") == balance and error.get("requested") == amount,
                   f"{amount} asked of a balance of {balance} must be refused with 402")
            expect(not new, "a refused spend must write nothing")
            return
        expect(answer.status == 200, f"{amount} asked of a balance of {balance} must be spent")
        from_permanent = min(seen["credits_permanent"], amount)
        drawn = [(pool, -part) for pool, part in ((PERMANENT, from_permanent), (MONTHLY, amount - from_permanent))
                 if part]
        got = [(t["pool"], t["amount"]) for t in answer.body["transactions"]]
        expect(got == drawn and all(t["type"] == "spent" and t["source"] == key for t in answer.body["transactions"]),
               f"a spend of {amount} from {seen['credits_permanent']} permanent credits must draw {drawn}")
        expect([(r["pool"], r["amount"]) for r in new if r["type"] == "spent"] == drawn,
               f"the spend's records must be its draw {drawn}")
        if op["op"] == "hold":
            # Its decision's time may be a microsecond past the step's (after expired holds' records).
            expires = epoch_of(answer.body.get("expires_at")) or 0
            expect(answer.body.get("status") == "held" and abs(expires - now - op["expires_in"]) < 0.01,
                   "a hold is held until its expiry")
        if key is None:
            self.unkeyed_spent += amount
            return
        self.first[fact.key] = answer
        self.spent[key] = _Spent(amount, {pool: -part for pool, part in drawn}, hold=op["op"] == "hold",
                                 expires_at=epoch_of(answer.body.get("expires_at")) or 0,
                                 status="held" if op["op"] == "hold" else "spent")

    def _race(self, op, fact, now, answer, seen, new, expect) -> None:
        """Two spends at once, each judged on the balance the one that took effect before it left."""
        amounts = {op["key"]: op["amount"], op["concurrent"]["key"]: op["concurrent"]["amount"]}
        expect(sorted(got["key"] for got in answer.body["spends"]) == sorted(amounts), "both spends are answered")
        for got in answer.body["spends"]:
            mine = Answer(got["status"], got["body"])
            key = got["key"]
            spend = {"amount": amounts[key]}
            self._spend({"op": "spend", "amount": spend["amount"], "key": key}, fact, now, mine, seen,
                        [r for r in new if r["source"] == key], expect)
            if mine.status == 200:
                taken = {pool: sum(-t["amount"] for t in mine.body["transactions"] if t["pool"] == pool)
                         for pool in (PERMANENT, MONTHLY)}
                seen = {"balance": seen["balance"] - spend["amount"],
                        "credits_permanent": seen["credits_permanent"] - taken[PERMANENT]}

    def _settle(self, op, fact, answer, new, expect) -> None:
        hold = self.spent.get(op["hold_id"])
        if hold is None:
            expect(answer.status == 404 and answer.code == "hold_not_found", "a hold that was never made is not found")
            return
        request = (op["op"], op.get("amount"))
        if hold.settled is not None:
            if hold.settled[0] == request:
                expect(answer.status == 200 and answer.replayed and strip(answer.body) == strip(hold.settled[1].body),
                       "the same settlement again replays its first answer")
            else:
                expect(answer.status == 409 and answer.code == "hold_not_open"
                       and answer.body["error"].get("status") == hold.status,
                       f"a {hold.status} hold cannot be settled again")
            expect(not new, "a hold settles once")
            return
        if hold.status == "expired":
            expect(answer.status == 409 and answer.code == "hold_not_open"
                   and answer.body["error"].get("status") == "expired", "an expired hold cannot be settled")
            expect(not new, "a refused settlement writes nothing")
            return
        captured = 0 if op["op"] == "release" else (op.get("amount") or hold.amount)
        expect(answer.status == 200 and answer.body.get("captured") == captured
               and answer.body.get("status") == ("released" if op["op"] == "release" else "captured"),
               f"an open hold is {op['op']}d")
        back = sum(r["amount"] for r in new if r["source"] == op["hold_id"] and r["type"] == "refund")
        expect(back == hold.amount - captured, f"a settled hold gives back {hold.amount - captured}, not {back}")
        hold.status, hold.captured = ("released" if op["op"] == "release" else "captured"), captured
        hold.settled = (request, answer)

    def _refund(self, op, fact, answer, new, expect) -> None:
        target = self.spent.get(op["spend_key"])
        if target is None:
            expect(answer.status == 404 and answer.code == "spend_not_found",
                   f"a refund of {op['spend_key']}, which never spent, finds no spend")
            expect(not new, "a refused refund writes nothing")
            return
        refundable = target.refundable
        amount = op.get("amount") or refundable
        if refundable <= 0 or amount > refundable:
            expect(answer.status == 409 and answer.code == "refund_exceeds_spend"
                   and answer.body["error"].get("refundable") == max(refundable, 0),
                   f"{amount} asked back of {refundable} refundable must be refused")
            expect(not new, "a refused refund writes nothing")
            return
        expect(answer.status == 200 and answer.body.get("amount") == amount
               and answer.body.get("refundable") == refundable - amount,
               f"{amount} of {refundable} refundable must be refunded")
        back = sum(r["amount"] for r in new if r["source"] == op["spend_key"] and r["type"] == "refund")
        expect(back == amount, f"the refund's records give back {back}, not {amount}")
        target.refunded += amount
        if op.get("key"):
            self.first[fact.key] = answer

    def _adjust(self, op, fact, answer, seen, new, expect) -> None:
        amount, pool = op["amount"], op["pool"]
        if amount < 0 and seen[f"credits_{pool}"] < -amount:
            expect(answer.status == 409 and answer.code == "pool_underflow",
                   f"taking {-amount} from {seen[f'credits_{pool}']} {pool} credits must be refused")
            expect(not new, "a refused adjustment writes nothing")
            return
        expect(answer.status == 200 and not answer.replayed, "an adjustment within the pool applies")
        expect([(r["pool"], r["amount"]) for r in new if r["type"] == "adjustment"] == [(pool, amount)],
               "an adjustment is one record")
        self.first[fact.key] = answer
        self.adjusted[op["key"]] = amount


def strip(value: Any) -> Any:
    """An answer without what differs between two runs of the same request (ids, wall-clock times)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


# -- the run -------------------------------------------------------------------------------------

class Runner:
    def __init__(self, history: History, backend: Backend, clock: SimClock, retries: random.Random) -> None:
        self.history, self.backend, self.clock, self.retries = history, backend, clock, retries

    def run(self, plan: list[Delivery], close: bool = False, answers: bool = True) -> Run:
        """Deliver `plan`; `answers` False skips judging the app's answers (a reference run, whose
        answers are compared with the judged run's instead), so no balance is read before them."""
        history, backend = self.history, self.backend
        model = AppModel(history)
        queue = [(d.at, i, d) for i, d in enumerate(plan)]
        heapq.heapify(queue)
        counter = len(queue)
        steps: list[Step] = []
        last = min((d.at for d in plan), default=months.T0) - 1
        ledger = backend.ledger()
        live = getattr(backend, "live", False) and history.topup is not None
        attempts = backend.attempts() if history.topup is not None else {}
        sweeps = 0
        while queue or live and sweeps < 5 and any(a["status"] == "pending" for a in attempts.values()):
            if not queue:
                # The scheduler's sweep, a day after the last delivery, charges what was never triggered.
                sweeps += 1
                fact = months.Fact(f"sweep-closing-{sweeps}", SWEEP, last + months.DAY, "closing sweep",
                                   {"op": "sweep"})
                heapq.heappush(queue, (fact.at, counter, Delivery(fact, fact.at, fact.body)))
                counter += 1
            if len(steps) > 10 * len(plan) + 50 + 20 * len(attempts):
                fail(history, "delivery", "the deliveries never settle")
            at, _, delivery = heapq.heappop(queue)
            now = last = max(at, last + 1)
            self.clock.set(now)
            where = f"step {len(steps) + 1} ({delivery.label}, day {(now - months.T0) / months.DAY:.2f})"
            op = delivery.body.get("op") if delivery.fact.kind == APP else None
            seen = backend.balance() if answers and op in ("spend", "hold", "adjust") else None
            setting_before = ledger.user.get("auto_topup")
            answer = backend.deliver(delivery)
            after = backend.ledger()
            check_ledger(history, after, where)
            if history.topup is not None:
                attempts_after = backend.attempts()
                topups.check_step(history, backend.stripe, delivery, answer, attempts, attempts_after, setting_before,
                                  after.user.get("auto_topup"), after.records[len(ledger.records):],
                                  lambda message: fail(history, where, message))
                attempts = attempts_after
                for spawned in backend.spawned(now):
                    heapq.heappush(queue, (spawned.at, counter, spawned))
                    counter += 1
            if answer.status == 503 or left_for_later(delivery, answer):
                if answer.status == 503 and (*after.pools(), after.owed(), len(after.records)) != (
                        *ledger.pools(), ledger.owed(), len(ledger.records)):
                    fail(history, where, "answered 503 but the ledger changed")
                retry = {STRIPE: lambda: self.retries.randint(60, 2 * months.HOUR),
                         PROMO: lambda: self.retries.randint(10, 600), APP: lambda: 1,
                         TRIGGER: lambda: self.retries.randint(10, 600),
                         SWEEP: lambda: self.retries.randint(60, 900)}[delivery.fact.kind]()
                again = Delivery(delivery.fact, now + retry, delivery.body, None, delivery.again)
                heapq.heappush(queue, (again.at, counter, again))
                counter += 1
            elif delivery.fact.kind == STRIPE:
                if answer.status != 200 or answer.body.get("outcome") not in STRIPE_OUTCOMES:
                    fail(history, where, f"Stripe was answered {answer.status} {answer.body}")
            elif delivery.fact.kind in (PROMO, TRIGGER, SWEEP):
                if answer.status != 200:
                    fail(history, where, f"the {delivery.fact.kind} was answered {answer.status} {answer.body}")
            elif answers:
                model.check(delivery, now, answer, seen, ledger, after, where)
            steps.append(Step(delivery, now, answer))
            ledger = after
        final_attempts = attempts
        if close and any(d.fact.kind == APP and d.body["op"] == "hold" for d in plan):
            # The books close later: one more change, so every expired hold's release is written.
            now = last + 10 * months.DAY
            self.clock.set(now)
            model.expire(now)
            closing = months.Fact("close", APP, now, "closing adjustment",
                                  {"op": "adjust", "pool": PERMANENT, "amount": 1, "key": f"close-m{history.seed}"})
            answer = backend.deliver(Delivery(closing, now, closing.body))
            if answer.status != 200:
                fail(history, "closing", f"the closing adjustment was answered {answer.status}")
            model.adjusted[closing.body["key"]] = 1
            ledger = backend.ledger()
            check_ledger(history, ledger, "the closing adjustment")
        return Run(steps, ledger, model, backend, final_attempts)


def ends_without_a_subscription(history: History) -> bool:
    """Whether, in creation order, every subscription of the user ends paused or cancelled, and no
    operator puts credits in the monthly pool: then it must end empty (CONTRACT section 4: "a
    subscription that is paused or canceled holds no monthly credits whatever arrives after")."""
    status: dict[str, str] = {}
    for fact in history.facts:
        if fact.kind == APP and fact.body["op"] == "adjust" and fact.body["pool"] == MONTHLY:
            return False
        if fact.kind == STRIPE and "subscription" in fact.meta:
            kind = fact.body["type"]
            current = status.setdefault(fact.meta["subscription"], "active")
            if kind == "customer.subscription.paused" and current != "canceled":
                status[fact.meta["subscription"]] = "paused"
            elif kind == "customer.subscription.resumed" and current != "canceled":
                status[fact.meta["subscription"]] = "active"
            elif kind == "customer.subscription.deleted":
                status[fact.meta["subscription"]] = "canceled"
    return all(value != "active" for value in status.values())


def check_final(history: History, run: Run) -> None:
    """Once everything is delivered (and the books closed): each key, hold, refund, adjustment,
    promotion and pack took effect exactly once."""
    model, records = run.model, run.ledger.records
    sums: Counter = Counter()
    counts: Counter = Counter()
    for r in records:
        sums[(r["type"], r["source"])] += r["amount"]
        counts[(r["type"], r["source"])] += 1
    where = "the end"
    for key, spent in model.spent.items():
        if sums[("spent", key)] != -spent.amount:
            fail(history, where, f"{key} drew {-sums[('spent', key)]}, not {spent.amount} once")
        back = spent.refunded + (spent.amount - spent.captured if spent.hold else 0)
        if sums[("refund", key)] != back:
            fail(history, where, f"{key} was given back {sums[('refund', key)]}, not {back}")
        if -sums[("monthly_expired", key)] > spent.drawn.get(MONTHLY, 0):
            fail(history, where, f"{key} expired more monthly credits than it drew")
        if spent.hold and spent.status == "held":
            fail(history, where, f"hold {key} is still open after its expiry")
    if sums[("spent", None)] != -model.unkeyed_spent:
        fail(history, where, f"spends without a key drew {-sums[('spent', None)]}, answered {model.unkeyed_spent}")
    adjustments = [r for r in records if r["type"] == "adjustment"]
    if sorted(r["amount"] for r in adjustments) != sorted(model.adjusted.values()):
        fail(history, where, f"adjustments {[r['amount'] for r in adjustments]}, answered {model.adjusted}")
    for fact in history.facts:
        if fact.kind == PROMO and counts[("promo_grant", fact.body["grant_id"])] != 1:
            grants = counts[("promo_grant", fact.body["grant_id"])]
            fail(history, where, f"promotion {fact.body['grant_id']} granted {grants} times")
    for session, _, _ in history.payments.values():
        if counts[("addon_purchase", session)] != 1:
            fail(history, where, f"pack {session} granted {counts[('addon_purchase', session)]} times")
    if history.topup is not None and run.backend is not None:
        topups.check_end(history, run.backend.stripe, records, run.attempts,
                         lambda message: fail(history, where, message))


# -- the two comparisons -------------------------------------------------------------------------

def left_for_later(delivery: Delivery, answer: Answer) -> bool:
    """A sweep that left an attempt pending after a fault (`retry_later`): like a 503, the scheduler
    runs it again later (a history has one user, so such a sweep charged nothing else)."""
    return (delivery.fact.kind == SWEEP and answer.status == 200
            and bool((answer.body.get("outcomes") or {}).get("retry_later")))


def effective(history: History, run: Run) -> list[tuple[Delivery, Answer]]:
    """The plan as it took effect, with the answers it got: each Stripe or Pub/Sub fact at its
    first arrival not answered 503, each app call that was not a 503 or a replay of an earlier
    success; without faults."""
    arrived: set[str] = set()
    succeeded: set[str] = set()
    kept = []
    for step in run.steps:
        d, answer = step.delivery, step.answer
        if answer.status == 503 or left_for_later(d, answer):
            continue
        if d.fact.kind != APP:
            if d.fact.key in arrived:
                continue
            arrived.add(d.fact.key)
        else:
            if d.fact.key in succeeded and (answer.replayed or answer.status != 200):
                continue
            if d.fact.keyed and answer.status == 200:
                succeeded.add(d.fact.key)
        kept.append((Delivery(d.fact, step.at, d.body), answer))
    return kept


def skippable(history: History, order: list[Delivery]) -> set[str]:
    """The facts CONTRACT section 4 lets an arrival order leave out: a renewal for a period older
    than one of the same subscription already renewed (what that skipped period would have
    rolled over is not recomputed), and a plan change of a period its subscription has since
    renewed past (its credits would only have rolled over from that skipped period)."""
    latest_of: dict[str, int] = {}
    skip: set[str] = set()
    for d in order:
        fact, meta = d.fact, d.fact.meta
        if fact.kind != STRIPE or fact.body["type"] != "invoice.paid":
            continue
        sub, latest = meta["subscription"], latest_of.get(meta["subscription"])
        if meta["reason"] in ("subscription_create", "subscription_cycle"):
            if latest is not None and meta["start"] < latest:
                skip.add(fact.key)
            else:
                latest_of[sub] = meta["start"]
        elif latest is not None and meta["end"] <= latest:
            skip.add(fact.key)
    return skip


# -- judging a history ------------------------------------------------------------------------------

def deliver(history, deliveries, monkeypatch, clock, close, answers=True):
    backend = FakeBackend(history, monkeypatch, live=answers)
    return Runner(history, backend, clock, random.Random(history.seed)).run(deliveries, close, answers)


def check_history(seed: int, monkeypatch, clock) -> None:
    history = months.generate(seed)
    check_plan(history, months.plan(history, random.Random(seed)), monkeypatch, clock)


def check_plan(history: History, plan: list[Delivery], monkeypatch, clock) -> None:
    judge(history, deliver(history, plan, monkeypatch, clock, close=history.app), monkeypatch, clock)


def judge(history, run, monkeypatch, clock) -> None:
    """Check a delivered run's end, and compare it with the history delivered as it took effect
    (app histories) or in creation order (Stripe and marketing alone): see the module's docstring."""
    seed = history.seed
    check_final(history, run)
    if ends_without_a_subscription(history) and run.ledger.pools()[0] != 0:
        raise AssertionError(f"seed {seed}: every subscription ended paused or cancelled, yet the monthly pool "
                             f"holds {run.ledger.pools()[0]}")
    took_effect = effective(history, run)
    if history.app:
        again = deliver(history, [d for d, _ in took_effect], monkeypatch, clock, close=True, answers=False)
        for (d, answer), step in zip(took_effect, again.steps):
            if strip(answer.body) != strip(step.answer.body) or answer.status != step.answer.status:
                raise AssertionError(
                    f"seed {seed}: {d.label} answered {answer.status} {strip(answer.body)} as delivered, "
                    f"{step.answer.status} {strip(step.answer.body)} delivered as it took effect")
        got, expected = run.ledger.view(history), again.ledger.view(history)
        if got != expected:
            raise AssertionError(f"seed {seed}: the ledger as delivered differs from the ledger delivered as it "
                                 f"took effect:\n{_diff(got, expected)}")
        return
    skip = skippable(history, [d for d, _ in took_effect])
    in_order = [d for d in months.in_creation_order(history) if d.fact.key not in skip]
    expected_run = deliver(history, in_order, monkeypatch, clock, close=False, answers=False)
    got, expected = _final(run), _final(expected_run)
    if got != expected:
        raise AssertionError(f"seed {seed}: (monthly, permanent, owed) {got} as delivered, "
                             f"{expected} in creation order (less {sorted(skip)})")


def _final(run):
    # What the contract says converges. (`total_earned` need not: a late pause takes a renewal's
    # credits by not granting them, where in creation order they were granted, then expired.)
    return (*run.ledger.pools(), run.ledger.owed())


def _diff(got, expected) -> str:
    lines = []
    for name in got:
        if got[name] != expected[name]:
            if name == "records":
                for a, b in zip(got[name] + [None] * 99, expected[name] + [None] * 99):
                    if a != b:
                        lines.append(f"  record {a} | expected {b}")
                    if a is None and b is None:
                        break
            else:
                lines.append(f"  {name}: {got[name]} | expected {expected[name]}")
    return "\n".join(lines[:30])


def describe(deliveries: list[Delivery]) -> str:
    return "\n".join(f"    day {(d.at - months.T0) / months.DAY:7.2f}  {d.label}" for d in deliveries)


def _kind_of(failure: Exception) -> str:
    """What went wrong, without the numbers and the step: a smaller history must fail the same way."""
    text = str(failure) if isinstance(failure, AssertionError) else type(failure).__name__
    text = text.split(": ", 1)[-1].split("\n")[0]
    return "".join("#" if c.isdigit() else c for c in text)[:60]


def _without(history: History, dropped: set[str]) -> History:
    """The history less the facts in `dropped` (a pack whose purchase is dropped is no pack)."""
    facts = [f for f in history.facts if f.key not in dropped]
    paid = {f.body["data"]["object"]["id"] for f in facts
            if f.kind == STRIPE and f.body["type"].startswith("checkout.session")
            and f.body["data"]["object"].get("payment_status") == "paid"}
    return months.History(history.seed, history.user_id, history.app, facts, history.line_items,
                          {i: p for i, p in history.payments.items() if p[0] in paid}, history.copies,
                          history.topup)


def shrink(seed: int, monkeypatch_factory, clock_factory) -> tuple[History, list[Delivery], str]:
    """The failing history of `seed` with every fact left out that it can fail without, the same
    way: facts are dropped one at a time (all their arrivals), as long as the failure stays."""
    history = months.generate(seed)
    plan = months.plan(history, random.Random(seed))

    def failure(candidate: History, deliveries: list[Delivery]) -> Optional[str]:
        with monkeypatch_factory() as monkeypatch:
            try:
                check_plan(candidate, deliveries, monkeypatch, clock_factory(monkeypatch))
            except Exception as exc:  # noqa: BLE001 - any failure counts, if of the same kind
                return _kind_of(exc)
        return None

    kind = failure(history, plan)
    if kind is None:
        return history, plan, ""
    dropped: set[str] = set()
    for fact in list(history.facts):
        trial = dropped | {fact.key}
        smaller = _without(history, trial)
        if failure(smaller, [d for d in plan if d.fact.key not in trial]) == kind:
            dropped = trial
    return _without(history, dropped), [d for d in plan if d.fact.key not in dropped], kind


def check_seeds(seeds: list[int], shrinking: bool = False) -> list[tuple[int, str]]:
    """Check each seed's history in this process; the failures as (seed, report), in seed order.

    Sets up what the test's fixtures would (a worker process has none): the simulated clock,
    quick retries, quiet logs; the environment (catalog, no emulator) is the test's, inherited.
    """
    import pytest

    from shared.common import log, settings
    from tests.support.fake_fixtures import retry_quickly

    failures = []
    settings.reset()
    log.configure(None, "ERROR")
    # What exists before the histories lives through them: the collector need not walk it again.
    gc.freeze()
    try:
        for seed in seeds:
            # One patch context per history: the fakes it installs are dropped with it.
            with pytest.MonkeyPatch.context() as monkeypatch:
                retry_quickly(monkeypatch)
                clock = SimClock().install(monkeypatch)
                try:
                    check_history(seed, monkeypatch, clock)
                except Exception as exc:  # noqa: BLE001 - every failure is reported with its seed and replay
                    detail = str(exc) if isinstance(exc, AssertionError) else traceback.format_exc()
                    history = months.generate(seed)
                    plan = months.plan(history, random.Random(seed))
                    report = f"{detail}\n  the history as delivered:\n{describe(plan)}\n"
                    if shrinking:
                        smaller, smaller_plan, _ = shrink(seed, pytest.MonkeyPatch.context,
                                                          lambda mp: SimClock().install(retried(mp)))
                        report += (f"  the same failure with only these facts, as delivered:\n"
                                   f"{describe(smaller_plan)}\n  in creation order:\n"
                                   f"{describe(months.in_creation_order(smaller))}\n")
                    failures.append((seed, report + f"  replay it alone: {REPLAY.format(seed=seed)}"))
    finally:
        gc.unfreeze()
        log.configure(None, "DEBUG")
        settings.reset()
    return failures


def retried(monkeypatch):
    from tests.support.fake_fixtures import retry_quickly

    retry_quickly(monkeypatch)
    return monkeypatch


def check_in_workers(seeds: list[int]) -> list[tuple[int, str]]:
    """`check_seeds` over `WORKERS` processes (for a few seeds, this one)."""
    if WORKERS <= 1 or len(seeds) < 50:
        return check_seeds(seeds)
    chunks = [seeds[i::WORKERS * 4] for i in range(WORKERS * 4)]
    # A fresh interpreter per worker: the test process may hold threads (emulator clients) that
    # a forked child would inherit half-way.
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sorted(failure for found in pool.map(check_seeds, chunks) for failure in found)


# -- the services on the in-memory Firestore -------------------------------------------------------

class FakeBackend:
    """The real services (`shared.billing.service.handle`, `shared.promotions.service.grant`,
    `shared.spending`, `shared.operations.adjustments`) on a fresh in-memory Firestore, with the
    kernel double's faults armed for the commit a delivery asks for."""

    def __init__(self, history: History, monkeypatch, live: bool = True) -> None:
        from shared.billing import customers, stripe_api
        from shared.store import scans
        from tests.support.fake_firestore import FakeFirestore, install

        self.history = history
        self.fake = install(FakeFirestore(), monkeypatch)
        monkeypatch.setattr(stripe_api, "checkout_line_items", history.line_item_objects)
        self._names: set[str] = set()
        self._records: list[dict[str, Any]] = []
        # A live run draws what its charges cause (and loses Stripe's answers at times); a run
        # delivered again has those deliveries in its plan already, and no faults.
        self.live = live
        self._spawns = random.Random(history.seed * 31 + 1)
        self.stripe = topups.SimStripe(history, self.fake, random.Random(history.seed * 31 + 2) if live else None)
        self._attempts_seen: set[str] = set()
        if history.topup is not None:
            self.stripe.install(monkeypatch)
            # The queries of the sweep and of a setting without a customer, on the double (which
            # serves no queries): the same filters and order.
            monkeypatch.setattr(scans, "stale_attempts", self._stale_attempts)
            monkeypatch.setattr(customers, "customer_of", self._customer_of)

    def _stale_attempts(self, before, limit: int) -> list[dict[str, Any]]:
        from shared.ledger import collections

        found = [doc for doc in self.fake.docs(collections.TOPUPS).values()
                 if doc.get("status") == "pending" and doc["created_at"] < before]
        return sorted(found, key=lambda doc: doc["created_at"])[:limit]

    def _customer_of(self, user_id: str) -> Optional[str]:
        from shared.ledger import collections

        links = [doc for doc in self.fake.docs(collections.STRIPE_CUSTOMERS).values() if doc.get("user_id") == user_id]
        links.sort(key=lambda link: link.get("updated_at") or 0)
        return links[-1]["customer_id"] if links else None

    def spawned(self, now: int) -> list[Delivery]:
        if not self.live or self.history.topup is None:
            return []
        return topups.spawned(self.history, self.stripe, self.fake, self._attempts_seen, now, self._spawns)

    def attempts(self) -> dict[str, dict[str, Any]]:
        return topups.attempts_of(self.history, self.fake) if self.history.topup is not None else {}

    def deliver(self, delivery: Delivery) -> Answer:
        from shared.common.errors import CreditsError
        from shared.ledger import collections

        fake = self.fake
        if delivery.body.get("concurrent"):
            pass  # the racing spend's commit is the fault armed (`_call`)
        elif delivery.fault == months.LOSE_REPLY:
            fake.lose_reply_of_next_commit()
        elif delivery.fault == months.STALL:
            fake.hold_next_commit()
        try:
            answer = self._call(delivery.fact.kind, delivery.body)
        except CreditsError as exc:
            answer = Answer(exc.status, exc.body())
        finally:
            fake.disarm()  # a fault armed for a commit that never came is not carried over
        if fake.held:
            requests = list(fake.held)
            for request, result in zip(requests, fake.release_held()):
                # A credit commit (it carries its witness) was fenced before its sender heard 503:
                # it can never land. Bookkeeping outside commits may land late; it is idempotent.
                if any(f"/{collections.COMMITS}/" in (w.update.name or w.delete) for w in request.writes) \
                        and not isinstance(result, Exception):
                    fail(self.history, delivery.label, "a commit stalled past its deadline landed later")
        return answer

    def _call(self, kind: str, body: dict[str, Any]) -> Answer:
        from shared.billing import service as webhooks
        from shared.operations import adjustments
        from shared.promotions import service as promotions
        from shared.promotions.schemas import PromoMessage
        from shared.spending import holds_service
        from shared.spending import service as spending
        from shared.spending.holds import HoldRequest, SettleRequest
        from shared.spending.refunds import RefundRequest

        user_id = self.history.user_id
        if kind == TRIGGER:
            return self._trigger(body["attempt_id"])
        if kind == SWEEP:
            from shared.billing import topups as charging

            return Answer(200, charging.sweep())
        if kind == STRIPE:
            outcome = webhooks.handle(body, months.raw(body))
            return Answer(200, {"received": True, "outcome": str(outcome.outcome)})
        if kind == PROMO:
            promotions.grant(PromoMessage.model_validate(body))
            return Answer(200, {})  # acknowledged, as the function answers Pub/Sub
        op = body["op"]
        if op == "settings":
            return Answer(200, self._put_setting(body["auto_topup"]))
        if op == "spend" and body.get("concurrent"):
            return self._racing_spends(body)
        if op == "spend":
            result = spending.spend(user_id, body["amount"], body["description"], body["key"])
        elif op == "hold":
            result = holds_service.hold(HoldRequest(user_id, body["amount"], body["hold_id"],
                                                    expires_in=body["expires_in"]))
        elif op in ("capture", "release"):
            result = holds_service.settle(SettleRequest(body["hold_id"], release=op == "release",
                                                        amount=body.get("amount")))
        elif op == "refund":
            result = holds_service.refund(RefundRequest(user_id, body["spend_key"], body.get("amount"),
                                                        idempotency_key=body.get("key")))
        else:
            adjusted = adjustments.adjust(user_id, body["pool"], body["amount"], "simulated correction",
                                          "simulation", idempotency_key=body["key"])
            return Answer(200, adjusted.as_dict(), adjusted.replayed)
        return Answer(200, result.body, result.replayed)

    def _trigger(self, attempt_id: str) -> Answer:
        """Eventarc's delivery to `auto_topup`: a transient fault is redelivered (503 here), any other
        is acknowledged, as the function does."""
        from shared.billing import topups as charging
        from shared.common.errors import CreditsError

        try:
            return Answer(200, {"status": charging.charge(attempt_id)})
        except CreditsError as exc:
            if exc.transient:
                raise
            return Answer(200, {"acknowledged": exc.code})

    def _put_setting(self, setting: Optional[dict[str, Any]]) -> dict[str, Any]:
        """`PUT /users/{user_id}/settings` with `auto_topup`, as the spend function validates it."""
        from shared.billing import catalog
        from shared.spending import settings, settings_service

        value = None
        if setting is not None:
            body = settings.AutoTopupBody.model_validate(setting)
            value = body.setting(catalog.get().addon(body.price_id).permanent_credits)
        return settings_service.put_settings(self.history.user_id, {settings.AUTO_TOPUP: value})

    def _racing_spends(self, body: dict[str, Any]) -> Answer:
        """A spend, and another instance's spend of the same user landing between its read and its
        commit (or just after it, when it is refused without a commit): both answers, in the order
        they took effect."""
        from shared.common.errors import CreditsError
        from shared.spending import service as spending
        from tests.support.fake_ledger import another_instance_spends

        user_id, other = self.history.user_id, body["concurrent"]
        answers: list[dict[str, Any]] = []

        def race() -> None:
            try:
                result = another_instance_spends(user_id, other["amount"], other["key"])
                answers.append({"key": other["key"], "status": 200, "body": result.body})
            except CreditsError as exc:
                answers.append({"key": other["key"], "status": exc.status, "body": exc.body()})

        self.fake.before_next_commit(race)
        try:
            result = spending.spend(user_id, body["amount"], body["description"], body["key"])
            answers.append({"key": body["key"], "status": 200, "body": result.body})
        except CreditsError as exc:
            answers.append({"key": body["key"], "status": exc.status, "body": exc.body()})
        if len(answers) == 1:
            # Refused without a commit: the other spend comes just after instead.
            self.fake.disarm()
            race()
        return Answer(200, {"spends": answers})

    def balance(self) -> dict[str, Any]:
        from shared.spending import service as spending

        return spending.balance(self.history.user_id)

    def ledger(self) -> Ledger:
        from shared.ledger import collections

        fake, user_id = self.fake, self.history.user_id
        for name in fake.names(collections.TRANSACTIONS):
            if name not in self._names:
                self._names.add(name)
                record = fake.doc(name)
                if record["user_id"] == user_id:
                    self._records.append(record)
        self._records.sort(key=order)
        return Ledger(fake.doc(collections.user(user_id)) or {}, list(self._records))
