"""Helpers for promotion tests: Pub/Sub push bodies, and a function served over real HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from typing import Any, Iterator, Union

from werkzeug.serving import make_server

from tests.support.emulators import PROJECT, free_port

SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/promo-grants-promo-grant"


def message_data(grant_id: str, user_ids: list[str], amount: int, **extra: Any) -> bytes:
    return json.dumps({"grant_id": grant_id, "user_ids": user_ids, "amount": amount, **extra}).encode()


def push_body(data: Union[bytes, str], message_id: str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON body a Pub/Sub push subscription POSTs; `str` data is sent as is (not base64)."""
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {
        "message": {
            "data": encoded,
            "messageId": message_id,
            "publishTime": "2026-01-01T00:00:00.000Z",
            "attributes": attributes or {},
        },
        "subscription": SUBSCRIPTION,
    }


class Served:
    """A WSGI app served on a free loopback port, counting the requests it has answered."""

    def __init__(self, app) -> None:
        self.answered: list[int] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self._app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

    def __call__(self, environ, start_response):
        def counting_start(status, headers, exc_info=None):
            with self._lock:
                self.answered.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        with self._lock:
            self.in_flight += 1
        try:
            # The body is a list here (functions-framework's responses are not streamed).
            return list(self._app(environ, counting_start))
        finally:
            with self._lock:
                self.in_flight -= 1

    def wait_idle(self, timeout: float) -> None:
        """Until no request is being handled (a late Pub/Sub push still writing), or `timeout`."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)


@contextlib.contextmanager
def serve_app(app) -> Iterator[Served]:
    """Serve `app` (a functions-framework app) over HTTP in a thread until the block ends."""
    served = Served(app)
    server = make_server("127.0.0.1", served.port, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        thread.join(timeout=10)
        # A request already being handled goes on in its own thread after the shutdown: what it
        # writes must land before the next test reads the database.
        served.wait_idle(timeout=60)
