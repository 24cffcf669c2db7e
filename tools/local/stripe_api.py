"""A local stand-in for the Stripe API: Checkout Sessions and their line items, in Stripe's shapes.

The tests run it in a thread on a free port; the local run starts it as a process
(`python -m tools.local.stripe_api --port 8086`). `STRIPE_API_BASE` points the stripe library at it.
Bodies are built from the fixture structures (`stripe_events`), pages follow `limit` and
`starting_after`, and errors use Stripe's error body. Only what the credit system and the local
event script call is served:

- `POST /v1/checkout/sessions` (form-encoded, as Stripe takes it: `mode`, `client_reference_id`,
  `customer`, `line_items[N][price]`, `line_items[N][quantity]`) creates an unpaid session;
- `GET /v1/checkout/sessions` lists them, newest first (`payment_intent`, `customer` filters);
- `GET /v1/checkout/sessions/{id}` and `GET /v1/checkout/sessions/{id}/line_items`.
Everything is kept in memory: a restart forgets every session.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
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
                return self.headers.get("Authorization") == f"Bearer {fake.api_key}"

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                url = urlparse(self.path)
                fake.requests.append(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {key: values[-1] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
                if not self._authorized():
                    return self._send(401, _error("invalid_request_error", "Invalid API Key provided"))
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

            def _missing(self, session_id: str) -> None:
                self._send(404, _error("invalid_request_error", f"No such checkout.session: '{session_id}'",
                                       code="resource_missing"))

        return Handler

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


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
    args = parser.parse_args(argv)
    try:
        FakeStripe(args.api_key, args.host, args.port).serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
