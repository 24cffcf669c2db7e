"""HTTP function `spend`: the app backend's door to spending, balances and history.

Parses and validates at the edge, calls one service per route, and maps every error to a
response in one place (`spend`). No business rules live here.
"""

from __future__ import annotations

import functools
import json
import traceback
from pathlib import Path
from typing import Optional

import functions_framework
from pydantic import ValidationError

from shared.common import http, jsontext, log
from shared.common.errors import CreditsError, InvalidRequest, MethodNotAllowed
from shared.common.validation import invalid, user_id
from shared.operations import reconciliation
from shared.spending import holds_service
from shared.spending import service as spending
from shared.spending.holds import HoldRequest, SettleRequest
from shared.spending.refunds import RefundRequest
from shared.spending.schemas import (BalanceQuery, CaptureBody, HistoryQuery, HoldBody, ReconcileSweepBody, RefundBody,
                                     SpendBody, SweepBody)

MAX_BODY_BYTES = 64 * 1024
# The API's OpenAPI document sits beside this file, in the repository and in the deployed bundle.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")

# A bad CREDITS_SPEND_ORDER fails the start, not the first spend.
spending.spend_order()

# Whatever the router or functions-framework refuses still answers with the error envelope.
functions_framework.errorhandler(Exception)(http.envelope_handler("spend", allowed=("GET", "POST")))


def _user_id(raw: str, what: str = "user_id") -> str:
    return user_id(raw, what)


def post_spend(request):
    req = _validated(SpendBody, _keyed_body(request, "idempotency_key"))
    if req.dry_run:
        return http.respond(holds_service.preview(req.user_id, req.amount, req.description or "").body)
    return _replayable(spending.spend(req.user_id, req.amount, req.description or "", req.idempotency_key))


def get_balance(request, user_id: str):
    user = _user_id(user_id)
    query = _query(BalanceQuery, request)
    if query.as_of is not None:
        return http.respond(spending.balance_as_of(user, query.as_of))
    return http.respond(spending.balance(user))


def get_transactions(request, user_id: str):
    user = _user_id(user_id)
    query = _query(HistoryQuery, request)
    where = spending.HistoryFilter(types=query.type, pool=query.pool.value if query.pool else None, since=query.since,
                          until=query.until)
    return http.respond(spending.history(user, query.limit, query.page_token, where))


def _query(model, request):
    """The query string validated by `model`; a repeated `type` counts as its values comma-separated."""
    args = request.args.to_dict()
    if "type" in args:
        args["type"] = ",".join(request.args.getlist("type"))
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise invalid(exc, "query") from None


def _keyed_body(request, key_field: Optional[str], optional: bool = False) -> dict:
    """The JSON object body (an empty one is `{}` when `optional`), with the `Idempotency-Key`
    header as `key_field` (header and field must agree)."""
    raw = http.read_body(request, MAX_BODY_BYTES)
    if optional and not raw.strip():
        return {}
    try:
        body = jsontext.loads(raw)
    except jsontext.BadJson as err:
        raise InvalidRequest(f"the body is {err}", fields=[{"field": "body", "problem": str(err)}]) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", fields=[{"field": "body", "problem": "not an object"}])
    header_key = http.header(request, "Idempotency-Key")
    if key_field is not None and header_key is not None:
        if body.get(key_field, header_key) != header_key:
            raise InvalidRequest(
                f"the Idempotency-Key header and {key_field} field differ",
                fields=[{"field": key_field, "problem": "differs from the Idempotency-Key header"}],
            )
        body = {**body, key_field: header_key}
    return body


def _validated(model, body):
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from None


def _replayable(result):
    return http.respond(result.body, 200, {"Idempotent-Replayed": "true"} if result.replayed else None)


def post_refunds(request):
    req = _validated(RefundBody, _keyed_body(request, "idempotency_key"))
    refund = RefundRequest(req.user_id, req.spend_key, req.amount, req.description or "Refund", req.idempotency_key)
    return _replayable(holds_service.refund(refund))


def post_holds(request):
    req = _validated(HoldBody, _keyed_body(request, "hold_id"))
    hold = HoldRequest(req.user_id, req.amount, req.hold_id, req.description or "Credits held", req.expires_in)
    return _replayable(holds_service.hold(hold))


def post_hold_capture(request, hold_id: str):
    hold_id = _user_id(hold_id, "hold_id")
    # The body is read (and size-checked) before any path work, so a bad body writes nothing.
    req = _validated(CaptureBody, _keyed_body(request, None, optional=True))
    return _replayable(holds_service.settle(SettleRequest(hold_id, release=False, amount=req.amount)))


def post_hold_release(request, hold_id: str):
    hold_id = _user_id(hold_id, "hold_id")
    http.read_body(request, MAX_BODY_BYTES)
    return _replayable(holds_service.settle(SettleRequest(hold_id, release=True)))


def get_hold(request, hold_id: str):
    return http.respond(holds_service.get_hold(_user_id(hold_id, "hold_id")))


def post_sweep_holds(request):
    req = _validated(SweepBody, _keyed_body(request, None, optional=True))
    return http.respond(holds_service.sweep(req.limit))


def post_sweep_reconcile(request):
    req = _validated(ReconcileSweepBody, _keyed_body(request, None, optional=True))
    return http.respond(reconciliation.reconcile_page(req.limit))


@functools.cache
def _openapi() -> dict:
    # Read on the first request for it, not at import: a cold start never pays for it.
    return json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))


def get_openapi(request):
    return http.respond(_openapi())


def _route(request):
    parts = http.path_segments(request)
    if parts == ["spend"]:
        allowed, handler, args = "POST", post_spend, ()
    elif len(parts) == 2 and parts[0] == "balance" and parts[1]:
        allowed, handler, args = "GET", get_balance, (parts[1],)
    elif len(parts) == 2 and parts[0] == "transactions" and parts[1]:
        allowed, handler, args = "GET", get_transactions, (parts[1],)
    elif parts == ["refunds"]:
        allowed, handler, args = "POST", post_refunds, ()
    elif parts == ["holds"]:
        allowed, handler, args = "POST", post_holds, ()
    elif len(parts) == 2 and parts[0] == "holds" and parts[1]:
        allowed, handler, args = "GET", get_hold, (parts[1],)
    elif len(parts) == 3 and parts[0] == "holds" and parts[1] and parts[2] in ("capture", "release"):
        allowed, handler, args = "POST", post_hold_capture if parts[2] == "capture" else post_hold_release, (parts[1],)
    elif parts == ["sweep", "holds"]:
        allowed, handler, args = "POST", post_sweep_holds, ()
    elif parts == ["sweep", "reconcile"]:
        allowed, handler, args = "POST", post_sweep_reconcile, ()
    elif parts == ["openapi.json"]:
        allowed, handler, args = "GET", get_openapi, ()
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

