"""A local stand-in for the Stripe API: Checkout Sessions and their line items, in Stripe's shapes.

The tests run it in a thread on a free port; the local run starts it as a process
(`python -m tools.local.stripe_api --port 8086`). `STRIPE_API_BASE` points the stripe library at it.
Bodies are built from the fixture structures (`stripe_events`), pages follow `limit` and
`starting_after`, and errors use Stripe's error body. Only what the credit system and the local
event script call is served:

- `POST /v1/checkout/sessions` (form-encoded, as Stripe takes it: `mode`, `client_reference_id`,
  `customer`, `line_items[N][price]`, `line_items[N][quantity]`) creates an unpaid session;
- `GET /v1/checkout/sessions` lists them, newest first (`payment_intent`, `customer` filters);
- `GET /v1/checkout/sessions/{id}` and `GET /v1/checkout/sessions/{id}/line_items`;
- auto top-up's calls: `GET /v1/prices/{id}` (every add-on of `CREDITS_CATALOG`, 1 cent per
  credit, plus those `add_price` adds), `POST /v1/customers` and `GET /v1/customers/{id}`
  (`invoice_settings[default_payment_method]`), and `POST /v1/payment_intents` off-session with
  Stripe's test payment methods: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is a soft
  decline (`generic_decline`), `pm_card_chargeDeclinedLostCard` a hard one (`lost_card`),
  `pm_card_authenticationRequired` needs authentication (`authentication_required`, the
  PaymentIntent `requires_action` with a `client_secret`); `POST /v1/payment_intents/{id}/confirm`
  completes one on session (it succeeds); `GET /v1/payment_intents/{id}`, and
  `GET /v1/payment_intents` (newest first, `customer` filter); `POST /v1/customers/{id}` changes
  a customer's `invoice_settings[default_payment_method]` (the local event script saves a test
  card that way). A create call repeated
  with the same `Idempotency-Key` gets the first answer again, as Stripe answers it. Each outcome
  queues the webhook Stripe would send (`payment_intent.succeeded` / `.payment_failed`) in
  `outbox`; with `webhook_url` and `webhook_secret` set (the local run), each is also POSTed there,
  signed as Stripe signs.
Everything is kept in memory: a restart forgets every session.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

from tools.local import stripe_events

_LINE_ITEM = re.compile(r"^line_items\[(\d+)\]\[(price|quantity)\]$")


class FakeStripe:
    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key
        self.host, self.port = host, port
        self.sessions: dict[str, list[dict[str, Any]]] = {}
        # Session objects created through the API, in creation order.
        self.created: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        # Called before each answer (path) -> optional (status, body) to answer instead.
        self.intercept: Optional[Callable[[str], Optional[tuple[int, dict[str, Any]]]]] = None
        self._server: Optional[ThreadingHTTPServer] = None
        self._lock = threading.Lock()
        self.prices: dict[str, dict[str, Any]] = _catalog_prices()
        self.customers: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        # Idempotency-Key -> (status, body) of the first answer.
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        # The webhooks Stripe would send, in order; POSTed to `webhook_url` when it is set.
        self.outbox: list[dict[str, Any]] = []
        self.webhook_url: Optional[str] = None
        self.webhook_secret: Optional[str] = None

    def add_price(self, price_id: str, unit_amount: int, currency: str = "usd") -> None:
        self.prices[price_id] = _price(price_id, unit_amount, currency)

    def add_customer(self, customer_id: Optional[str] = None, default_payment_method: Optional[str] = None) -> str:
        customer_id = customer_id or stripe_events.fresh_id("cus")
        self.customers[customer_id] = {"id": customer_id, "object": "customer",
                                       "invoice_settings": {"default_payment_method": default_payment_method}}
        return customer_id

    def create_intent(self, form: dict[str, str], key: Optional[str]) -> tuple[int, dict[str, Any]]:
        """`POST /v1/payment_intents`: the first answer for `key`, or a new PaymentIntent's."""
        with self._lock:
            if key and key in self.answers:
                return self.answers[key]
            answer = self._new_intent(form)
            if key:
                self.answers[key] = answer
        return answer

    def _new_intent(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        customer, method = form.get("customer"), form.get("payment_method")
        if customer not in self.customers:
            return 400, _error("invalid_request_error", f"No such customer: '{customer}'", code="resource_missing")
        if method not in _TEST_METHODS:
            return 400, _error("invalid_request_error", f"No such PaymentMethod: '{method}'", code="resource_missing")
        intent = {
            "id": stripe_events.fresh_id("pi"), "object": "payment_intent", "amount": int(form.get("amount", "0")),
            "currency": form.get("currency", "usd"), "customer": customer, "payment_method": method,
            "metadata": {key[len("metadata["):-1]: value for key, value in form.items() if key.startswith("metadata[")},
            "created": int(time.time()), "latest_charge": None, "last_payment_error": None,
        }
        intent["client_secret"] = f"{intent['id']}_secret_{stripe_events.fresh_id('s')[2:]}"
        code, decline = _TEST_METHODS[method]
        self.intents[intent["id"]] = intent
        if code is None:
            self._succeed(intent)
            return 200, intent
        intent["status"] = "requires_action" if code == "authentication_required" else "requires_payment_method"
        intent["last_payment_error"] = {"type": "card_error", "code": code, "decline_code": decline,
                                        "message": "Your card was declined." if code == "card_declined"
                                        else "This payment requires authentication.",
                                        "payment_method": {"id": method}}
        self._send_event("payment_intent.payment_failed", intent)
        error = {"type": "card_error", "code": code, "decline_code": decline,
                 "message": intent["last_payment_error"]["message"], "payment_intent": intent}
        return 402, {"error": error}

    def confirm_intent(self, intent_id: str) -> Optional[dict[str, Any]]:
        """The customer completes a PaymentIntent on session: it succeeds."""
        with self._lock:
            intent = self.intents.get(intent_id)
            if intent is not None and intent["status"] != "succeeded":
                intent["last_payment_error"] = None
                self._succeed(intent)
            return intent

    def _succeed(self, intent: dict[str, Any]) -> None:
        intent["status"] = "succeeded"
        intent["latest_charge"] = stripe_events.fresh_id("ch")
        self._send_event("payment_intent.succeeded", intent)

    def _send_event(self, event_type: str, intent: dict[str, Any]) -> None:
        event = stripe_events.event(event_type, intent)
        self.outbox.append(event)
        if self.webhook_url and self.webhook_secret:
            threading.Thread(target=_deliver, args=(self.webhook_url, self.webhook_secret, event), daemon=True).start()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def add_session(self, session_id: str, *items: tuple[str, int]) -> None:
        self.sessions[session_id] = [stripe_events.checkout_line_item(price, quantity) for price, quantity in items]

    def create_session(self, form: dict[str, str]) -> dict[str, Any]:
        """A Checkout Session as `POST /v1/checkout/sessions` creates it (unpaid, complete later)."""
        items: dict[int, dict[str, str]] = {}
        for key, value in form.items():
            match = _LINE_ITEM.match(key)
            if match:
                items.setdefault(int(match.group(1)), {})[match.group(2)] = value
        if not items or any("price" not in item for item in items.values()):
            raise ValueError("line_items[0][price] is required")
        mode = form.get("mode", "payment")
        session = stripe_events.checkout_session(
            mode, "unpaid", form.get("customer"), client_reference_id=form.get("client_reference_id"),
            metadata_user_id=form.get("metadata[user_id]"),
        )
        session["status"] = "open"
        with self._lock:
            self.add_session(session["id"], *((item["price"], int(item.get("quantity", "1"))) for _, item in sorted(items.items())))
            self.created[session["id"]] = session
        return session

    def start(self) -> "FakeStripe":
        """Serve from a daemon thread of this process (the tests)."""
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the local run's process)."""
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.serve_forever()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                # Stripe takes the key as a bearer token or as the basic-auth user (`curl -u key:`).
                basic = base64.b64encode(f"{fake.api_key}:".encode()).decode()
                return self.headers.get("Authorization") in (f"Bearer {fake.api_key}", f"Basic {basic}")

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                url = urlparse(self.path)
                fake.requests.append(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {key: values[-1] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
                if not self._authorized():
                    return self._send(401, _error("invalid_request_error", "Invalid API Key provided"))
                parts = url.path.strip("/").split("/")
                if url.path == "/v1/payment_intents":
                    return self._send(*fake.create_intent(form, self.headers.get("Idempotency-Key")))
                if parts[:2] == ["v1", "payment_intents"] and len(parts) == 4 and parts[3] == "confirm":
                    intent = fake.confirm_intent(parts[2])
                    return self._send(200, intent) if intent else self._missing(parts[2], "payment_intent")
                if url.path == "/v1/customers":
                    customer = fake.add_customer(form.get("id"), form.get("invoice_settings[default_payment_method]"))
                    return self._send(200, fake.customers[customer])
                if parts[:2] == ["v1", "customers"] and len(parts) == 3:
                    found = fake.customers.get(parts[2])
                    if found is None:
                        return self._missing(parts[2], "customer")
                    if "invoice_settings[default_payment_method]" in form:
                        method = form["invoice_settings[default_payment_method]"] or None
                        found["invoice_settings"]["default_payment_method"] = method
                    return self._send(200, found)
                if url.path != "/v1/checkout/sessions":
                    return self._send(404, _error("invalid_request_error", f"Unrecognized request URL (POST: {url.path})"))
                try:
                    return self._send(200, fake.create_session(form))
                except ValueError as exc:
                    return self._send(400, _error("invalid_request_error", str(exc)))

            def do_GET(self) -> None:  # noqa: N802 - the http.server naming
                url = urlparse(self.path)
                fake.requests.append(url.path)
                if fake.intercept is not None:
                    answer = fake.intercept(url.path)
                    if answer is not None:
                        return self._send(*answer)
                if not self._authorized():
                    return self._send(401, _error("invalid_request_error", "Invalid API Key provided"))
                parts = url.path.strip("/").split("/")
                query = parse_qs(url.query)
                stored = {"prices": fake.prices, "customers": fake.customers, "payment_intents": fake.intents}
                if parts == ["v1", "payment_intents"]:
                    intents = [i for i in reversed(list(fake.intents.values()))
                               if "customer" not in query or i.get("customer") == query["customer"][0]]
                    return self._send(200, _page(intents, query, url.path))
                if len(parts) == 3 and parts[0] == "v1" and parts[1] in stored:
                    found = stored[parts[1]].get(parts[2])
                    return self._send(200, found) if found else self._missing(parts[2], parts[1][:-1])
                if parts[:3] != ["v1", "checkout", "sessions"] or len(parts) > 5 or (len(parts) == 5 and parts[4] != "line_items"):
                    return self._send(404, _error("invalid_request_error", f"Unrecognized request URL (GET: {url.path})"))
                if len(parts) == 3:
                    sessions = [s for s in reversed(list(fake.created.values()))
                                if all(s.get(name) == query[name][0] for name in ("payment_intent", "customer") if name in query)]
                    return self._send(200, _page(sessions, query, url.path))
                if len(parts) == 4:
                    session = fake.created.get(parts[3])
                    if session is None:
                        return self._missing(parts[3])
                    return self._send(200, session)
                items = fake.sessions.get(parts[3])
                if items is None:
                    return self._missing(parts[3])
                self._send(200, _page(items, query, url.path))

            def _missing(self, object_id: str, kind: str = "checkout.session") -> None:
                self._send(404, _error("invalid_request_error", f"No such {kind}: '{object_id}'",
                                       code="resource_missing"))

        return Handler

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# Stripe's test payment methods: (error code, decline code) of an off-session charge, None: it succeeds.
_TEST_METHODS: dict[str, tuple[Optional[str], Optional[str]]] = {
    "pm_card_visa": (None, None),
    "pm_card_mastercard": (None, None),
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedLostCard": ("card_declined", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": ("card_declined", "stolen_card"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
    "pm_card_authenticationRequired": ("authentication_required", "authentication_required"),
}


def _price(price_id: str, unit_amount: int, currency: str) -> dict[str, Any]:
    return {"id": price_id, "object": "price", "type": "one_time", "unit_amount": unit_amount, "currency": currency,
            "active": True}


def _catalog_prices() -> dict[str, dict[str, Any]]:
    """Every add-on of `CREDITS_CATALOG` as a one-time price of 1 cent per credit (none without one)."""
    path = os.environ.get("CREDITS_CATALOG", "").strip()
    try:
        with open(path, encoding="utf-8") as handle:
            addons = json.load(handle).get("addons") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {price_id: _price(price_id, int(entry.get("permanent_credits", 0)), "usd") for price_id, entry in addons.items()
            if isinstance(entry, dict)}


def _deliver(url: str, secret: str, event: dict[str, Any]) -> None:
    """POST one webhook to the local `stripe_webhook`, signed, retried a few times as Stripe retries."""
    payload = json.dumps(event)
    for attempt in range(5):
        request = urllib.request.Request(url, data=payload.encode(), method="POST", headers={
            "Content-Type": "application/json", "Stripe-Signature": stripe_events.sign(payload, secret)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status < 500:
                    return
        except Exception:  # noqa: BLE001 - a local webhook not up yet: retried like Stripe's
            pass
        time.sleep(0.5 * (attempt + 1))


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], path: str) -> dict[str, Any]:
    limit = int(query.get("limit", ["10"])[0])
    after = query.get("starting_after", [None])[0]
    start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
    return {"object": "list", "data": items[start:start + limit], "has_more": start + limit < len(items), "url": path}


def _error(kind: str, message: str, code: Optional[str] = None) -> dict[str, Any]:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local.stripe_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True, help="the only key accepted (the run's STRIPE_API_KEY)")
    parser.add_argument("--webhook-url", help="where to POST the webhooks Stripe would send (the local stripe_webhook)")
    parser.add_argument("--webhook-secret", help="the whsec_... secret to sign them with")
    args = parser.parse_args(argv)
    try:
        fake = FakeStripe(args.api_key, args.host, args.port)
        fake.webhook_url, fake.webhook_secret = args.webhook_url, args.webhook_secret
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
