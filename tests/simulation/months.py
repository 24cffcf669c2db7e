"""A user's months, generated from one seed, and the ways they can arrive.

A history (`generate`) is what happens to one user over one to four months, each fact with the
time it happens, in the order Stripe, marketing, the app and support create them:

- Stripe: one subscription (a first invoice and renewals, plan changes up and down within a
  period, a pause and perhaps its resume, with the next period anchored at the resume or at the
  old cycle, a cancellation), or two, the second replacing the first (the first cancelled before
  it, or paused before it, or cancelled just after it begins), in either invoice shape, sometimes
  with `invoice.payment_succeeded` beside `invoice.paid` and the subscription Checkout; add-on
  packs bought (paid at once or later), refunded in parts (`charge.refunded` carries the
  cumulative amount), disputed (created, then closed won or lost, or not yet);
- marketing: promo grants, to the user alone or with someone else;
- the app (when `app` is drawn): spends (with a key, or a few without), holds captured in whole or
  in part, released, captured too late or left to expire, spend refunds (`POST /refunds`, whole
  or partial, with or without a key, of spends and captured holds, some of spends that were
  refused), and operator adjustments (adding to either pool, or taking permanent credits away);
- auto top-up (`_topups`, in `TOPUP_SHARE` of the histories with app calls, from draws of its own
  so the other histories stay as they were): a setting put at the start (a threshold, a pack, a
  monthly limit, a payment method that succeeds, soft-declines, hard-declines or needs
  authentication, or none), spends that cross the threshold (some racing another instance's
  spend), the setting stopped or removed right after a spend (while an attempt may be pending)
  and sometimes put again, and the scheduler's sweeps. What the charges cause (Eventarc's
  triggers, Stripe's webhooks, refunds of top-up payments) is drawn as the run charges
  (`topups.spawned`).

A delivery plan (`plan`) is the history as it arrives. Stripe's and Pub/Sub's messages arrive
after they are created, each within a window drawn for the history: promptly (seconds), within
Stripe's retry window (mostly seconds, sometimes up to three days) or in any order over the whole
history; some arrive twice (the same event again, or re-created under a fresh event id). The
app's calls are made when they happen (it calls synchronously), and some are made again later
with the same key (a reply the app lost). Each call may meet a fault of the kernel's double
(`tests/support/fake_firestore.py`): the commit lands and its reply is lost, or the commit
stalls past its deadline. Everything is drawn from the seed, so a seed replays its history.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from tools.local import stripe_events as sf

STRIPE, PROMO, APP = "stripe", "promo", "app"
# Auto top-up's deliveries: Eventarc's trigger of an attempt, and the scheduler's sweep.
TRIGGER, SWEEP = "trigger", "sweep"
LOSE_REPLY, STALL = "lose_reply", "stall"

T0 = sf.T0
HOUR, DAY, PERIOD = 3600, sf.DAY, sf.PERIOD
PRO, STARTER = "price_pro_monthly", "price_starter_monthly"
# The test catalog (tests/stripe_catalog.json): add-on price -> (credits, cents per unit).
PACKS = {"price_pack_500": (500, 1000), "price_pack_2000": (2000, 3000)}
OTHER_USER = "sim-neighbour"


@dataclass(frozen=True)
class Fact:
    """One thing that happens to the user: a Stripe event, a promo message or an app call."""

    key: str
    kind: str
    at: int
    label: str
    body: dict[str, Any]
    # What the oracle needs to know of a subscription event without parsing it again.
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def keyed(self) -> bool:
        """An app call that carries its own key, so the app may make it again safely."""
        # Two spends racing each other are made once: their answers depend on the race.
        return self.kind == APP and not self.body.get("concurrent") and (
            self.body["op"] in ("hold", "capture", "release", "adjust") or bool(self.body.get("key")))


@dataclass
class History:
    seed: int
    user_id: str
    app: bool
    facts: list[Fact] = field(default_factory=list)
    # Checkout Session id -> the line items the Stripe API returns for it.
    line_items: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # PaymentIntent -> (session id, charge id, dispute ids): the ids its money back comes under.
    payments: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    # Event id of a re-created copy -> the original event's id.
    copies: dict[str, str] = field(default_factory=dict)
    # Auto top-up (None: no setting): the customer, its default payment method, the monthly limit.
    topup: Optional[dict[str, Any]] = None
    # A top-up's PaymentIntent -> its charge, once Stripe charged it (filled as the run charges).
    topup_payments: dict[str, str] = field(default_factory=dict)
    _items: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _stripe_ids: Optional[set[str]] = field(default=None, repr=False)

    def line_item_objects(self, session_id: str) -> list[dict[str, Any]]:
        """The line items of a session as the Stripe API returns them (built once per history)."""
        if session_id not in self._items:
            self._items[session_id] = [sf.checkout_line_item(price, quantity)
                                       for price, quantity in self.line_items[session_id]]
        return self._items[session_id]

    @property
    def stripe_ids(self) -> set[str]:
        """The ids Stripe's facts give their records as source: events' and their objects' ids."""
        if self._stripe_ids is None:
            self._stripe_ids = {i for f in self.facts if f.kind == STRIPE
                                for i in (f.body["id"], f.body["data"]["object"]["id"])}
        return self._stripe_ids

    def canonical(self, source: Optional[str]) -> Optional[str]:
        return self.copies.get(source, source) if source else source


@dataclass(frozen=True)
class Delivery:
    """One arrival of a fact: when, the body it carries, and the fault its commit meets."""

    fact: Fact
    at: int
    body: dict[str, Any]
    fault: Optional[str] = None
    # Not the first arrival: a redelivery, a re-created event, or the app's call made again.
    again: bool = False

    @property
    def label(self) -> str:
        copy_of = " (re-created)" if self.body is not self.fact.body and self.fact.kind == STRIPE else ""
        return (f"{self.fact.label}{copy_of}{' again' if self.again else ''}"
                f"{f' [{self.fault}]' if self.fault else ''}")


class _Builder:
    def __init__(self, seed: int, user_id: str, rng: random.Random, history: History) -> None:
        self.seed, self.user_id, self.rng, self.history = seed, user_id, rng, history
        self.customer = f"cus_m{seed}"
        self._ids = itertools.count(1)

    def _add(self, kind: str, at: int, label: str, body: dict[str, Any], key: Optional[str] = None,
             meta: Optional[dict[str, Any]] = None) -> None:
        fact = Fact(key or body.get("id") or f"{kind}-{next(self._ids)}", kind, at, label, body, meta or {})
        self.history.facts.append(fact)

    def stripe(self, event_type: str, obj: dict[str, Any], at: int, label: str, shape: str = "current",
               meta: Optional[dict[str, Any]] = None) -> None:
        # `sf.event`'s envelope, without its deep copy: every object here is built fresh.
        body = sf.fixture(f"{sf.SHAPES[shape]}/event.json")
        body.update(id=f"evt_m{self.seed}_{next(self._ids):03d}", type=event_type, api_version=sf.SHAPES[shape],
                    created=at, data={"object": obj}, pending_webhooks=1)
        self._add(STRIPE, at, label, body, meta=meta)

    # -- subscriptions ---------------------------------------------------------------------

    def invoice(self, sub: "_Subscription", reason: str, lines: list[dict[str, Any]], at: int, label: str) -> None:
        invoice_id = f"in_m{self.seed}_{sub.name}_{next(self._ids):03d}"
        obj = sf.invoice(sub.shape, reason, lines, sub.id, self.customer, self.user_id, invoice_id)
        period = lines[-1]["period"]
        self.stripe("invoice.paid", obj, at, label, sub.shape,
                    meta={"subscription": sub.id, "reason": reason, "start": period["start"], "end": period["end"]})
        if self.rng.random() < 0.1:
            self.stripe("invoice.payment_succeeded", dict(obj), at + 1, label + " (payment_succeeded)", sub.shape)

    def subscription_event(self, sub: "_Subscription", event_type: str, at: int, status: str, label: str) -> None:
        ended = at if event_type == "customer.subscription.deleted" else None
        obj = sf.subscription(sub.id, self.customer, self.user_id, ended, sub.plan, status=status)
        self.stripe(event_type, obj, at, label, meta={"subscription": sub.id, "at": at})


@dataclass
class _Subscription:
    name: str
    id: str
    plan: str
    shape: str
    quantity: int


def _line(sub: _Subscription, price: str, start: int, end: int, amount: int = 1000, proration: bool = False):
    return sf.invoice_line(sub.shape, price, {"start": start, "end": end}, sub.id, amount=amount,
                           quantity=sub.quantity, proration=proration)


def _run_subscription(b: _Builder, sub: _Subscription, start: int, stop: int, may_end: bool) -> tuple[str, int]:
    """A subscription's invoices, plan changes, pauses and resumes from `start` until `stop`
    (or until it ends by itself, when `may_end`): how it ended ("running", "paused",
    "cancelled") and when its last fact happened."""
    rng = b.rng
    period_start, first, last = start, True, start
    while period_start < stop:
        end = period_start + PERIOD
        reason = "subscription_create" if first else "subscription_cycle"
        b.invoice(sub, reason, [_line(sub, sub.plan, period_start, end)], period_start + HOUR,
                  f"{sub.name} {'first invoice' if first else 'renewal'} {sub.plan.split('_')[1]} "
                  f"day {(period_start - T0) // DAY}")
        first, last = False, period_start + HOUR
        horizon = min(end, stop)
        if rng.random() < 0.3 and last + 3 * DAY < horizon:
            at = rng.randint(last + DAY, horizon - DAY)
            new = PRO if sub.plan == STARTER else STARTER
            lines = [_line(sub, sub.plan, at, end, amount=-600, proration=True),
                     _line(sub, new, at, end, amount=1600 if new == PRO else 400, proration=True)]
            b.invoice(sub, "subscription_update", lines, at + 60,
                      f"{sub.name} {'upgrade' if new == PRO else 'downgrade'} day {(at - T0) // DAY}")
            sub.plan, last = new, at + 60
        if may_end and rng.random() < 0.3 and last + 2 * DAY < horizon:
            paused = rng.randint(last + DAY, horizon - DAY)
            b.subscription_event(sub, "customer.subscription.paused", paused, "paused",
                                 f"{sub.name} paused day {(paused - T0) // DAY}")
            last = paused
            if rng.random() < 0.35 or paused + 3 * DAY >= stop:
                return "paused", last
            resumed = paused + rng.randint(2, 25) * DAY
            b.subscription_event(sub, "customer.subscription.resumed", resumed, "active",
                                 f"{sub.name} resumed day {(resumed - T0) // DAY}")
            last = resumed
            if rng.random() < 0.5:
                period_start = resumed  # billing_cycle_anchor=now: a new period starts at the resume
            else:
                while period_start <= resumed:
                    period_start += PERIOD
            continue
        if may_end and rng.random() < 0.15 and last + 2 * DAY < horizon:
            ended = rng.randint(last + DAY, horizon - HOUR)
            b.subscription_event(sub, "customer.subscription.deleted", ended, "canceled",
                                 f"{sub.name} cancelled day {(ended - T0) // DAY}")
            return "cancelled", ended
        period_start = end
    return "running", last


def _subscriptions(b: _Builder, months: int) -> None:
    rng = b.rng
    stop = T0 + months * PERIOD

    def new(name: str) -> _Subscription:
        return _Subscription(name, f"sub_m{b.seed}_{name}", rng.choice([STARTER, PRO]),
                             rng.choice(["current", "current", "old"]), 2 if rng.random() < 0.1 else 1)

    first = new("A")
    if rng.random() < 0.3:
        session = sf.checkout_session("subscription", "paid", b.customer, client_reference_id=b.user_id,
                                      session_id=f"cs_m{b.seed}_subscribe", subscription=first.id)
        b.stripe("checkout.session.completed", session, T0 - 120, "A subscribed (checkout)")
    if months < 2 or rng.random() < 0.65:
        _run_subscription(b, first, T0, stop, may_end=True)
        return
    switch = rng.randint(T0 + PERIOD // 2, stop - PERIOD // 2)
    mode = rng.choice(["after cancellation", "after pause", "overlapping"])
    if mode == "overlapping":
        _run_subscription(b, first, T0, switch, may_end=False)
        ended = switch + rng.randint(HOUR, 5 * DAY)
        b.subscription_event(first, "customer.subscription.deleted", ended, "canceled",
                             f"A cancelled day {(ended - T0) // DAY}, after B began")
    else:
        cut = switch - rng.randint(HOUR, 5 * DAY)
        _, last = _run_subscription(b, first, T0, cut - HOUR, may_end=False)
        cut = max(cut, last + 60)
        switch = max(switch, cut + 60)
        if mode == "after cancellation":
            b.subscription_event(first, "customer.subscription.deleted", cut, "canceled",
                                 f"A cancelled day {(cut - T0) // DAY}")
        else:
            b.subscription_event(first, "customer.subscription.paused", cut, "paused",
                                 f"A paused day {(cut - T0) // DAY}")
            if rng.random() < 0.5:
                ended = switch + rng.randint(DAY, 20 * DAY)
                b.subscription_event(first, "customer.subscription.deleted", ended, "canceled",
                                     f"A (paused) cancelled day {(ended - T0) // DAY}")
    second = new("B")
    _run_subscription(b, second, switch, stop, may_end=True)


# -- packs, money back, promotions ----------------------------------------------------------

def _packs(b: _Builder, months: int) -> None:
    rng = b.rng
    stop = T0 + months * PERIOD
    for n in range(rng.choice([0, 0, 1, 1, 2])):
        price = rng.choice(["price_pack_500", "price_pack_500", "price_pack_2000"])
        quantity = rng.randint(1, 2)
        credits, cents = PACKS[price]
        session_id, intent, charge_id = f"cs_m{b.seed}_{n}", f"pi_m{b.seed}_{n}", f"ch_m{b.seed}_{n}"
        b.history.line_items[session_id] = [(price, quantity)]
        bought = rng.randint(T0 - 5 * DAY, stop - DAY)
        name = f"pack {n} ({credits * quantity})"
        if rng.random() < 0.15:
            unpaid = sf.checkout_session("payment", "unpaid", b.customer, client_reference_id=b.user_id,
                                         session_id=session_id, payment_intent=intent)
            b.stripe("checkout.session.completed", unpaid, bought, f"{name} checkout, unpaid")
            bought += rng.randint(HOUR, 3 * DAY)
            paid = dict(unpaid, payment_status="paid")
            b.stripe("checkout.session.async_payment_succeeded", paid, bought, f"{name} paid later")
        else:
            session = sf.checkout_session("payment", "paid", b.customer, client_reference_id=b.user_id,
                                          session_id=session_id, payment_intent=intent)
            b.stripe("checkout.session.completed", session, bought, f"{name} bought")
        amount = cents * quantity
        refunded, at = 0, bought
        for _ in range(rng.choice([0, 0, 1, 2])):
            refunded = min(amount, refunded + rng.choice([1, amount // 4, amount // 3, amount // 2, amount]))
            at += rng.randint(HOUR, 10 * DAY)
            charge = sf.charge(charge_id, intent, amount, refunded, b.customer)
            b.stripe("charge.refunded", charge, at, f"{name} refunded to {refunded}/{amount}")
        disputes: tuple[str, ...] = ()
        if rng.random() < 0.35:
            dispute_id = f"dp_m{b.seed}_{n}"
            disputes = (dispute_id,)
            at = bought + rng.randint(DAY, 30 * DAY)
            created = sf.dispute(dispute_id, charge_id, intent, amount, "needs_response")
            b.stripe("charge.dispute.created", created, at, f"{name} disputed")
            if rng.random() < 0.75:
                status = rng.choice(["won", "lost"])
                closed = sf.dispute(dispute_id, charge_id, intent, amount, status)
                b.stripe("charge.dispute.closed", closed, at + rng.randint(DAY, 20 * DAY), f"{name} dispute {status}")
        b.history.payments[intent] = (session_id, charge_id, disputes)


def _promotions(b: _Builder, months: int) -> None:
    rng = b.rng
    for n in range(rng.choice([0, 0, 1, 2])):
        users = [b.user_id, OTHER_USER] if rng.random() < 0.2 else [b.user_id]
        amount = rng.choice([10, 50, 700])
        body = {"grant_id": f"promo-m{b.seed}-{n}", "user_ids": users, "amount": amount,
                "description": "Simulated promotion"}
        b._add(PROMO, rng.randint(T0, T0 + months * PERIOD), f"promo {n} ({amount})", body, key=body["grant_id"])


# -- the app's calls --------------------------------------------------------------------------

SPEND_AMOUNTS = [1, 25, 120, 300, 650, 1500, 4000]


def _app(b: _Builder, months: int) -> None:
    rng = b.rng
    stop = T0 + months * PERIOD
    seed = b.seed
    spent_keys: list[tuple[int, str]] = []  # (time, key) of spends and holds, refund targets
    for n, at in enumerate(sorted(rng.randint(T0, stop) for _ in range(rng.randint(2, 8)))):
        kind = rng.choices(["spend", "hold", "refund", "adjust"], weights=[45, 25, 18, 12])[0]
        if kind == "refund" and not spent_keys:
            kind = "spend"
        if kind == "spend":
            keyed = rng.random() < 0.9
            key = f"spend-m{seed}-{n}" if keyed else None
            amount = rng.choice(SPEND_AMOUNTS)
            b._add(APP, at, f"spend {amount}{'' if keyed else ' (no key)'}",
                   {"op": "spend", "amount": amount, "key": key, "description": f"Render {n}"}, key=f"app-{n}")
            if keyed:
                spent_keys.append((at, key))
        elif kind == "hold":
            hold_id, amount = f"hold-m{seed}-{n}", rng.choice(SPEND_AMOUNTS)
            expires_in = rng.choice([120, 900, 3600])
            b._add(APP, at, f"hold {amount} for {expires_in}s",
                   {"op": "hold", "amount": amount, "hold_id": hold_id, "expires_in": expires_in}, key=f"app-{n}")
            spent_keys.append((at, hold_id))
            fate = rng.choices(["capture", "partial", "release", "expire", "late"], weights=[30, 20, 20, 20, 10])[0]
            if fate == "expire":
                continue
            settle_at = at + (expires_in + rng.randint(1, HOUR) if fate == "late" else rng.randint(1, expires_in - 1))
            if fate == "release":
                op = {"op": "release", "hold_id": hold_id}
            else:
                op = {"op": "capture", "hold_id": hold_id,
                      "amount": rng.randint(1, amount) if fate == "partial" else None}
            label = f"{op['op']} of hold {n}" + (" (too late)" if fate == "late" else "")
            b._add(APP, settle_at, label, op, key=f"app-{n}-settle")
        elif kind == "refund":
            _, target = rng.choice(spent_keys)
            keyed = rng.random() < 0.7
            amount = rng.choice([None, None, 1, 30, 200])
            b._add(APP, at, f"refund {amount or 'the rest'} of {target}{'' if keyed else ' (no key)'}",
                   {"op": "refund", "spend_key": target, "amount": amount,
                    "key": f"refund-m{seed}-{n}" if keyed else None}, key=f"app-{n}")
        else:
            pool, amount = rng.choice([("permanent", 100), ("permanent", 500), ("monthly", 200),
                                       ("permanent", -50), ("permanent", -300)])
            b._add(APP, at, f"adjust {pool} {amount:+d}",
                   {"op": "adjust", "pool": pool, "amount": amount, "key": f"adjust-m{seed}-{n}"}, key=f"app-{n}")


# -- auto top-up ----------------------------------------------------------------------------------

# Stripe's test payment methods (`tools/local/stripe_api.py`) and what an off-session charge does.
SUCCEEDS, SOFT, HARD, AUTH = "pm_card_visa", "pm_card_chargeDeclined", "pm_card_chargeDeclinedLostCard", \
    "pm_card_authenticationRequired"
TOPUP_SHARE = 0.3  # of the histories with app calls
TOPUP_SPENDS = [50, 200, 400, 900, 1600]


def _topups(b: _Builder, months: int, rng: random.Random) -> None:
    """An auto top-up setting put at the start, spends that cross its threshold (two at once, at
    times), the setting stopped while an attempt may be pending (and perhaps put again), and
    the scheduler's sweeps. The triggers, the charges' webhooks and refunds of top-up payments
    come from what the run charges (`runner.FakeBackend.spawned`)."""
    stop = T0 + months * PERIOD
    seed = b.seed
    method = rng.choices([SUCCEEDS, SOFT, HARD, AUTH, None], weights=[6, 3, 1, 1, 1])[0]
    in_setting = method is not None and rng.random() < 0.4
    setting: dict[str, Any] = {"enabled": True, "threshold": rng.choice([100, 400, 1500]),
                               "price_id": rng.choice(["price_pack_500", "price_pack_500", "price_pack_2000"]),
                               "quantity": rng.choice([1, 1, 2]), "monthly_limit": rng.choice([1, 2, 3, 5])}
    if rng.random() < 0.85:
        setting["customer"] = b.customer  # else the customer linked by the subscription's events, if any
    if in_setting:
        setting["payment_method"] = method
    b.history.topup = {"customer": b.customer, "default_method": None if in_setting else method,
                       "monthly_limit": setting["monthly_limit"]}
    described = f"{setting['threshold']}, {method or 'no payment method'}"
    b._add(APP, T0 + rng.randint(0, DAY), f"auto top-up on ({described})", {"op": "settings", "auto_topup": setting},
           key="topup-on")
    for n in range(rng.randint(2, 6)):
        at = rng.randint(T0 + DAY, stop)
        amount = rng.choice(TOPUP_SPENDS)
        body: dict[str, Any] = {"op": "spend", "amount": amount, "key": f"tspend-m{seed}-{n}",
                                "description": f"Top-up render {n}"}
        label = f"spend {amount}"
        if rng.random() < 0.3:
            other = rng.choice(TOPUP_SPENDS[:3])
            body["concurrent"] = {"amount": other, "key": f"tspend-m{seed}-{n}-c"}
            label += f" racing a spend {other}"
        b._add(APP, at, label, body, key=f"tapp-{n}")
        if rng.random() < 0.2:
            off = at + rng.randint(1, 900)
            stopped = None if rng.random() < 0.3 else {**setting, "enabled": False}
            b._add(APP, off, f"auto top-up {'removed' if stopped is None else 'off'}",
                   {"op": "settings", "auto_topup": stopped}, key=f"topup-off-{n}")
            if rng.random() < 0.5:
                b._add(APP, off + rng.randint(HOUR, 5 * DAY), "auto top-up on again",
                       {"op": "settings", "auto_topup": setting}, key=f"topup-on-{n}")
    for n in range(rng.randint(0, 3)):
        b._add(SWEEP, rng.randint(T0, stop), f"sweep {n}", {"op": "sweep"}, key=f"sweep-{n}")


def generate(seed: int, app: Optional[bool] = None, topup: bool = True) -> History:
    """One user's months, as Stripe, marketing, the app and support create them, drawn from `seed`.

    `app` None: the seed decides whether the app calls too (about two histories in three); then
    the seed decides whether the user has an auto top-up setting (`TOPUP_SHARE` of them), unless
    `topup` is False.
    """
    rng = random.Random(seed)
    months = rng.choice([1, 2, 2, 3, 3, 4])
    with_app = rng.random() < 0.65 if app is None else app
    history = History(seed, f"sim-{seed}", with_app)
    b = _Builder(seed, history.user_id, rng, history)
    if rng.random() < 0.85:
        _subscriptions(b, months)
    _packs(b, months)
    _promotions(b, months)
    if with_app:
        _app(b, months)
        # Its own draws, so the histories without it are what they were before it existed.
        topups = random.Random(seed * 1_000_003 + 7)
        if topups.random() < TOPUP_SHARE and topup:
            _topups(b, months, topups)
    # Creation order; facts made at the same second keep the order they were made in.
    history.facts.sort(key=lambda f: f.at)
    return history


# -- delivery plans ----------------------------------------------------------------------------

WINDOWS = ("prompt", "retry window", "retry window", "any order")


def plan(history: History, rng: random.Random, faults: bool = True) -> list[Delivery]:
    """The history as it arrives, in arrival order (see the module's docstring)."""
    window = rng.choice(WINDOWS)
    span = max(f.at for f in history.facts) - min(f.at for f in history.facts) + 3 * DAY if history.facts else 0

    def arrival(at: int) -> int:
        if window == "prompt":
            return at + rng.randint(0, 120)
        if window == "retry window":
            return at + (rng.randint(0, 60) if rng.random() < 0.7 else rng.randint(0, 3 * DAY))
        return at + rng.randint(0, span)

    def fault() -> Optional[str]:
        # Drawn even without faults, so a seed's arrivals are the same with and without them.
        drawn = rng.choices([None, LOSE_REPLY, STALL], weights=[8, 1, 1])[0]
        return drawn if faults else None

    deliveries: list[Delivery] = []
    for fact in history.facts:
        if fact.kind == SWEEP:
            deliveries.append(Delivery(fact, fact.at, fact.body, fault()))  # the scheduler is on time
            continue
        if fact.kind == APP:
            deliveries.append(Delivery(fact, fact.at, fact.body, fault()))
            if fact.keyed and rng.random() < 0.1:
                deliveries.append(Delivery(fact, fact.at + rng.randint(1, HOUR), fact.body, fault(), again=True))
            continue
        first = arrival(fact.at)
        deliveries.append(Delivery(fact, first, fact.body, fault()))
        if rng.random() < 0.2:
            body = fact.body
            if fact.kind == STRIPE and rng.random() < 0.5:
                body = copy.deepcopy(fact.body)
                body["id"] = f"{fact.body['id']}_r{rng.randint(0, 999)}"
                history.copies[body["id"]] = fact.body["id"]
            again = arrival(fact.at) if rng.random() < 0.5 else first + rng.randint(0, 3 * DAY)
            deliveries.append(Delivery(fact, again, body, fault(), again=True))
    order = sorted(range(len(deliveries)), key=lambda i: (deliveries[i].at, i))
    # The first of a fact's arrivals is the one that is not `again`.
    arrived: set[str] = set()
    planned = []
    for i in order:
        d = deliveries[i]
        first_time = d.fact.key not in arrived
        arrived.add(d.fact.key)
        if d.again == first_time and d.fact.kind != APP:
            d = Delivery(d.fact, d.at, d.body, d.fault, again=not first_time)
        planned.append(d)
    return planned


def in_creation_order(history: History) -> list[Delivery]:
    """Every fact once, when it is created, without faults."""
    return [Delivery(fact, fact.at, fact.body) for fact in history.facts]


def raw(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
