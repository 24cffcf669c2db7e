"""A local user's Stripe subscription, step by step: the events Stripe sends for each step of its
life, and the little state kept between steps (`scripts/local-stripe-event subscribe|renew|...`).

Rules enforced here:
- every event is built from Stripe's own structures (`tools.local.stripe_events`, the builders
  the tests use), in the current invoice shape;
- the subscription keeps a clock of its own: period 1 begins when it is created (or after the
  user's previous subscription ended, if that is later), each renewal
  opens the next 30-day period and is created at its start, and every other step (a plan change,
  a pause, a resume, the cancellation) is created a day after the step before it, never past the
  end of the current period, so the webhook sees the steps in the order they were taken;
- Stripe sends no paid invoice while a subscription is paused and nothing after it ended, so
  `renew` of a paused subscription, or any step of an ended one, is refused before anything is sent;
- the state (subscription id, price, seats, current period, clock, status) lives in one JSON file
  under the local run's state directory (`.local-run/`, or `$CREDITS_LOCAL_STATE`), never in the
  repository root, and changes only once the webhook accepted every event of the step.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from shared.billing import catalog as catalogs
from shared.common.errors import CatalogError
from tools.local import stripe_events as sf

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "stripe-subscriptions.json"
SHAPE = "current"


class StepRefused(Exception):
    """The step cannot be taken from the subscription's state; nothing was sent."""


def state_dir() -> Path:
    return Path(os.environ.get("CREDITS_LOCAL_STATE") or ROOT / ".local-run")


@dataclass
class Subscription:
    user_id: str
    subscription: str
    customer: str
    price: str
    quantity: int
    start: int  # when period 1 began
    period: int  # the current period, 1-based
    clock: int  # when the latest step was created
    status: str  # active, paused or canceled
    changes: int = 0

    def period_bounds(self, n: Optional[int] = None) -> dict[str, int]:
        n = self.period if n is None else n
        return {"start": self.start + (n - 1) * sf.PERIOD, "end": self.start + n * sf.PERIOD}

    def tick(self) -> int:
        """The next step's time: a day later, but within the current period (halfway to its end
        once less than two days are left), always later than the step before."""
        end = self.period_bounds()["end"]
        self.clock += max(1, min(sf.DAY, (end - self.clock) // 2))
        return self.clock


def _path() -> Path:
    return state_dir() / STATE_FILE


def load_all() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_path().read_text())
    except FileNotFoundError:
        return {}


def load(user_id: str) -> Optional[Subscription]:
    data = load_all().get(user_id)
    return Subscription(**data) if data else None


def save(subscription: Subscription) -> None:
    everything = load_all()
    everything[subscription.user_id] = asdict(subscription)
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(everything, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


def _current(user_id: str) -> Subscription:
    subscription = load(user_id)
    if subscription is None:
        raise StepRefused(f"{user_id} has no local subscription: run `local-stripe-event subscribe {user_id}` first")
    if subscription.status == "canceled":
        raise StepRefused(f"{subscription.subscription} of {user_id} was canceled: "
                          f"`local-stripe-event subscribe {user_id}` starts a new one")
    return subscription


def _catalog() -> catalogs.Catalog:
    """The catalog the local webhook runs with (`$CREDITS_CATALOG`, else the run's example)."""
    try:
        return catalogs.load(os.environ.get(catalogs.ENV) or str(ROOT / "config" / "catalog.example.json"))
    except CatalogError as exc:
        raise StepRefused(str(exc)) from None


def _plan_change_target(subscription: Subscription, price: Optional[str], up: bool) -> str:
    """The plan to change to: `price`, or the catalog's next plan up (or down) by monthly credits."""
    plans = _catalog().plans
    if price is not None:
        if price not in plans:
            raise StepRefused(f"{price} is not a plan of the catalog ({', '.join(sorted(plans))})")
        if price == subscription.price:
            raise StepRefused(f"{subscription.subscription} is on {price} already")
        return price
    here = plans[subscription.price].monthly_credits if subscription.price in plans else 0
    others = [p for p in plans.values() if (p.monthly_credits > here if up else p.monthly_credits < here)]
    if not others:
        raise StepRefused(f"the catalog has no plan {'above' if up else 'below'} {subscription.price}; pass --price")
    chosen = min(others, key=lambda p: p.monthly_credits) if up else max(others, key=lambda p: p.monthly_credits)
    return chosen.price_id


def _invoice(subscription: Subscription, reason: str, lines: list[dict[str, Any]], invoice_id: str,
             created: int) -> dict[str, Any]:
    obj = sf.invoice(SHAPE, reason, lines, subscription.subscription, subscription.customer,
                     subscription.user_id, invoice_id)
    paid = max(obj["amount_due"], 0)  # a downgrade's credit is kept on the customer, nothing is paid
    obj.update(amount_due=paid, amount_paid=paid, created=created)
    return dict(sf.event("invoice.paid", obj), created=created)


def _subscription_event(subscription: Subscription, event_type: str, status: str, at: int,
                        ended_at: Optional[int] = None) -> dict[str, Any]:
    obj = sf.subscription(subscription.subscription, subscription.customer, subscription.user_id, ended_at,
                          subscription.price, status=status)
    obj["items"]["data"][0]["quantity"] = subscription.quantity
    return dict(sf.event(event_type, obj), created=at)


def _renewal(subscription: Subscription) -> dict[str, Any]:
    n = subscription.period
    line = sf.invoice_line(SHAPE, subscription.price, subscription.period_bounds(), subscription.subscription,
                           quantity=subscription.quantity)
    reason = "subscription_create" if n == 1 else "subscription_cycle"
    return _invoice(subscription, reason, [line], f"in_{subscription.subscription}_p{n}", subscription.clock)


def default_plan() -> str:
    """The catalog's smallest plan, so that `upgrade` has somewhere to go."""
    plans = _catalog().plans
    if not plans:
        raise StepRefused("the catalog has no plans")
    return min(plans.values(), key=lambda plan: (plan.monthly_credits, plan.price_id)).price_id


def subscribe(user_id: str, price: Optional[str], quantity: int, now: Optional[int] = None) -> tuple[Subscription, list]:
    """A Checkout in subscription mode, then the first invoice: period 1 begins now."""
    current = load(user_id)
    if current is not None and current.status != "canceled":
        raise StepRefused(f"{user_id} has {current.subscription} ({current.status}) already: "
                          f"`local-stripe-event cancel {user_id}` first")
    price = price or default_plan()
    if price not in _catalog().plans:
        raise StepRefused(f"{price} is not a plan of the catalog ({', '.join(sorted(_catalog().plans))})")
    if quantity < 1:
        raise StepRefused("--quantity must be at least 1")
    start = int(time.time()) if now is None else now
    if current is not None:
        # The ended one's clock may run ahead of real time: the new one begins after it ended, as
        # it would at Stripe, so its first period is not older than the old one's last.
        start = max(start, current.clock + 1)
    sub_id = f"sub_local_{secrets.token_hex(6)}"
    subscription = Subscription(user_id, sub_id, f"cus_local_{user_id}", price, quantity, start, 1, start, "active")
    session = sf.checkout_session("subscription", "paid", subscription.customer, client_reference_id=user_id,
                                  session_id=f"cs_local_{sub_id}", subscription=sub_id)
    checkout = dict(sf.event("checkout.session.completed", session), created=start)
    return subscription, [checkout, _renewal(subscription)]


def renew(user_id: str) -> tuple[Subscription, list]:
    subscription = _current(user_id)
    if subscription.status == "paused":
        raise StepRefused(f"{subscription.subscription} is paused, and Stripe sends no paid invoice while a "
                          f"subscription is paused: `local-stripe-event resume {user_id}` first")
    subscription.period += 1
    subscription.clock = subscription.period_bounds()["start"]
    return subscription, [_renewal(subscription)]


def change_plan(user_id: str, price: Optional[str], up: bool) -> tuple[Subscription, list]:
    """A plan change billed at once: `invoice.paid` `subscription_update`, prorated from now to the
    period's end (the unused time of the old plan credited, the rest of the new one charged)."""
    subscription = _current(user_id)
    if subscription.status == "paused":
        raise StepRefused(f"{subscription.subscription} is paused: `local-stripe-event resume {user_id}` first")
    target = _plan_change_target(subscription, price, up)
    at = subscription.tick()
    span = {"start": at, "end": subscription.period_bounds()["end"]}
    old_amount, new_amount = (-600, 1600) if up else (-1600, 600)
    unused = sf.invoice_line(SHAPE, subscription.price, span, subscription.subscription, amount=old_amount,
                             quantity=subscription.quantity, proration=True)
    remaining = sf.invoice_line(SHAPE, target, span, subscription.subscription, amount=new_amount,
                                quantity=subscription.quantity, proration=True)
    subscription.changes += 1
    invoice_id = f"in_{subscription.subscription}_change{subscription.changes}"
    subscription.price = target
    return subscription, [_invoice(subscription, "subscription_update", [unused, remaining], invoice_id, at)]


def pause(user_id: str) -> tuple[Subscription, list]:
    subscription = _current(user_id)
    if subscription.status == "paused":
        raise StepRefused(f"{subscription.subscription} is paused already")
    subscription.status = "paused"
    return subscription, [_subscription_event(subscription, "customer.subscription.paused", "paused",
                                              subscription.tick())]


def resume(user_id: str) -> tuple[Subscription, list]:
    subscription = _current(user_id)
    if subscription.status != "paused":
        raise StepRefused(f"{subscription.subscription} is not paused")
    subscription.status = "active"
    return subscription, [_subscription_event(subscription, "customer.subscription.resumed", "active",
                                              subscription.tick())]


def cancel(user_id: str) -> tuple[Subscription, list]:
    subscription = _current(user_id)
    at = subscription.tick()
    subscription.status = "canceled"
    return subscription, [_subscription_event(subscription, "customer.subscription.deleted", "canceled", at,
                                              ended_at=at)]
