"""`scripts/local-stripe-event pack|refund|dispute|subscribe|renew|upgrade|downgrade|pause|resume|cancel|topup USER`:
what Stripe would send, sent to the local run.

- `pack USER` creates a Checkout Session for an add-on pack at the local Stripe stand-in (as the
  app would at Stripe), then sends its `checkout.session.completed`, paid, to the local webhook;
  the webhook reads the line items back from the stand-in and grants the pack's credits.
- `refund USER` sends `charge.refunded` for the user's latest pack (all of it, or `--refunded`
  cents of the charge's `--amount`, cumulative as Stripe counts).
- `dispute USER` sends `charge.dispute.created` on that charge; `--close won|lost` sends
  `charge.dispute.closed` instead.
- `subscribe USER` sends a subscription Checkout's `checkout.session.completed` and the first
  invoice's `invoice.paid` (period 1 begins now; `--price`, default the catalog's smallest plan,
  `--quantity` seats); then, for that subscription: `renew` (`invoice.paid` for the next period),
  `upgrade` / `downgrade` (`invoice.paid` `subscription_update` to the next plan up or down, or
  `--price`), `pause`, `resume`, `cancel` (`customer.subscription.paused`, `.resumed`, `.deleted`).
  The subscription's id, plan, period and clock are kept in `.local-run/stripe-subscriptions.json`
  (`$CREDITS_LOCAL_STATE` moves the directory) between commands.
- `topup USER` makes an auto top-up happen: it saves a test card (`--card`, default `visa`) as the
  default payment method of the user's customer `cus_local_USER` at the stand-in, puts the user's
  auto top-up setting through the local spend (`PUT /users/USER/settings`: `--threshold`, default
  100, `--price`, default price_pack_500, `--quantity`, `--monthly-limit`, default 100 locally),
  spends what takes the balance one credit below the threshold if it is not below already, then
  waits until the local run has charged the attempt (forwarder -> auto_topup -> stand-in ->
  payment_intent.* webhook) and prints the PaymentIntent, the setting's state and the balance.
  Cards: visa; declined (a soft decline); insufficient-funds; lost-card, stolen-card, expired-card
  (hard declines: the setting is disabled); authentication-required (the setting waits for
  action). `topup USER --complete` confirms the payment waiting for authentication, as the app
  does with the customer on session; `topup USER --resend` sends the webhook of the user's latest
  top-up payment again (the same event each time: a settled attempt answers `duplicate`).

Each event is built from Stripe's own structures (`tools.local.stripe_events`) and signed with the
run's `STRIPE_WEBHOOK_SECRET`, exactly as Stripe signs. Ids of a pack's charge and dispute are
derived from its PaymentIntent, so sending the same command again is a repeat Stripe would send.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from tools.local import stripe_events
from tools.local import stripe_subscription as subscriptions
from tools.local import stripe_topup as topups

# The local run's defaults (scripts/run_local.py); the same environment variables move them.
DEFAULT_SECRET = "whsec_local_development_secret"
DEFAULT_API_KEY = "sk_test_local_development_key"
DEFAULT_PACK_PRICE = "price_pack_500"


class LocalStripeError(Exception):
    """The stand-in or the webhook could not be reached, or knows no pack of the user."""


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"{name}_PORT", default))


def settings() -> dict[str, str]:
    return {
        "api_base": os.environ.get("STRIPE_API_BASE") or f"http://127.0.0.1:{_port('STRIPE_API', 8086)}",
        "api_key": os.environ.get("STRIPE_API_KEY") or DEFAULT_API_KEY,
        "secret": (os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_SECRET).split(",")[0].strip(),
        "webhook": os.environ.get("STRIPE_WEBHOOK_URL") or f"http://127.0.0.1:{_port('STRIPE_WEBHOOK', 8082)}/",
        "spend": os.environ.get("SPEND_URL") or f"http://127.0.0.1:{_port('SPEND', 8081)}",
    }


def _request(url: str, api_key: str, form: Optional[dict[str, str]] = None) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise LocalStripeError(f"the Stripe stand-in answered {exc.code}: {exc.read().decode(errors='replace')}") from None
    except OSError as exc:
        raise LocalStripeError(f"the Stripe stand-in at {url} does not answer ({exc}); is ./scripts/run-local.sh running?") from None


def create_pack_session(config: dict[str, str], user_id: str, price: str, quantity: int) -> dict[str, Any]:
    form = {"mode": "payment", "client_reference_id": user_id, "customer": f"cus_local_{user_id}",
            "line_items[0][price]": price, "line_items[0][quantity]": str(quantity)}
    return _request(f"{config['api_base']}/v1/checkout/sessions", config["api_key"], form)


def latest_pack(config: dict[str, str], user_id: str, session_id: Optional[str]) -> dict[str, Any]:
    if session_id:
        return _request(f"{config['api_base']}/v1/checkout/sessions/{urllib.parse.quote(session_id)}", config["api_key"])
    listing = _request(f"{config['api_base']}/v1/checkout/sessions?limit=100", config["api_key"])
    for session in listing["data"]:
        if session.get("client_reference_id") == user_id and session.get("mode") == "payment":
            return session
    raise LocalStripeError(
        f"the Stripe stand-in knows no pack of {user_id} (it forgets them when the run restarts): "
        f"run `local-stripe-event pack {user_id}` first"
    )


def send(config: dict[str, str], event: dict[str, Any]) -> tuple[int, str]:
    """POST the event to the webhook, signed as Stripe signs; the status and body it answered."""
    payload = json.dumps(event)
    request = urllib.request.Request(
        config["webhook"], data=payload.encode(), method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_events.sign(payload, config["secret"])},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        raise LocalStripeError(f"the webhook at {config['webhook']} does not answer ({exc})") from None


def _charge_id(payment_intent: str) -> str:
    return "ch_" + payment_intent.removeprefix("pi_")


def _dispute_id(payment_intent: str) -> str:
    return "dp_" + payment_intent.removeprefix("pi_")


def build(args: argparse.Namespace, config: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event to send, and the session it is about."""
    if args.kind == "pack":
        session = create_pack_session(config, args.user_id, args.price, args.quantity)
        paid = dict(session, payment_status="paid", status="complete")
        return stripe_events.event("checkout.session.completed", paid), session
    session = latest_pack(config, args.user_id, args.session)
    intent = session["payment_intent"]
    if args.kind == "refund":
        refunded = args.amount if args.refunded is None else args.refunded
        obj = stripe_events.charge(_charge_id(intent), intent, args.amount, refunded, session.get("customer"))
        return stripe_events.event("charge.refunded", obj), session
    status = args.close or "needs_response"
    obj = stripe_events.dispute(_dispute_id(intent), _charge_id(intent), intent, args.amount, status)
    kind = "charge.dispute.closed" if args.close else "charge.dispute.created"
    return stripe_events.event(kind, obj), session


SUBSCRIPTION_STEPS = {
    "subscribe": "start a subscription (checkout.session.completed, then the first invoice.paid)",
    "renew": "pay the next period (invoice.paid, subscription_cycle)",
    "upgrade": "change to a bigger plan, billed at once (invoice.paid, subscription_update)",
    "downgrade": "change to a smaller plan (invoice.paid, subscription_update)",
    "pause": "pause the subscription (customer.subscription.paused)",
    "resume": "resume it (customer.subscription.resumed)",
    "cancel": "end it (customer.subscription.deleted)",
}


def subscription_step(args: argparse.Namespace) -> tuple[subscriptions.Subscription, list[dict[str, Any]]]:
    """The subscription as it will be after the step, and the events of the step, in order."""
    if args.kind == "subscribe":
        return subscriptions.subscribe(args.user_id, args.price, args.quantity)
    if args.kind == "renew":
        return subscriptions.renew(args.user_id)
    if args.kind in ("upgrade", "downgrade"):
        return subscriptions.change_plan(args.user_id, args.price, up=args.kind == "upgrade")
    return {"pause": subscriptions.pause, "resume": subscriptions.resume, "cancel": subscriptions.cancel}[args.kind](
        args.user_id)


def run_subscription_step(args: argparse.Namespace, config: dict[str, str]) -> int:
    try:
        subscription, events = subscription_step(args)
    except subscriptions.StepRefused as exc:
        print(f"local-stripe-event: {exc}; nothing was sent", file=sys.stderr)
        return 2
    accepted = True
    for event in events:
        status, body = send(config, event)
        accepted = accepted and 200 <= status < 300
        print(f"{event['type']} {event['id']} (subscription {subscription.subscription}, {subscription.price}, "
              f"period {subscription.period}) -> {status} {body.strip()}")
        if not accepted:
            break
    if not accepted:
        print("local-stripe-event: the webhook refused it; the subscription's state is unchanged, so the same "
              "command sends the step again", file=sys.stderr)
        return 1
    subscriptions.save(subscription)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="local-stripe-event", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="kind", required=True, metavar="|".join(["pack", "refund", "dispute", *SUBSCRIPTION_STEPS, "topup"]))
    pack = sub.add_parser("pack", help="buy an add-on pack (checkout.session.completed, paid)")
    pack.add_argument("user_id", metavar="USER")
    pack.add_argument("--price", default=DEFAULT_PACK_PRICE, help=f"a catalog add-on price (default {DEFAULT_PACK_PRICE})")
    pack.add_argument("--quantity", type=int, default=1)
    for name, text in (("refund", "refund the user's latest pack (charge.refunded)"),
                       ("dispute", "dispute the user's latest pack (charge.dispute.created or .closed)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("user_id", metavar="USER")
        cmd.add_argument("--session", help="the pack's Checkout Session id (default: the user's latest pack)")
        cmd.add_argument("--amount", type=int, default=1000, help="the charge's amount in cents (default 1000)")
    sub.choices["refund"].add_argument("--refunded", type=int, help="cents refunded so far, cumulative (default: all)")
    sub.choices["dispute"].add_argument("--close", choices=["won", "lost"], help="send the dispute's closing instead")
    for name, text in SUBSCRIPTION_STEPS.items():
        step = sub.add_parser(name, help=text)
        step.add_argument("user_id", metavar="USER")
    sub.choices["subscribe"].add_argument("--price", help="a catalog plan (default: the smallest)")
    sub.choices["subscribe"].add_argument("--quantity", type=int, default=1, help="seats (default 1)")
    for name in ("upgrade", "downgrade"):
        sub.choices[name].add_argument("--price", help=f"the plan to change to (default: the next one {name[:-5]})")
    topup = sub.add_parser("topup", help="make an auto top-up happen on the local run (or --complete, --resend)")
    topup.add_argument("user_id", metavar="USER")
    topup.add_argument("--card", choices=sorted(topups.CARDS), default="visa",
                       help="the test card the charge uses (default visa)")
    topup.add_argument("--price", default=topups.DEFAULT_PRICE, help=f"a catalog add-on (default {topups.DEFAULT_PRICE})")
    topup.add_argument("--quantity", type=int, default=1, help="packs per top-up (default 1)")
    topup.add_argument("--threshold", type=int, default=topups.DEFAULT_THRESHOLD,
                       help=f"top up below this balance (default {topups.DEFAULT_THRESHOLD})")
    topup.add_argument("--monthly-limit", type=int, default=topups.LOCAL_MONTHLY_LIMIT,
                       help=f"attempts a month (default {topups.LOCAL_MONTHLY_LIMIT} locally; the API's default is 5)")
    topup.add_argument("--wait", type=float, default=30, help="seconds to wait for the outcome (default 30)")
    then = topup.add_mutually_exclusive_group()
    then.add_argument("--complete", action="store_true",
                      help="confirm the latest payment waiting for authentication, as the customer on session")
    then.add_argument("--resend", action="store_true", help="send the latest top-up payment's webhook again")
    return p


def run_topup(args: argparse.Namespace, config: dict[str, str]) -> int:
    doors = topups.Doors(config["api_base"], config["api_key"], config["spend"])
    if args.complete:
        return topups.complete(doors, args.user_id, args.wait, print)
    if args.resend:
        event = topups.resend_event(topups.latest_intent(doors, args.user_id))
        status, body = send(config, event)
        print(f"{event['type']} {event['id']} (payment {event['data']['object']['id']}, attempt "
              f"{event['data']['object']['metadata']['topup_attempt_id']}) -> {status} {body.strip()}")
        return 0 if 200 <= status < 300 else 1
    return topups.make_topup(doors, args.user_id, args.card, args.price, args.quantity, args.threshold,
                             args.monthly_limit, args.wait, print)


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    config = settings()
    if args.kind == "topup":
        try:
            return run_topup(args, config)
        except (topups.TopupError, LocalStripeError) as exc:
            print(f"local-stripe-event: {exc}", file=sys.stderr)
            return 2
    if args.kind in SUBSCRIPTION_STEPS:
        try:
            return run_subscription_step(args, config)
        except LocalStripeError as exc:
            print(f"local-stripe-event: {exc}", file=sys.stderr)
            return 2
    try:
        event, session = build(args, config)
        status, body = send(config, event)
    except LocalStripeError as exc:
        print(f"local-stripe-event: {exc}", file=sys.stderr)
        return 2
    print(f"{event['type']} {event['id']} (session {session['id']}, payment {session['payment_intent']}) -> {status} {body.strip()}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
