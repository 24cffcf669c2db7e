"""HTTP function `operator_sweeps`: the scheduled operator work, called by Cloud Scheduler only.

Two routes, both bounded pages of work that are safe to run twice at once:
- `POST /sweep/holds` releases up to `limit` (1 to 1,000, default 200) expired holds;
- `POST /sweep/reconcile` checks the next `limit` (1 to 2,000, default 500) users against their
  records and moves the pass's cursor.
A body is optional (none: the defaults). Only the scheduler's service account may invoke this
function (terraform/operator.tf); it is not part of the app's API (functions/spend/openapi.json).
Parses and validates at the edge, calls one service per route and maps every error to a response
in one place (`operator_sweeps`). No business rules live here.
"""

from __future__ import annotations

import traceback
from typing import Annotated

import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.common import http, log, server
from shared.common.errors import CreditsError, MethodNotAllowed
from shared.common.validation import optional_body
from shared.operations import reconciliation
from shared.spending import holds_service

MAX_BODY_BYTES = 64 * 1024

server.install("operator_sweeps", MAX_BODY_BYTES)
functions_framework.errorhandler(Exception)(http.envelope_handler("operator_sweeps"))


class HoldsSweepBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    limit: Annotated[int, Field(strict=True, ge=1, le=1000)] = 200


class ReconcileSweepBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    limit: Annotated[int, Field(strict=True, ge=1, le=2000)] = 500


def sweep_holds(request):
    return http.respond(holds_service.sweep(optional_body(request, HoldsSweepBody, MAX_BODY_BYTES).limit))


def sweep_reconcile(request):
    return http.respond(reconciliation.reconcile_page(optional_body(request, ReconcileSweepBody, MAX_BODY_BYTES).limit))


ROUTES = {("sweep", "holds"): sweep_holds, ("sweep", "reconcile"): sweep_reconcile}


def _route(request):
    handler = ROUTES.get(tuple(http.path_segments(request)))
    if handler is None:
        raise http.not_found(request)
    if request.method != "POST":
        raise MethodNotAllowed("this route accepts POST only", allowed=["POST"])
    return handler(request)


@functions_framework.http
def operator_sweeps(request):
    try:
        return _route(request)
    except CreditsError as err:
        if err.status >= 500:
            log.warning("request failed", path=request.path, outcome=err.code, detail=err.message)
        return http.error_response(err)
    except Exception:  # noqa: BLE001 - the one place an unexpected fault becomes a 500 body
        log.error("unexpected fault", path=request.path, outcome="internal", exc_info=traceback.format_exc())
        return http.respond({"error": {"code": "internal", "message": "internal error"}}, 500)
