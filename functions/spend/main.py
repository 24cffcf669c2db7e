"""HTTP function `spend`: the app backend's door to spending, balances and history.

Parses and validates at the edge, calls one service per route, and maps every error to a
response in one place (`spend`). No business rules live here.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

import functions_framework
from pydantic import TypeAdapter, ValidationError

from shared.common import http, log
from shared.common.errors import CreditsError, InvalidRequest, MethodNotAllowed, NotFound
from shared.common.validation import UserId, invalid
from shared.spending import service as spending
from shared.spending.schemas import HistoryQuery, SpendBody

MAX_BODY_BYTES = 64 * 1024

# A bad CREDITS_SPEND_ORDER fails the start, not the first spend.
spending.spend_order()

_USER_ID = TypeAdapter(UserId)


def _read_json(request) -> Any:
    raw = http.read_body(request, MAX_BODY_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON", fields=[{"field": "body", "problem": "malformed JSON"}])


def _user_id(raw: str) -> str:
    try:
        return _USER_ID.validate_python(raw)
    except ValidationError as exc:
        raise invalid(exc, "user_id") from None


def post_spend(request):
    body = _read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", fields=[{"field": "body", "problem": "not an object"}])
    header_key = request.headers.get("Idempotency-Key")
    if header_key is not None:
        if body.get("idempotency_key", header_key) != header_key:
            raise InvalidRequest(
                "the Idempotency-Key header and idempotency_key field differ",
                fields=[{"field": "idempotency_key", "problem": "differs from the Idempotency-Key header"}],
            )
        body = {**body, "idempotency_key": header_key}
    try:
        req = SpendBody.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from None
    result = spending.spend(req.user_id, req.amount, req.description or "", req.idempotency_key)
    return http.respond(result.body, 200, {"Idempotent-Replayed": "true"} if result.replayed else None)


def get_balance(request, user_id: str):
    return http.respond(spending.balance(_user_id(user_id)))


def get_transactions(request, user_id: str):
    try:
        query = HistoryQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise invalid(exc, "query") from None
    return http.respond(spending.history(_user_id(user_id), query.limit, query.page_token))


def _route(request):
    parts = request.path.strip("/").split("/")
    if parts == ["spend"]:
        allowed, handler, args = "POST", post_spend, ()
    elif len(parts) == 2 and parts[0] == "balance" and parts[1]:
        allowed, handler, args = "GET", get_balance, (parts[1],)
    elif len(parts) == 2 and parts[0] == "transactions" and parts[1]:
        allowed, handler, args = "GET", get_transactions, (parts[1],)
    else:
        raise NotFound(f"no route for {request.path}")
    if request.method != allowed:
        raise MethodNotAllowed(f"{request.path} accepts {allowed} only", allowed=[allowed])
    return handler(request, *args)


@functions_framework.http
def spend(request):
    try:
        return _route(request)
    except CreditsError as err:
        if err.status >= 500:
            log.warning("request failed", path=request.path, outcome=err.code, detail=err.message)
        return http.error_response(err)
    except Exception:  # noqa: BLE001 - the one place an unexpected fault becomes a 500 body
        log.error("unexpected fault", path=request.path, outcome="internal", exc_info=traceback.format_exc())
        return http.respond({"error": {"code": "internal", "message": "internal error"}}, 500)

