"""What the HTTP functions' server answers before a function runs: the error envelope, always.

functions-framework serves a function through gunicorn (`functions-framework --target <name>`,
locally and in Cloud Functions alike). gunicorn refuses some requests itself, before any Flask
code runs, and answers them with an HTML page; this module makes it answer in the envelope.

Rules enforced here:
- a request gunicorn cannot read is answered `{"error": {"code", "message", ...}}`, never HTML:
  a bad request line, method or HTTP version, a bad `Content-Length`, a control character or a
  bad name in a header, a malformed chunk: 400 `invalid_request` naming what was wrong
  (`fields`: `request_line`, `headers` or `body`); too many or too large headers: 431
  `headers_too_large`; a request line too long: 414 `uri_too_long`; a transfer coding it does not
  know: 501 `not_implemented`; an `Expect` it cannot meet: 417 `expectation_failed`; anything
  else: 500 `internal`;
- a declared `Content-Length` over the function's limit is 413 `payload_too_large` at once,
  before the body is read or the function runs, however little of the body was sent;
- every one of these answers closes the connection (what follows on it is not a request anyone
  can trust), and closes it gracefully so the answer is not lost to a reset;
- the server stays functions-framework's own: its application class is replaced by a subclass
  that only swaps gunicorn's worker for one derived from the worker it chose (threads, timeout
  support and everything else kept) and sets the `pre_request` hook; `install` runs when a
  function's module is imported, which functions-framework does before it builds the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from . import log


@dataclass(frozen=True)
class Refusal:
    """One answer the server gives in a function's place."""

    status: int
    reason: str
    code: str
    message: str
    field: Optional[str] = None
    problem: Optional[str] = None

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["fields"] = [{"field": self.field, "problem": self.problem or self.message}]
        return {"error": error}

    def response(self) -> bytes:
        """The whole HTTP/1.1 answer, connection closed after it."""
        body = json.dumps(self.body(), separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {self.status} {self.reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode("latin-1") + body


class BodyTooLarge(Exception):
    """The request declares a body larger than the function accepts."""

    def __init__(self, declared: int, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes ({declared} declared)")
        self.limit = limit


def _bad(field: str, problem: str) -> Refusal:
    return Refusal(400, "Bad Request", "invalid_request", "the request is not one this function can read",
                   field, problem)


def refusal_of(exc: BaseException) -> Refusal:
    """The answer to a request the server refused with `exc` (gunicorn's parse errors, ours)."""
    from gunicorn.http import errors as e

    if isinstance(exc, BodyTooLarge):
        return Refusal(413, "Payload Too Large", "payload_too_large", f"the body is larger than {exc.limit} bytes")
    if isinstance(exc, (e.InvalidResponseHeader, e.InvalidResponseHeaderName, e.ConfigurationProblem)):
        # The function's answer or the server's setup is at fault, not the caller.
        return Refusal(500, "Internal Server Error", "internal", "internal error")
    if isinstance(exc, e.LimitRequestHeaders):
        return Refusal(431, "Request Header Fields Too Large", "headers_too_large",
                       "the request's headers are too many or too large")
    if isinstance(exc, e.LimitRequestLine):
        return Refusal(414, "URI Too Long", "uri_too_long", "the request line is too long")
    if isinstance(exc, e.UnsupportedTransferCoding):
        return Refusal(501, "Not Implemented", "not_implemented", "the body's transfer coding is not supported")
    if isinstance(exc, e.ExpectationFailed):
        return Refusal(417, "Expectation Failed", "expectation_failed", "the Expect header cannot be met")
    if isinstance(exc, (e.InvalidRequestLine, e.InvalidRequestMethod, e.InvalidHTTPVersion,
                        e.InvalidProxyLine, e.InvalidProxyHeader, e.ForbiddenProxyRequest, e.InvalidH2CPreface)):
        return _bad("request_line", "is not an HTTP/1.x request line this server reads")
    if isinstance(exc, e.InvalidHeader) and str(getattr(exc, "hdr", "")).upper() == "CONTENT-LENGTH":
        return _bad("headers", "Content-Length is not one non-negative decimal length")
    if isinstance(exc, (e.InvalidHeader, e.InvalidHeaderName, e.ObsoleteFolding, e.InvalidSchemeHeaders)):
        return _bad("headers", "a header name or value is not valid (a control character, a bad name or folding)")
    if isinstance(exc, (e.InvalidChunkSize, e.ChunkMissingTerminator, e.InvalidChunkExtension)):
        return _bad("body", "cannot be read (malformed chunked encoding)")
    if isinstance(exc, e.ParseException):
        return _bad("request", "cannot be read")
    return Refusal(500, "Internal Server Error", "internal", "internal error")


def declared_length(headers: list[tuple[str, str]]) -> Optional[int]:
    """The body length a request declares (gunicorn has already refused a malformed one)."""
    for name, value in headers:
        if name.upper() == "CONTENT-LENGTH" and value.strip().isdigit():
            return int(value)
    return None


# One function per process: what it is called in logs and the largest body it accepts.
_function = "function"
_body_limit: Optional[int] = None


def refuse_large_bodies(worker, req) -> None:
    """gunicorn's `pre_request` hook: a body declared over the limit is refused before it is read."""
    declared = declared_length(req.headers)
    if _body_limit is not None and declared is not None and declared > _body_limit:
        raise BodyTooLarge(declared, _body_limit)


class EnvelopeWorker:
    """Mixed in before gunicorn's worker class: its refusals are answered in the envelope."""

    def handle_error(self, req, client, addr, exc) -> None:  # gunicorn's signature
        from gunicorn import util

        refusal = refusal_of(exc)
        if refusal.status >= 500:
            log.error("request failed in the server", function=_function, outcome=refusal.code,
                      error=type(exc).__name__, detail=str(exc)[:300])
        else:
            log.info("request refused", function=_function, outcome=refusal.code, status=refusal.status,
                     detail=str(exc)[:200])
        try:
            util.write_nonblock(client, refusal.response())
            util.close_graceful(client)
        except Exception:  # noqa: BLE001 - the caller may be gone; there is no one left to answer
            pass


def envelope_worker(base: type) -> type:
    """`base` (the worker class gunicorn chose) answering its refusals in the envelope."""
    if issubclass(base, EnvelopeWorker):
        return base
    return type(f"Envelope{base.__name__}", (EnvelopeWorker, base), {"__module__": __name__})


def install(function: str, body_limit: Optional[int] = None) -> None:
    """Serve this process's function with envelope answers and `body_limit` checked on arrival."""
    global _function, _body_limit
    _function, _body_limit = function, body_limit
    from functions_framework._http import gunicorn as framework

    if getattr(framework.GunicornApplication, "envelope", False):
        return

    class EnvelopeApplication(framework.GunicornApplication):
        envelope = True

        def load_config(self) -> None:
            super().load_config()
            self.cfg.set("worker_class", envelope_worker(self.cfg.worker_class))
            self.cfg.set("pre_request", refuse_large_bodies)

    # functions-framework looks the class up when it builds the server, after importing the function.
    framework.GunicornApplication = EnvelopeApplication
