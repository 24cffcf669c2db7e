"""Auto top-up on the local run (`scripts/local-stripe-event topup USER`): make one happen, finish
one waiting for authentication, or send a top-up payment's webhook again.

Rules enforced here:
- the script does what the app and the user would, through the same doors: the test card is
  saved at the Stripe stand-in as the default payment method of the user's local customer
  (`cus_local_<user>`), the setting is put with `PUT /users/{id}/settings` on the local `spend`,
  and the balance is taken below the threshold with an ordinary `POST /spend`; the charge itself
  is the local run's: its forwarder delivers the new attempt to `auto_topup`, which charges the
  stand-in, which sends the webhook to `stripe_webhook`, as in Google Cloud;
- a spend is made only when the setting's own commit made no attempt (the balance was at or
  above the threshold), and only of what takes the balance one credit below it;
- putting the setting restarts its state, as any `PUT` does (a disabled or waiting setting starts
  again), and keeps the month's count: `--monthly-limit` defaults to 100 here, so repeated local
  runs are not stopped by the contract's default of 5;
- `--complete` confirms the user's latest PaymentIntent that waits for authentication at the
  stand-in, as the app does with the customer on session; the stand-in then sends its
  `payment_intent.succeeded`;
- `--resend` sends the webhook of the user's latest top-up PaymentIntent again, with the same
  event id each time (as Stripe's resend keeps it): `payment_intent.succeeded` or
  `.payment_failed`, as the payment stands; a settled attempt answers `duplicate`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional

from tools.local import stripe_events

DEFAULT_PRICE = "price_pack_500"
DEFAULT_THRESHOLD = 100
LOCAL_MONTHLY_LIMIT = 100
# Stripe's test payment methods the stand-in knows, by the name the script takes.
CARDS = {
    "visa": "pm_card_visa",
    "declined": "pm_card_chargeDeclined",
    "insufficient-funds": "pm_card_chargeDeclinedInsufficientFunds",
    "lost-card": "pm_card_chargeDeclinedLostCard",
    "stolen-card": "pm_card_chargeDeclinedStolenCard",
    "expired-card": "pm_card_chargeDeclinedExpiredCard",
    "authentication-required": "pm_card_authenticationRequired",
}
POLL_S = 0.25


class TopupError(Exception):
    """Something the script needs did not answer or cannot be done; the message says what to do."""


def customer_of(user_id: str) -> str:
    return f"cus_local_{user_id}"


@dataclass(frozen=True)
class Doors:
    """The local run's endpoints the script talks to."""

    api_base: str
    api_key: str
    spend: str

    def stripe(self, path: str, form: Optional[dict[str, str]] = None, missing_ok: bool = False) -> Optional[dict]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"{self.api_base}{path}", data=data,
                                         headers={"Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            raise TopupError(f"the Stripe stand-in answered {exc.code}: {exc.read().decode(errors='replace')}") from None
        except OSError as exc:
            raise TopupError(f"the Stripe stand-in at {self.api_base} does not answer ({exc}); "
                             "is ./scripts/run-local.sh running?") from None

    def api(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.spend.rstrip('/')}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise TopupError(f"{method} {path} on the local spend answered {exc.code}: "
                             f"{exc.read().decode(errors='replace').strip()}") from None
        except OSError as exc:
            raise TopupError(f"the local spend at {self.spend} does not answer ({exc}); "
                             "is ./scripts/run-local.sh running?") from None


def save_card(doors: Doors, user_id: str, method: str) -> str:
    """The user's local customer at the stand-in, with `method` as its default payment method."""
    customer = customer_of(user_id)
    form = {"invoice_settings[default_payment_method]": method}
    if doors.stripe(f"/v1/customers/{customer}", missing_ok=True) is None:
        doors.stripe("/v1/customers", {"id": customer, **form})
    else:
        doors.stripe(f"/v1/customers/{customer}", form)
    return customer


def latest_intent(doors: Doors, user_id: str, status: Optional[str] = None) -> dict[str, Any]:
    """The user's latest top-up PaymentIntent at the stand-in (with `status`, if given)."""
    listing = doors.stripe(f"/v1/payment_intents?customer={customer_of(user_id)}&limit=100") or {"data": []}
    for intent in listing["data"]:
        if (intent.get("metadata") or {}).get("topup_attempt_id") and status in (None, intent.get("status")):
            return intent
    what = f"top-up payment of {user_id} that is {status}" if status else f"top-up payment of {user_id}"
    raise TopupError(f"the Stripe stand-in knows no {what} (it forgets them when the run restarts): "
                     f"run `local-stripe-event topup {user_id}` first")


def resend_event(intent: dict[str, Any]) -> dict[str, Any]:
    """The webhook of the PaymentIntent as it stands, with an id derived from it (a resend keeps it)."""
    kind = "payment_intent.succeeded" if intent.get("status") == "succeeded" else "payment_intent.payment_failed"
    suffix = "succeeded" if kind.endswith("succeeded") else "failed"
    return stripe_events.event(kind, intent, event_id=f"evt_{intent['id'].removeprefix('pi_')}_{suffix}")


def wait_settled(doors: Doors, user_id: str, attempt_id: str, seconds: float) -> dict[str, Any]:
    """The setting once it no longer names `attempt_id` as pending (the attempt settled)."""
    deadline = time.monotonic() + seconds
    while True:
        setting = doors.api("GET", f"/users/{user_id}/settings")["auto_topup"] or {}
        if setting.get("pending_attempt") != attempt_id:
            return setting
        if time.monotonic() > deadline:
            raise TopupError(f"attempt {attempt_id} is still pending after {seconds:.0f}s: is the local run's "
                             "forwarder delivering it to auto_topup? See .local-run/logs/ledger-events-forwarder.log "
                             "and auto_topup.log")
        time.sleep(POLL_S)


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TopupError(f"{what} after {seconds:.0f}s")
        time.sleep(POLL_S)


def make_topup(doors: Doors, user_id: str, card: str, price: str, quantity: int, threshold: int,
               monthly_limit: int, wait: float, say: Callable[[str], None]) -> int:
    """Save the card, put the setting, go below the threshold if needed, and report the outcome."""
    customer = save_card(doors, user_id, CARDS[card])
    say(f"saved {CARDS[card]} as the default payment method of {customer} at the Stripe stand-in")
    before = doors.api("GET", f"/balance/{user_id}")["balance"]
    setting = doors.api("PUT", f"/users/{user_id}/settings", {"auto_topup": {
        "enabled": True, "threshold": threshold, "price_id": price, "quantity": quantity,
        "monthly_limit": monthly_limit, "customer": customer}})["auto_topup"]
    say(f"put the auto top-up setting of {user_id}: below {threshold} credits, {quantity} x {price}")
    attempt = setting["pending_attempt"]
    if attempt is None and before >= threshold:
        amount = before - threshold + 1
        doors.api("POST", "/spend", {"user_id": user_id, "amount": amount, "idempotency_key": f"local-topup-{uuid.uuid4()}",
                                     "description": "local-stripe-event topup: below the threshold"})
        say(f"spent {amount} credits: the balance went from {before} to {threshold - 1}")
        attempt = doors.api("GET", f"/users/{user_id}/settings")["auto_topup"]["pending_attempt"]
    if attempt is None:
        blocked = f"{setting['this_month']} of {setting['monthly_limit']} attempts this month" \
            if setting["this_month"] >= setting["monthly_limit"] else "no attempt was made"
        raise TopupError(f"no top-up attempt started ({blocked}); `credits topup show {user_id}` says why")
    say(f"attempt {attempt} is pending; the local run charges it ...")
    after = wait_settled(doors, user_id, attempt, wait)
    balance = doors.api("GET", f"/balance/{user_id}")["balance"]
    intent = _intent_of(doors, user_id, attempt)
    paid = f"PaymentIntent {intent['id']} {intent['status']}" if intent else "no PaymentIntent"
    state = after.get("status") + (f" ({after['reason']})" if after.get("reason") else "")
    say(f"{paid}; the setting is {state}, {after.get('failures')} failures; balance {balance}")
    if intent and intent["status"] == "requires_action":
        say(f"finish it as the customer would: local-stripe-event topup {user_id} --complete")
    return 0


def _intent_of(doors: Doors, user_id: str, attempt_id: str) -> Optional[dict[str, Any]]:
    listing = doors.stripe(f"/v1/payment_intents?customer={customer_of(user_id)}&limit=100") or {"data": []}
    return next((i for i in listing["data"] if (i.get("metadata") or {}).get("topup_attempt_id") == attempt_id), None)


def complete(doors: Doors, user_id: str, wait: float, say: Callable[[str], None]) -> int:
    """Confirm the latest PaymentIntent waiting for authentication, and wait for its credits."""
    intent = latest_intent(doors, user_id, "requires_action")
    before = doors.api("GET", f"/balance/{user_id}")["balance"]
    doors.stripe(f"/v1/payment_intents/{intent['id']}/confirm", {})
    say(f"confirmed {intent['id']} at the Stripe stand-in, as the customer on session; it sends "
        "payment_intent.succeeded to the local webhook")

    def active() -> bool:
        return (doors.api("GET", f"/users/{user_id}/settings")["auto_topup"] or {}).get("status") == "active"

    wait_for(active, wait, "the setting is not active again (did the webhook get payment_intent.succeeded? "
                           "see .local-run/logs/stripe_webhook.log)")
    say(f"the setting is active again; balance {before} -> {doors.api('GET', f'/balance/{user_id}')['balance']}")
    return 0
