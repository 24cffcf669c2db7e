"""A local stand-in for the Stripe API: Checkout Session line items, in Stripe's list shape.

It runs in a thread of the test process on a free port; `STRIPE_API_BASE` points the stripe
library at it. Bodies are built from the fixture structures (`stripe_fixtures`), pages follow
`limit` and `starting_after`, and errors use Stripe's error body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

from tests.support import stripe_fixtures


class FakeStripe:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.sessions: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[str] = []
        # Called before each answer (path) -> optional (status, body) to answer instead.
        self.intercept: Optional[Callable[[str], Optional[tuple[int, dict[str, Any]]]]] = None
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_session(self, session_id: str, *items: tuple[str, int]) -> None:
        self.sessions[session_id] = [stripe_fixtures.checkout_line_item(price, quantity) for price, quantity in items]

    def start(self) -> "FakeStripe":
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

            def do_GET(self) -> None:  # noqa: N802 - the http.server naming
                url = urlparse(self.path)
                fake.requests.append(url.path)
                if fake.intercept is not None:
                    answer = fake.intercept(url.path)
                    if answer is not None:
                        return self._send(*answer)
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, _error("invalid_request_error", "Invalid API Key provided"))
                parts = url.path.strip("/").split("/")
                if len(parts) != 5 or parts[:3] != ["v1", "checkout", "sessions"] or parts[4] != "line_items":
                    return self._send(404, _error("invalid_request_error", f"Unrecognized request URL (GET: {url.path})"))
                items = fake.sessions.get(parts[3])
                if items is None:
                    return self._send(404, _error("invalid_request_error", f"No such checkout.session: '{parts[3]}'",
                                                  code="resource_missing"))
                query = parse_qs(url.query)
                limit = int(query.get("limit", ["10"])[0])
                after = query.get("starting_after", [None])[0]
                start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
                page = items[start:start + limit]
                self._send(200, {"object": "list", "data": page, "has_more": start + limit < len(items),
                                 "url": url.path})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _error(kind: str, message: str, code: Optional[str] = None) -> dict[str, Any]:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}
