"""HTTP function `spend`: the app backend's door to spending, balances, history, holds and settings.

Parses and validates at the edge, calls one service per route, and maps every error to a
response in one place (`spend`). No business rules live here.

A cold start imports what a balance read needs; the modules of the other routes (the commit
machinery, refunds, holds, settings, the request schemas) are imported by the first request that
needs them, so an instance that starts to answer a balance read does not pay for them first.
"""

from __future__ import annotations

import functools
import json
import traceback
from pathlib import Path
from typing import Optional

import functions_framework
from pydantic import ValidationError

from shared.common import http, jsontext, log, server
from shared.common.errors import CreditsError, InvalidRequest, MethodNotAllowed
from shared.common.validation import invalid
from shared.common.validation import user_id as valid_id
from shared.spending import service as spending

MAX_BODY_BYTES = 64 * 1024
# The API's OpenAPI document sits beside this file, in the repository and in the deployed bundle.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")

# What the server refuses before this function runs is answered in the envelope too.
server.install("spend", MAX_BODY_BYTES)

# A bad CREDITS_SPEND_ORDER fails the start, not the first spend.
spending.spend_order()

# Whatever the router or functions-framework refuses still answers with the error envelope.
functions_framework.errorhandler(Exception)(http.envelope_handler("spend", allowed=("GET", "POST", "PUT")))


def _validated(model, value, what: str = "request"):
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise invalid(exc, what) from None


def _schemas():
    # The request schemas build their validators when first imported: by the first request that needs one.
    from shared.spending import schemas

    return schemas


def _object(raw: bytes) -> dict:
    """`raw` as a JSON object, or `invalid_request` saying why it is not one."""
    try:
        body = jsontext.loads(raw)
    except jsontext.BadJson as err:
        raise InvalidRequest(f"the body is {err}", fields=[{"field": "body", "problem": str(err)}]) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", fields=[{"field": "body", "problem": "not an object"}])
    return body


def _keyed_body(request, key_field: Optional[str], optional: bool = False) -> dict:
    """The JSON object body (an empty one is `{}` when `optional`), with the `Idempotency-Key`
    header as `key_field` (header and field must agree)."""
    raw = http.read_body(request, MAX_BODY_BYTES)
    if optional and not raw.strip():
        return {}
    body = _object(raw)
    header_key = http.header(request, "Idempotency-Key")
    if key_field is not None and header_key is not None:
        if body.get(key_field, header_key) != header_key:
            raise InvalidRequest(
                f"the Idempotency-Key header and {key_field} field differ",
                fields=[{"field": key_field, "problem": "differs from the Idempotency-Key header"}],
            )
        body = {**body, key_field: header_key}
    return body


def _replayable(result):
    return http.respond(result.body, 200, {"Idempotent-Replayed": "true"} if result.replayed else None)


def post_spend(request):
    req = _validated(_schemas().SpendBody, _keyed_body(request, "idempotency_key"))
    if req.dry_run:
        from shared.spending import holds_service

        return http.respond(holds_service.preview(req.user_id, req.amount, req.description or "").body)
    return _replayable(spending.spend(req.user_id, req.amount, req.description or "", req.idempotency_key))


def get_balance(request, user_id: str):
    user = valid_id(user_id)
    params = http.query(request)
    if "as_of" not in params:
        # The plain read, the one a cold start most often answers first: no schema to build.
        return http.respond(spending.balance(user))
    query = _validated(_schemas().BalanceQuery, params, "query")
    return http.respond(spending.balance_as_of(user, query.as_of))


def get_transactions(request, user_id: str):
    user = valid_id(user_id)
    query = _query(_schemas().HistoryQuery, request)
    where = spending.HistoryFilter(types=query.type, pool=query.pool.value if query.pool else None,
                                   since=query.since, until=query.until)
    return http.respond(spending.history(user, query.limit, query.page_token, where))


def _query(model, request):
    """The query string validated by `model`; a repeated `type` counts as its values comma-separated."""
    pairs = http.query_pairs(request)
    args = http.query(request)
    if "type" in args:
        args["type"] = ",".join(value for name, value in pairs if name == "type")
    return _validated(model, args, "query")


def post_refunds(request):
    from shared.spending import holds_service
    from shared.spending.refunds import RefundRequest

    req = _validated(_schemas().RefundBody, _keyed_body(request, "idempotency_key"))
    refund = RefundRequest(req.user_id, req.spend_key, req.amount, req.description or "Refund", req.idempotency_key)
    return _replayable(holds_service.refund(refund))


def post_holds(request):
    from shared.spending import holds_service
    from shared.spending.holds import HoldRequest

    req = _validated(_schemas().HoldBody, _keyed_body(request, "hold_id"))
    hold = HoldRequest(req.user_id, req.amount, req.hold_id, req.description or "Credits held", req.expires_in)
    return _replayable(holds_service.hold(hold))


def get_holds(request):
    from shared.spending import holds_service

    query = _query(_schemas().HoldsQuery, request)
    return http.respond(holds_service.list_holds(query.user_id, query.status, query.limit, query.page_token))


def post_hold_capture(request, hold_id: str):
    from shared.spending import holds_service
    from shared.spending.holds import SettleRequest

    hold_id = valid_id(hold_id, "hold_id")
    # The body is read (and size-checked) before any path work, so a bad body writes nothing.
    req = _validated(_schemas().CaptureBody, _keyed_body(request, None, optional=True))
    return _replayable(holds_service.settle(SettleRequest(hold_id, release=False, amount=req.amount)))


def post_hold_release(request, hold_id: str):
    from shared.spending import holds_service
    from shared.spending.holds import SettleRequest

    hold_id = valid_id(hold_id, "hold_id")
    http.read_body(request, MAX_BODY_BYTES)
    return _replayable(holds_service.settle(SettleRequest(hold_id, release=True)))


def get_hold(request, hold_id: str):
    from shared.spending import holds_service

    return http.respond(holds_service.get_hold(valid_id(hold_id, "hold_id")))


def get_settings(request, user_id: str):
    from shared.spending import settings_service

    return http.respond(settings_service.get_settings(valid_id(user_id)))


def put_settings(request, user_id: str):
    from shared.spending import settings, settings_service

    user_id = valid_id(user_id)
    body = _object(http.read_body(request, MAX_BODY_BYTES))
    changes = _validated(settings.SettingsBody, body).changes()
    if changes.get(settings.AUTO_TOPUP) is not None:
        changes[settings.AUTO_TOPUP] = _topup_setting(changes[settings.AUTO_TOPUP])
    return http.respond(settings_service.put_settings(user_id, changes))


def _topup_setting(body):
    """The auto top-up setting to store: its price must be a catalog add-on (the catalog is the
    billing feature's, so the edge, which may use both, joins them)."""
    from shared.billing import catalog

    return body.setting(catalog.get().topup_credits(body.price_id))


@functools.cache
def _openapi() -> dict:
    # Read on the first request for it, not at import: a cold start never pays for it.
    return json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))


def get_openapi(request):
    return http.respond(_openapi())


def _routes(parts: list[str]):
    """The handlers of the route `parts` names, by method, and the ids taken from the path."""
    if len(parts) == 1:
        return {
            "spend": ({"POST": post_spend}, ()),
            "refunds": ({"POST": post_refunds}, ()),
            "holds": ({"GET": get_holds, "POST": post_holds}, ()),
            "openapi.json": ({"GET": get_openapi}, ()),
        }.get(parts[0], (None, ()))
    if len(parts) == 2 and parts[1]:
        methods = {"balance": {"GET": get_balance}, "transactions": {"GET": get_transactions},
                   "holds": {"GET": get_hold}}.get(parts[0])
        return methods, (parts[1],)
    if len(parts) == 3 and parts[0] == "holds" and parts[1] and parts[2] in ("capture", "release"):
        return {"POST": post_hold_capture if parts[2] == "capture" else post_hold_release}, (parts[1],)
    if len(parts) == 3 and parts[0] == "users" and parts[1] and parts[2] == "settings":
        return {"GET": get_settings, "PUT": put_settings}, (parts[1],)
    return None, ()


def _route(request):
    methods, args = _routes(http.path_segments(request))
    if methods is None:
        raise http.not_found(request)
    handler = methods.get(request.method)
    if handler is None:
        allowed = list(methods)
        raise MethodNotAllowed(f"this route accepts {' or '.join(allowed)} only", allowed=allowed)
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
