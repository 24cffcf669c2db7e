"""What the HTTP functions' server answers in a function's place, as plain functions (the raw-socket
checks against a real server are in tests/e2e/test_server_refusals.py)."""

from __future__ import annotations

import json

import pytest
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

from shared.common import server


@pytest.mark.parametrize("exc, status, code, field", [
    (errors.InvalidRequestLine("GARBAGE"), 400, "invalid_request", "request_line"),
    (errors.InvalidRequestMethod("G ET"), 400, "invalid_request", "request_line"),
    (errors.InvalidHTTPVersion("HTTP/9"), 400, "invalid_request", "request_line"),
    (errors.InvalidHeader("CONTENT-LENGTH"), 400, "invalid_request", "headers"),
    (errors.InvalidHeader("X-A"), 400, "invalid_request", "headers"),
    (errors.InvalidHeaderName("X A"), 400, "invalid_request", "headers"),
    (errors.InvalidChunkSize(b"zz"), 400, "invalid_request", "body"),
    (errors.LimitRequestHeaders("limit request headers fields"), 431, "headers_too_large", None),
    (errors.LimitRequestLine(9000, 8190), 414, "uri_too_long", None),
    (errors.UnsupportedTransferCoding("gzip"), 501, "not_implemented", None),
    (server.BodyTooLarge(10_000_000, 65536), 413, "payload_too_large", None),
    (errors.InvalidResponseHeader("X"), 500, "internal", None),
    (RuntimeError("boom"), 500, "internal", None),
])
def test_every_refusal_of_the_server_is_an_envelope_with_a_code_for_it(exc, status, code, field):
    refusal = server.refusal_of(exc)

    assert (refusal.status, refusal.code) == (status, code)
    body = refusal.body()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert [f["field"] for f in body["error"].get("fields", [])] == ([field] if field else [])


def test_a_refusal_is_a_whole_http_answer_that_closes_the_connection():
    raw = server.refusal_of(errors.LimitRequestHeaders("x")).response()

    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert "Connection: close" in lines and "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"error": {"code": "headers_too_large",
                                          "message": "the request's headers are too many or too large"}}


def test_the_declared_length_is_read_from_the_headers():
    assert server.declared_length([("HOST", "x"), ("CONTENT-LENGTH", "10")]) == 10
    assert server.declared_length([("HOST", "x")]) is None


def test_the_worker_keeps_gunicorn_s_own_and_answers_in_the_envelope_once_derived():
    worker = server.envelope_worker(ThreadWorker)

    assert issubclass(worker, ThreadWorker) and issubclass(worker, server.EnvelopeWorker)
    assert server.envelope_worker(worker) is worker
