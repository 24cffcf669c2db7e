"""HTTP function `spend`: the app backend's door to spending, balances and history.

Parses and validates at the edge, calls one service per route, and maps every error to a
response in one place (`spend`). No business rules live here.
"""

from __future__ import annotations

import traceback
from typing import Any

import functions_framework
from pydantic import ValidationError

from shared.common import http, jsontext, log
from shared.common.errors import CreditsError, InvalidRequest, MethodNotAllowed
from shared.common.validation import invalid, user_id
from shared.spending import service as spending
from shared.spending.schemas import HistoryQuery, SpendBody

MAX_BODY_BYTES = 64 * 1024

# A bad CREDITS_SPEND_ORDER fails the start, not the first spend.
spending.spend_order()

# Whatever the router or functions-framework refuses still answers with the error envelope.
functions_framework.errorhandler(Exception)(http.envelope_handler("spend", allowed=("GET", "POST")))


def _read_json(request) -> Any:
    raw = http.read_body(request, MAX_BODY_BYTES)
    try:
        return jsontext.loads(raw)
    except jsontext.BadJson as err:
        raise InvalidRequest(f"the body is {err}", fields=[{"field": "body", "problem": str(err)}]) from None


def _user_id(raw: str) -> str:
    return user_id(raw)


def post_spend(request):
    body = _read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", fields=[{"field": "body", "problem": "not an object"}])
    header_key = http.header(request, "Idempotency-Key")
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
    parts = http.path_segments(request)
    if parts == ["spend"]:
        allowed, handler, args = "POST", post_spend, ()
    elif len(parts) == 2 and parts[0] == "balance" and parts[1]:
        allowed, handler, args = "GET", get_balance, (parts[1],)
    elif len(parts) == 2 and parts[0] == "transactions" and parts[1]:
        allowed, handler, args = "GET", get_transactions, (parts[1],)
    else:
        raise http.not_found(request)
    if request.method != allowed:
        raise MethodNotAllowed(f"this route accepts {allowed} only", allowed=[allowed])
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

