"""Requests the server refuses before a function runs, sent as raw bytes to real functions-framework
processes: every answer is the JSON error envelope, never gunicorn's HTML page, and a body declared
over the function's limit is refused at once, however little of it is sent."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support import openapi
from tests.support.servers import serve_function
from tests.support.stripe_webhook import API_KEY, CATALOG, SECRET

# Each HTTP function and the largest body it takes (None: no limit of its own).
LIMITS = {"spend": 64 * 1024, "stripe_webhook": 512 * 1024, "operator_sweeps": 64 * 1024, "promo_grant": None}
WEBHOOK_ENV = {"STRIPE_WEBHOOK_SECRET": SECRET, "CREDITS_CATALOG": str(CATALOG), "STRIPE_API_KEY": API_KEY,
               "STRIPE_API_BASE": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def ports(firestore_emulator):
    import contextlib

    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_function(name, env=WEBHOOK_ENV if name == "stripe_webhook" else None))
                for name in LIMITS}
        yield {name: int(url.rsplit(":", 1)[1]) for name, url in urls.items()}


def exchange(port: int, raw: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes, float]:
    """Send `raw`, read until the server closes; the status, headers, body and seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), headers, body, time.monotonic() - started


def request(head: str, extra: bytes = b"", body: bytes = b"") -> bytes:
    return head.encode() + b"\r\nHost: x\r\n" + extra + b"\r\n" + body


MALFORMED = {
    "a request line that is not one": (b"GARBAGE\r\n\r\n", 400, "invalid_request", "request_line"),
    "a request line with a bad version": (b"GET / HTTP/7.5\r\nHost: x\r\n\r\n", 400, "invalid_request", "request_line"),
    "a Content-Length that is not a number": (request("POST / HTTP/1.1", b"Content-Length: abc\r\n"),
                                              400, "invalid_request", "headers"),
    "two Content-Lengths that disagree": (request("POST / HTTP/1.1", b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}"),
                                          400, "invalid_request", "headers"),
    "a control character in a header": (request("GET / HTTP/1.1", b"X-Note: a\x01b\r\n"), 400, "invalid_request",
                                        "headers"),
    "a header name with a space": (request("GET / HTTP/1.1", b"X Note: a\r\n"), 400, "invalid_request", "headers"),
    "too many headers": (request("GET / HTTP/1.1", b"".join(b"X-%d: 1\r\n" % i for i in range(150))),
                         431, "headers_too_large", None),
    "a header too large": (request("GET / HTTP/1.1", b"X-Big: " + b"a" * 10_000 + b"\r\n"), 431, "headers_too_large",
                           None),
}


@pytest.mark.parametrize("function", list(LIMITS))
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_request_the_server_cannot_read_is_answered_in_the_envelope(ports, function, case):
    raw, status, code, field = MALFORMED[case]

    got, headers, body, _ = exchange(ports[function], raw)

    assert got == status, body
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert [f["field"] for f in error.get("fields", [])] == ([field] if field else [])
    if function == "spend" and status == 400:
        assert openapi.conforms(json.loads(body), "InvalidRequestError")


@pytest.mark.parametrize("function", [name for name, limit in LIMITS.items() if limit])
@pytest.mark.parametrize("declared", ["just over the limit", "10 MB"])
def test_a_body_declared_over_the_limit_is_413_at_once_though_only_two_bytes_come(ports, function, declared):
    length = LIMITS[function] + 1 if declared == "just over the limit" else 10_000_000
    raw = request("POST /spend HTTP/1.1", f"Content-Type: application/json\r\nContent-Length: {length}\r\n".encode(),
                  b"{}")

    status, headers, body, seconds = exchange(ports[function], raw)

    assert status == 413 and seconds < 3
    assert json.loads(body) == {"error": {"code": "payload_too_large",
                                          "message": f"the body is larger than {LIMITS[function]} bytes"}}
    if function == "spend":
        assert openapi.conforms(json.loads(body), "PayloadTooLargeError")


def test_a_body_declared_at_the_limit_still_reaches_the_function(ports):
    body = json.dumps({"user_id": "u", "amount": 1, "description": "x"}).encode()
    body += b" " * (LIMITS["spend"] - len(body))
    raw = request("POST /spend HTTP/1.1", f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                  "Connection: close\r\n".encode(), body)

    status, _, answer, _ = exchange(ports["spend"], raw)

    # The function read it and decided: the user has no credits.
    assert status == 402 and json.loads(answer)["error"]["code"] == "insufficient_credits"
