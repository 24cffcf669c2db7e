"""CloudEvent function `auto_topup`: charges an auto top-up attempt when it is created (CONTRACT section 9).

Eventarc delivers `google.cloud.firestore.document.v1.created` on `credits_topups/{attempt_id}`
with a protobuf `DocumentEventData` body (locally, the run command's forwarder sends the same).
The billing service charges the attempt once, with the attempt id as Stripe's idempotency key,
and records the outcome. Every outcome is decided here: returning acknowledges the event;
raising (a transient fault of Stripe or Firestore) makes Eventarc deliver it again, and the same
key makes the same charge. No business rules live here.

A second target in the same source, `auto_topup_sweep` (HTTP, called by Cloud Scheduler only, with
this function's service account and so its Stripe key), charges attempts whose trigger was lost:
`POST /` with an optional body `{"limit": n}` (1 to 500, default 100).
"""

from __future__ import annotations

import traceback
from typing import Annotated

import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.billing import topups
from shared.common import http, log, server
from shared.common.errors import CreditsError, InvalidPayload, MethodNotAllowed
from shared.common.validation import optional_body
from shared.events import documents
from shared.ledger import collections

FIRESTORE_EVENT_PREFIX = "google.cloud.firestore.document.v1."

functions_framework.errorhandler(Exception)(http.envelope_handler("auto_topup"))
server.install("auto_topup")


def _attempt_id(cloud_event) -> str:
    event_type = str(cloud_event["type"])
    if not event_type.startswith(FIRESTORE_EVENT_PREFIX):
        raise InvalidPayload(f"not a Firestore document event ({event_type})")
    attributes = cloud_event.get_attributes()
    path = attributes.get("document") or str(attributes.get("subject") or "").removeprefix("documents/")
    change = documents.decode(cloud_event.data, path or None)
    if change.collection != collections.TOPUPS:
        raise InvalidPayload(f"not an auto top-up attempt ({change.path})")
    attempt_id = (change.value or {}).get("attempt_id") or change.document_id
    return str(attempt_id)


@functions_framework.cloud_event
def auto_topup(cloud_event) -> None:
    event_id = str(cloud_event["id"])
    try:
        attempt_id = _attempt_id(cloud_event)
        status = topups.charge(attempt_id)
    except CreditsError as err:
        if err.transient:
            log.warning("auto top-up event will be redelivered", cloud_event_id=event_id, outcome=err.code,
                        detail=err.message)
            raise
        # It can never be charged as it stands; the sweep finds a pending attempt again later.
        log.warning("auto top-up event acknowledged without a charge", cloud_event_id=event_id, outcome=err.code,
                    detail=err.message)
        return
    except Exception:
        log.error("unexpected fault", cloud_event_id=event_id, outcome="internal", exc_info=traceback.format_exc())
        raise
    log.info("auto top-up event handled", cloud_event_id=event_id, attempt_id=attempt_id, outcome=status)


class SweepBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    limit: Annotated[int, Field(strict=True, ge=1, le=500)] = 100


@functions_framework.http
def auto_topup_sweep(request):
    try:
        if request.method != "POST":
            raise MethodNotAllowed("this route accepts POST only", allowed=["POST"])
        return http.respond(topups.sweep(optional_body(request, SweepBody, 64 * 1024).limit))
    except CreditsError as err:
        if err.status >= 500:
            log.warning("sweep failed", outcome=err.code, detail=err.message)
        return http.error_response(err)
    except Exception:  # noqa: BLE001 - the one place an unexpected fault becomes a 500 body
        log.error("unexpected fault", outcome="internal", exc_info=traceback.format_exc())
        return http.respond({"error": {"code": "internal", "message": "internal error"}}, 500)
