"""HTTP function `stripe_webhook`: Stripe's door to renewals, add-on packs and cancellations.

Verifies the signature on the raw body before reading anything, validates the event envelope
at the edge, calls one service (`webhooks.handle`) and maps every error to a response in one
place (`stripe_webhook`). No business rules live here.
"""

from __future__ import annotations

import traceback
from typing import Any, Literal

import functions_framework
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.billing import catalog, stripe_api
from shared.billing import service as webhooks
from shared.common import http, jsontext, log, server
from shared.common.errors import CreditsError, InvalidPayload, MethodNotAllowed
from shared.common.validation import invalid

# Stripe events are a few KiB; an invoice with hundreds of lines stays well under this, and an
# unapplied event is stored whole in one Firestore document (1 MiB at most).
MAX_BODY_BYTES = 512 * 1024

# What the server refuses before this function runs is answered in the envelope too.
server.install("stripe_webhook", MAX_BODY_BYTES)

# A bad catalog or signing secret fails the start, not the first event.
catalog.get()
stripe_api.settings()

# Whatever the router or functions-framework refuses still answers with the error envelope.
functions_framework.errorhandler(Exception)(http.envelope_handler("stripe_webhook"))


class EventData(BaseModel):
    object: dict[str, Any]


class EventEnvelope(BaseModel):
    """The part of a Stripe event every event has; the rest is read by the service."""

    model_config = ConfigDict(extra="allow")

    # The id names a Firestore document when the event is kept for replay.
    id: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_\-]+$")
    object: Literal["event"]
    type: str = Field(min_length=1, max_length=255)
    data: EventData


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = jsontext.loads(raw)
        EventEnvelope.model_validate(body)
    except jsontext.BadJson as err:
        raise InvalidPayload(f"the body is {err}", fields=[{"field": "body", "problem": str(err)}]) from None
    except ValidationError as exc:
        raise InvalidPayload("the body is not a Stripe event", fields=invalid(exc).details["fields"]) from None
    return body


def receive(request):
    if http.path_segments(request):
        raise http.not_found(request)
    if request.method != "POST":
        raise MethodNotAllowed("/ accepts POST only", allowed=["POST"])
    raw = http.read_body(request, MAX_BODY_BYTES, malformed=InvalidPayload)
    stripe_api.verify_signature(raw, request.headers.get("Stripe-Signature"))
    body = _parse(raw)
    outcome = webhooks.handle(body, raw.decode("utf-8"))
    return http.respond({"received": True, "outcome": outcome.outcome})


@functions_framework.http
def stripe_webhook(request):
    try:
        return receive(request)
    except CreditsError as err:
        log.log(
            "WARNING" if err.status >= 500 else "INFO",
            "stripe event refused",
            path=request.path,
            outcome=err.code,
            status=err.status,
            detail=err.message,
        )
        return http.error_response(err)
    except Exception:  # noqa: BLE001 - the one place an unexpected fault becomes a 500 body
        log.error("unexpected fault", path=request.path, outcome="internal", exc_info=traceback.format_exc())
        return http.respond({"error": {"code": "internal", "message": "internal error"}}, 500)
