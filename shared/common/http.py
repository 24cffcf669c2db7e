"""Plain HTTP plumbing shared by the functions, free of any web framework's types.

Rules enforced here:
- every error body of every function is `{"error": {"code", "message", ...}}`, whatever the
  status and whoever refused the request (our code, the router, functions-framework): the
  functions install `envelope_handler` for every exception the framework sees;
- a 405 names the allowed methods in `Allow`; a 503 carries `Retry-After`;
- a request body is read only up to its size limit, so an oversized one is refused whole, and
  a body that cannot be read (a broken chunked encoding) is the caller's 400, never a 500;
- paths, query parameters and headers are decoded as UTF-8, strictly: an id that is not UTF-8 is a
  400, never a replacement character (or the escape left as text) that could name another user.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Mapping, Optional

from . import log
from .errors import CreditsError, InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, Unavailable

JSON = {"Content-Type": "application/json"}
RETRY_AFTER_S = 1


def respond(body: Any, status: int = 200, headers: Optional[Mapping[str, str]] = None):
    return json.dumps(body, separators=(",", ":")), status, {**JSON, **(headers or {})}


def error_response(err: CreditsError):
    headers: dict[str, str] = {}
    if isinstance(err, Unavailable):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if isinstance(err, MethodNotAllowed):
        headers["Allow"] = ", ".join(err.details.get("allowed") or [])
    return respond(err.body(), err.status, headers)


INTERNAL = {"error": {"code": "internal", "message": "internal error"}}

# What the router or functions-framework refuses before our code runs, by status.
_FRAMEWORK_ERRORS = {
    400: ("invalid_request", "the request is not one this function can read"),
    404: ("not_found", "no route for this path"),
    405: ("method_not_allowed", "this route does not accept that method"),
    413: ("payload_too_large", "the body is too large"),
    415: ("unsupported_media_type", "the body is not of a type this function reads"),
}


def envelope_handler(function: str, allowed: tuple[str, ...] = ("POST",)):
    """A handler for every exception the framework catches, answering with the error envelope."""

    def handle(exc: Exception):
        if isinstance(exc, CreditsError):
            log.log("WARNING" if exc.status >= 500 else "INFO", "request refused", function=function,
                    outcome=exc.code, detail=exc.message)
            return error_response(exc)
        status = getattr(exc, "code", None)
        if isinstance(status, int) and status in _FRAMEWORK_ERRORS:
            code, message = _FRAMEWORK_ERRORS[status]
            if status == 405:
                return error_response(MethodNotAllowed(message, allowed=list(allowed)))
            if status == 400:
                # Every 400 lists what was wrong; here the framework could not read the request itself.
                return error_response(InvalidRequest(message, fields=[{"field": "request", "problem": "cannot be read"}]))
            return respond({"error": {"code": code, "message": message}}, status)
        if isinstance(status, int) and 400 <= status < 500:
            return respond({"error": {"code": "invalid_request", "message": str(exc)[:200],
                                      "fields": [{"field": "request", "problem": "refused by the server"}]}}, status)
        log.error("unexpected fault", function=function, outcome="internal", error=type(exc).__name__,
                  detail=str(exc)[:300])
        return respond(INTERNAL, 500)

    return handle


def _envelope_for(exc: Optional[Exception], status: int, function: str, allowed: tuple[str, ...]):
    """The (body, status, headers) of an error answer, for an exception or a refused status."""
    if isinstance(exc, CreditsError):
        return error_response(exc)
    if exc is not None:
        log.error("unexpected fault", function=function, outcome="internal", error=type(exc).__name__,
                  detail=str(exc)[:300])
        return respond(INTERNAL, 500)
    code, message = _FRAMEWORK_ERRORS.get(status, ("invalid_request" if status < 500 else "internal",
                                                   "the request was refused" if status < 500 else "internal error"))
    if status == 405:
        return error_response(MethodNotAllowed(message, allowed=list(allowed)))
    return respond({"error": {"code": code, "message": message}}, status)


class AsgiEnvelope:
    """ASGI middleware for a function served on functions-framework's async stack: every error
    answer (the router's 404 and 405, a refused CloudEvent's 400, a raised fault) in the envelope.

    It replaces that stack's own outermost exception middleware, which answers in plain text.
    """

    function = "function"
    allowed: tuple[str, ...] = ("POST",)

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused: dict[str, int] = {}
        started = False

        async def guarded_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and message["status"] >= 400:
                refused["status"] = message["status"]
                return
            if refused and message["type"] == "http.response.body":
                if not message.get("more_body"):
                    await self._answer(send, _envelope_for(None, refused["status"], self.function, self.allowed))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - the one place a raised fault becomes an answer
            if started:
                raise
            await self._answer(send, _envelope_for(exc, 500, self.function, self.allowed))

    @staticmethod
    async def _answer(send, answer) -> None:
        body, status, headers = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": body.encode()})


def asgi_envelope(function: str, allowed: tuple[str, ...] = ("POST",)) -> type:
    """`AsgiEnvelope` for one function, as a class the framework instantiates around its app."""
    return type("Envelope", (AsgiEnvelope,), {"function": function, "allowed": allowed})


def read_body(request, limit: int, malformed: type[CreditsError] = InvalidRequest) -> bytes:
    """The raw request body, refused with 413 when over `limit` bytes, declared or not."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    try:
        # One byte past the limit is enough to know the body is too large without reading it all.
        raw = request.stream.read(limit + 1)
    except Exception:  # noqa: BLE001 - whatever the server's reader says, the body is the caller's fault
        raise malformed("the body could not be read (malformed transfer encoding)",
                        fields=[{"field": "body", "problem": "cannot be read"}]) from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    return raw


def _utf8(raw: str, what: str) -> str:
    # WSGI hands paths and headers over as latin-1 text of the bytes on the wire.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidRequest(f"the {what} is not UTF-8 text", fields=[{"field": what, "problem": "not UTF-8"}]) from None


def path_segments(request) -> list[str]:
    """The request path's segments, decoded strictly as UTF-8 (no empty leading or trailing one).

    Read from the request line as sent (`RAW_URI`, which gunicorn and werkzeug keep), because
    servers differ in how they decode `PATH_INFO` and some replace what is not UTF-8.
    """
    environ = request.environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        raw_path = urllib.parse.urlsplit(raw_uri).path if "://" in raw_uri else raw_uri.split("?", 1)[0]
        try:
            path = urllib.parse.unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the path is not UTF-8 text", fields=[{"field": "path", "problem": "not UTF-8"}]) from None
    else:
        path = _utf8(environ.get("PATH_INFO", ""), "path")
    path = path.strip("/")
    return path.split("/") if path else []


def query_pairs(request) -> list[tuple[str, str]]:
    """The query's parameters in order, repeats included, decoded strictly as UTF-8: a query that
    is not UTF-8 is a 400, never another id (a server leaves `%FF` as those three characters)."""
    raw = request.environ.get("QUERY_STRING", "")
    try:
        # Unquoted as latin-1, each escaped byte becomes the one character that encodes back to it.
        return [(_utf8_strict(name), _utf8_strict(value))
                for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True, encoding="latin-1")]
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidRequest("the query is not UTF-8 text", fields=[{"field": "query", "problem": "not UTF-8"}]) from None


def query(request) -> dict[str, str]:
    """The query's parameters, the first value of each name (see `query_pairs`)."""
    params: dict[str, str] = {}
    for name, value in query_pairs(request):
        params.setdefault(name, value)
    return params


def _utf8_strict(latin: str) -> str:
    return latin.encode("latin-1").decode("utf-8")


def header(request, name: str) -> Optional[str]:
    """A header's value, decoded strictly as UTF-8, or None if absent."""
    value = request.headers.get(name)
    return None if value is None else _utf8(value, name)


def not_found(request) -> NotFound:
    return NotFound("no route for this path")
